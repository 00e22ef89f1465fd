"""A VF vanishes while an instance holds it (its attach handle is bound to an ARQ).

What the real Cyborg 17.0.0 conductor does with a report that simply leaves such a VF out is
shown first (``test_conductor_without_the_guard_*``, with the driver's guard switched off):
it deletes the in-use attach handle, after which the bound ARQ cannot be read or deleted; it
deletes an in-use pool's deployable from its DB before Placement refuses to delete the
provider (409), which then stays behind for good; and for a vanished in-use PF it fails the
whole report every cycle. The driver's guard (``conductor_guards.hold_in_use``) avoids all
three; the remaining tests show it. See docs/driver.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cyborg.common.exception import ResourceProviderInUse

from cyborg_smartnic.driver import SmartNicDriver, rp_uuid
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.pci import PciAddress
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
PF = "0000:3b:00.0"
OTHER = "0000:5e:00.0"
GROUP = {f"resources:{RC}": "1", "trait:CUSTOM_PHYSNET_PHYSNET1": "required"}


@dataclass
class Bound:
    instance: str
    arq: str
    attach_info: dict[str, str]


@pytest.fixture
def cloud(make_inproc: Callable[..., InProcessCloud]) -> tuple[InProcessCloud, SysfsTree]:
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens1f0,physnet2:ens2f0"})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=4,
        vf_driver="vfio-pci", eswitch="switchdev"))
    tree.add_pf(OTHER, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", total_vfs=8, num_vfs=2,
        eswitch="legacy"))
    inproc.run_agent_cycle()
    inproc.create_device_profile("physnet1", [GROUP])
    return inproc, tree


def pool_name(inproc: InProcessCloud) -> str:
    return f"{inproc.hostname}_{PF}"


def boot(inproc: InProcessCloud) -> Bound:
    """What Nova does for one instance with the profile: schedule, claim, create and bind."""
    requests = inproc.allocation_candidates([GROUP])["allocation_requests"]
    assert requests, "no allocation candidate"
    instance = str(uuid.uuid4())
    inproc.claim(instance, requests[0])
    (arq,) = inproc.create_arqs("physnet1")
    inproc.bind_arq(arq["uuid"], next(iter(requests[0]["allocations"])), instance)
    bound = inproc.get_arq(arq["uuid"])
    assert bound["state"] == "Bound"
    return Bound(instance, arq["uuid"], bound["attach_handle_info"])


def delete_instance(inproc: InProcessCloud, bound: Bound,
                    expect: int | tuple[int, ...] = 204) -> None:
    """Nova's instance delete: ARQs by instance (service token), then the allocations."""
    inproc.cyborg_api.delete(f"/v2/accelerator_requests?instance={bound.instance}",
                            expect=expect)
    inproc.release(bound.instance)


def address(info: dict[str, str]) -> str:
    return str(PciAddress.from_attach_info(info))


def only_last_vf_in_use(inproc: InProcessCloud, tree: SysfsTree) -> Bound:
    """Bind all four VFs, then free the first three: the highest VF index stays in use."""
    bound = [boot(inproc) for _ in range(4)]
    for b in bound[:3]:
        delete_instance(inproc, b)
    last = bound[3]
    assert address(last.attach_info) == tree.vfs(PF)[3]
    return last


def guard_off(inproc: InProcessCloud) -> SmartNicDriver:
    """The driver as if it had no guard: every pool looks unused to it."""
    (driver,) = inproc.agent._rt.acc_drivers
    driver._usage = lambda names: dict.fromkeys(names, 0)
    return driver  # type: ignore[no-any-return]


def providers_named(inproc: InProcessCloud) -> dict[str, Any]:
    rps = inproc.placement.get("/resource_providers", expect=200).json()["resource_providers"]
    return {rp["name"]: rp for rp in rps}


# -- what the conductor does on its own -------------------------------------------------------
def test_conductor_without_the_guard_deletes_an_in_use_attach_handle(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = cloud
    last = only_last_vf_in_use(inproc, tree)
    guard_off(inproc)
    tree.set_num_vfs(PF, 2)
    inproc.run_agent_cycle()
    # The in-use handle is gone from Cyborg's DB ...
    infos = [json.loads(ah["attach_info"]) for ah in inproc.attach_handles()]
    assert last.attach_info not in infos
    # ... so the bound ARQ can no longer be read, listed or deleted.
    broken = inproc.cyborg_api.get(f"/v2/accelerator_requests/{last.arq}")
    assert broken.status_code == 404 and "AttachHandle not found" in broken.text
    assert inproc.cyborg_api.get("/v2/accelerator_requests").status_code == 404
    gone = inproc.cyborg_api.delete(f"/v2/accelerator_requests?instance={last.instance}")
    assert gone.status_code == 404
    # and Placement was told total=2 while 1 is allocated
    view = inproc.provider_view()[pool_name(inproc)]
    assert view["inventories"][RC]["total"] == 2 and view["usages"][RC] == 1


def test_conductor_without_the_guard_orphans_an_in_use_provider(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    """A pool that disappears from a device that stays (all its VFs gone)."""
    inproc, tree = cloud
    last = boot(inproc)
    guard_off(inproc)
    tree.set_num_vfs(PF, 0)
    with pytest.raises(ResourceProviderInUse):
        inproc.run_agent_cycle()
    # Cyborg deleted the deployable and its handles first, then Placement refused (409) ...
    assert pool_name(inproc) not in [d["name"] for d in inproc.deployables()]
    orphan = providers_named(inproc)[pool_name(inproc)]
    assert orphan["uuid"] == rp_uuid(pool_name(inproc))
    assert inproc.placement.get(f"/resource_providers/{orphan['uuid']}/usages",
                               expect=200).json()["usages"] == {RC: 1}
    assert inproc.cyborg_api.get(f"/v2/accelerator_requests/{last.arq}").status_code == 404
    # Cyborg no longer knows that provider, so its conductor never deletes it. The driver
    # sees that the pool it dropped is still in Placement and deletes it once it is unused
    # (Placement refuses while the allocation lasts).
    inproc.run_agent_cycle()
    assert pool_name(inproc) in providers_named(inproc)
    inproc.release(last.instance)
    inproc.run_agent_cycle()
    assert pool_name(inproc) not in providers_named(inproc)


def test_conductor_without_the_guard_fails_every_report_while_an_in_use_pf_is_gone(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    """A whole device: the conductor asks Placement first, so the report fails each cycle
    (and with it every other change on the host) until the allocation is released."""
    inproc, tree = cloud
    last = boot(inproc)
    guard_off(inproc)
    tree.set_num_vfs(PF, 0)
    tree.remove_function(PF)
    tree.set_num_vfs(OTHER, 1)
    for _ in range(2):
        with pytest.raises(ResourceProviderInUse):
            inproc.run_agent_cycle()
    assert inproc.provider_view()[f"{inproc.hostname}_{OTHER}"]["inventories"][RC]["total"] == 2
    delete_instance(inproc, last)
    # The failed reports left OTHER's rows unknown to the driver: it is rebuilt on the way.
    for _ in range(2):
        inproc.run_agent_cycle()
    assert list(inproc.provider_view()) == [f"{inproc.hostname}_{OTHER}"]
    assert inproc.provider_view()[f"{inproc.hostname}_{OTHER}"]["inventories"][RC]["total"] == 1


# -- what the driver does about it -------------------------------------------------------------
def test_a_vanished_in_use_vf_keeps_its_handle_until_released(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = cloud
    last = only_last_vf_in_use(inproc, tree)
    tree.set_num_vfs(PF, 2)  # VFs 2 and 3 vanish; VF 3 is in use
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    (hold,) = driver.holds
    assert (hold.deployable, hold.used, hold.frozen_total) == (pool_name(inproc), 1, 1)

    arq = inproc.get_arq(last.arq)
    assert arq["state"] == "Bound" and arq["attach_handle_info"] == last.attach_info
    handles = {json.dumps(json.loads(ah["attach_info"]), sort_keys=True): ah["in_use"]
               for ah in inproc.attach_handles() if ah["deployable"] == pool_name(inproc)}
    assert len(handles) == 4
    assert handles[json.dumps(last.attach_info, sort_keys=True)] is True
    # The pool is frozen: total = usage, so no new instance can land on a vanished VF.
    view = inproc.provider_view()[pool_name(inproc)]
    assert view["inventories"][RC] == {"total": 1, "max_unit": 1, "reserved": 0}
    assert {rp for r in inproc.allocation_candidates([GROUP])["allocation_requests"]
            for rp in r["allocations"]} == set()

    # Another cycle while still in use changes nothing.
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert inproc.placement_log.writes(mark) == []

    # The instance goes: the pool shrinks to what is really there.
    delete_instance(inproc, last)
    inproc.run_agent_cycle()
    assert driver.holds == ()
    view = inproc.provider_view()[pool_name(inproc)]
    assert view["inventories"][RC]["total"] == 2 and view["usages"][RC] == 0
    remaining = sorted(address(json.loads(ah["attach_info"]))
                       for ah in inproc.attach_handles() if ah["deployable"] == pool_name(inproc))
    assert remaining == sorted(tree.vfs(PF).values())
    assert len(remaining) == 2
    assert len(inproc.allocation_candidates([GROUP])["allocation_requests"]) == 1


def test_a_vanished_in_use_pf_is_kept_then_removed_without_orphans(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = cloud
    last = boot(inproc)
    tree.set_num_vfs(PF, 0)
    tree.remove_function(PF)
    inproc.run_agent_cycle()
    assert pool_name(inproc) in [d["name"] for d in inproc.deployables()]
    assert inproc.get_arq(last.arq)["attach_handle_info"] == last.attach_info
    assert inproc.provider_view()[pool_name(inproc)]["inventories"][RC]["total"] == 1

    delete_instance(inproc, last)
    inproc.run_agent_cycle()
    assert pool_name(inproc) not in providers_named(inproc)
    assert pool_name(inproc) not in [d["name"] for d in inproc.deployables()]
    assert len(inproc.devices()) == 1
    assert inproc.cyborg_api.get("/v2/accelerator_requests", expect=200).json()["arqs"] == []


def test_vfs_of_a_free_pool_go_at_once(cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = cloud
    last = boot(inproc)  # in use on PF, not on OTHER
    assert last.attach_info["bus"] == "3b"
    tree.set_num_vfs(OTHER, 0)
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.holds == ()
    assert f"{inproc.hostname}_{OTHER}" not in inproc.provider_view()


def test_a_physnet_renamed_under_an_in_use_vf_survives_the_agent_restart(
        cloud: tuple[InProcessCloud, SysfsTree]) -> None:
    """The rename needs a restart; the state file tells the new agent what Cyborg has."""
    inproc, _tree = cloud
    last = boot(inproc)
    assert (inproc.workdir / "smartnic-state.json").is_file()
    inproc.restart_agent(smartnic={"physical_device_mappings": "uplink:ens1f0,physnet2:ens2f0"})
    inproc.run_agent_cycle()
    arq = inproc.get_arq(last.arq)
    assert arq["attach_handle_info"] == last.attach_info  # still physnet1: what the VM got
    view = inproc.provider_view()[pool_name(inproc)]
    assert "CUSTOM_PHYSNET_UPLINK" in view["traits"]
    assert view["inventories"][RC]["total"] == 1  # frozen while the old handle is in use
    physnets = sorted(json.loads(ah["attach_info"])["physical_network"]
                      for ah in inproc.attach_handles() if ah["deployable"] == pool_name(inproc))
    assert physnets == ["physnet1"] * 4 + ["uplink"] * 4

    # Released: the old (older) handle rows must go. The conductor would delete the newest
    # rows instead, so the driver leaves the unused pool out for one cycle ...
    delete_instance(inproc, last)
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.rebuilds == (pool_name(inproc),)
    assert pool_name(inproc) not in inproc.provider_view()
    assert [ah for ah in inproc.attach_handles() if ah["deployable"] == pool_name(inproc)] == []
    # ... and the next one recreates it whole, with only the new physnet.
    inproc.run_agent_cycle()
    physnets = sorted(json.loads(ah["attach_info"])["physical_network"]
                      for ah in inproc.attach_handles() if ah["deployable"] == pool_name(inproc))
    assert physnets == ["uplink"] * 4
    assert inproc.provider_view()[pool_name(inproc)]["inventories"][RC]["total"] == 4
    assert inproc.provider_view()[pool_name(inproc)]["uuid"] == rp_uuid(pool_name(inproc))
