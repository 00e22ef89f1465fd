"""A VF vanishes while an instance holds it (its attach handle is bound to an ARQ).

What the real Cyborg 17.0.0 conductor does with a report that simply leaves such a VF out is
shown first (``test_conductor_without_the_guard_*``, with the driver's guard switched off):
it deletes the in-use attach handle, after which the bound ARQ cannot be read or deleted; it
deletes an in-use pool's deployable from its DB before Placement refuses to delete the
provider (409), which then stays behind for good; and for a vanished in-use PF it fails the
whole report every cycle. The driver's guard (``report.hold_in_use``) avoids all three; the
remaining tests show it. See docs/driver.md.
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
from tests.fixtures.sysfs import SysfsTree
from tests.functional.harness import Stack

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
def cloud(make_stack: Callable[..., Stack]) -> tuple[Stack, SysfsTree]:
    stack = make_stack(smartnic={"physical_device_mappings": "physnet1:ens1f0,physnet2:ens2f0"})
    tree = SysfsTree(stack.sysfs_root)
    tree.add_pf(PF, vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0",
                total_vfs=8, num_vfs=4, vf_driver="vfio-pci", eswitch="switchdev")
    tree.add_pf(OTHER, vendor="8086", device="1592", driver="ice", netdev="ens2f0",
                total_vfs=8, num_vfs=2, eswitch="legacy")
    stack.run_agent_cycle()
    stack.create_device_profile("physnet1", [GROUP])
    return stack, tree


def pool_name(stack: Stack) -> str:
    return f"{stack.hostname}_{PF}"


def boot(stack: Stack) -> Bound:
    """What Nova does for one instance with the profile: schedule, claim, create and bind."""
    requests = stack.allocation_candidates([GROUP])["allocation_requests"]
    assert requests, "no allocation candidate"
    instance = str(uuid.uuid4())
    stack.claim(instance, requests[0])
    (arq,) = stack.create_arqs("physnet1")
    stack.bind_arq(arq["uuid"], next(iter(requests[0]["allocations"])), instance)
    bound = stack.get_arq(arq["uuid"])
    assert bound["state"] == "Bound"
    return Bound(instance, arq["uuid"], bound["attach_handle_info"])


def delete_instance(stack: Stack, bound: Bound, expect: int | tuple[int, ...] = 204) -> None:
    """Nova's instance delete: ARQs by instance (service token), then the allocations."""
    stack.cyborg_api.delete(f"/v2/accelerator_requests?instance={bound.instance}",
                            expect=expect)
    stack.release(bound.instance)


def address(info: dict[str, str]) -> str:
    return f"{info['domain']}:{info['bus']}:{info['device']}.{info['function']}"


def only_last_vf_in_use(stack: Stack, tree: SysfsTree) -> Bound:
    """Bind all four VFs, then free the first three: the highest VF index stays in use."""
    bound = [boot(stack) for _ in range(4)]
    for b in bound[:3]:
        delete_instance(stack, b)
    last = bound[3]
    assert address(last.attach_info) == tree.vfs(PF)[3]
    return last


def guard_off(stack: Stack) -> SmartNicDriver:
    """The driver as if it had no guard: every pool looks unused to it."""
    (driver,) = stack.agent._rt.acc_drivers
    driver._usage = lambda names: dict.fromkeys(names, 0)
    return driver  # type: ignore[no-any-return]


def providers_named(stack: Stack) -> dict[str, Any]:
    rps = stack.placement.get("/resource_providers", expect=200).json()["resource_providers"]
    return {rp["name"]: rp for rp in rps}


# -- what the conductor does on its own -------------------------------------------------------
def test_conductor_without_the_guard_deletes_an_in_use_attach_handle(
        cloud: tuple[Stack, SysfsTree]) -> None:
    stack, tree = cloud
    last = only_last_vf_in_use(stack, tree)
    guard_off(stack)
    tree.set_num_vfs(PF, 2)
    stack.run_agent_cycle()
    # The in-use handle is gone from Cyborg's DB ...
    infos = [json.loads(ah["attach_info"]) for ah in stack.attach_handles()]
    assert last.attach_info not in infos
    # ... so the bound ARQ can no longer be read, listed or deleted.
    broken = stack.cyborg_api.get(f"/v2/accelerator_requests/{last.arq}")
    assert broken.status_code == 404 and "AttachHandle not found" in broken.text
    assert stack.cyborg_api.get("/v2/accelerator_requests").status_code == 404
    gone = stack.cyborg_api.delete(f"/v2/accelerator_requests?instance={last.instance}")
    assert gone.status_code == 404
    # and Placement was told total=2 while 1 is allocated
    view = stack.provider_view()[pool_name(stack)]
    assert view["inventories"][RC]["total"] == 2 and view["usages"][RC] == 1


def test_conductor_without_the_guard_orphans_an_in_use_provider(
        cloud: tuple[Stack, SysfsTree]) -> None:
    """A pool that disappears from a device that stays (all its VFs gone)."""
    stack, tree = cloud
    last = boot(stack)
    guard_off(stack)
    tree.set_num_vfs(PF, 0)
    with pytest.raises(ResourceProviderInUse):
        stack.run_agent_cycle()
    # Cyborg deleted the deployable and its handles first, then Placement refused (409) ...
    assert pool_name(stack) not in [d["name"] for d in stack.deployables()]
    orphan = providers_named(stack)[pool_name(stack)]
    assert orphan["uuid"] == rp_uuid(pool_name(stack))
    assert stack.placement.get(f"/resource_providers/{orphan['uuid']}/usages",
                               expect=200).json()["usages"] == {RC: 1}
    assert stack.cyborg_api.get(f"/v2/accelerator_requests/{last.arq}").status_code == 404
    # ... and nothing deletes that provider later: Cyborg no longer knows it.
    stack.release(last.instance)
    stack.run_agent_cycle()
    assert pool_name(stack) in providers_named(stack)


def test_conductor_without_the_guard_fails_every_report_while_an_in_use_pf_is_gone(
        cloud: tuple[Stack, SysfsTree]) -> None:
    """A whole device: the conductor asks Placement first, so the report fails each cycle
    (and with it every other change on the host) until the allocation is released."""
    stack, tree = cloud
    last = boot(stack)
    guard_off(stack)
    tree.set_num_vfs(PF, 0)
    tree.remove_function(PF)
    tree.set_num_vfs(OTHER, 1)
    for _ in range(2):
        with pytest.raises(ResourceProviderInUse):
            stack.run_agent_cycle()
    assert stack.provider_view()[f"{stack.hostname}_{OTHER}"]["inventories"][RC]["total"] == 2
    delete_instance(stack, last)
    stack.run_agent_cycle()
    assert list(stack.provider_view()) == [f"{stack.hostname}_{OTHER}"]
    assert stack.provider_view()[f"{stack.hostname}_{OTHER}"]["inventories"][RC]["total"] == 1


# -- what the driver does about it -------------------------------------------------------------
def test_a_vanished_in_use_vf_keeps_its_handle_until_released(
        cloud: tuple[Stack, SysfsTree]) -> None:
    stack, tree = cloud
    last = only_last_vf_in_use(stack, tree)
    tree.set_num_vfs(PF, 2)  # VFs 2 and 3 vanish; VF 3 is in use
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    (hold,) = driver.holds
    assert (hold.deployable, hold.used, hold.frozen_total) == (pool_name(stack), 1, 1)

    arq = stack.get_arq(last.arq)
    assert arq["state"] == "Bound" and arq["attach_handle_info"] == last.attach_info
    handles = {json.dumps(json.loads(ah["attach_info"]), sort_keys=True): ah["in_use"]
               for ah in stack.attach_handles() if ah["deployable"] == pool_name(stack)}
    assert len(handles) == 4
    assert handles[json.dumps(last.attach_info, sort_keys=True)] is True
    # The pool is frozen: total = usage, so no new instance can land on a vanished VF.
    view = stack.provider_view()[pool_name(stack)]
    assert view["inventories"][RC] == {"total": 1, "max_unit": 1, "reserved": 0}
    assert {rp for r in stack.allocation_candidates([GROUP])["allocation_requests"]
            for rp in r["allocations"]} == set()

    # Another cycle while still in use changes nothing.
    mark = stack.placement_log.mark()
    stack.run_agent_cycle()
    assert stack.placement_log.writes(mark) == []

    # The instance goes: the pool shrinks to what is really there.
    delete_instance(stack, last)
    stack.run_agent_cycle()
    assert driver.holds == ()
    view = stack.provider_view()[pool_name(stack)]
    assert view["inventories"][RC]["total"] == 2 and view["usages"][RC] == 0
    remaining = sorted(address(json.loads(ah["attach_info"]))
                       for ah in stack.attach_handles() if ah["deployable"] == pool_name(stack))
    assert remaining == sorted(tree.vfs(PF).values())
    assert len(remaining) == 2
    assert len(stack.allocation_candidates([GROUP])["allocation_requests"]) == 1


def test_a_vanished_in_use_pf_is_kept_then_removed_without_orphans(
        cloud: tuple[Stack, SysfsTree]) -> None:
    stack, tree = cloud
    last = boot(stack)
    tree.set_num_vfs(PF, 0)
    tree.remove_function(PF)
    stack.run_agent_cycle()
    assert pool_name(stack) in [d["name"] for d in stack.deployables()]
    assert stack.get_arq(last.arq)["attach_handle_info"] == last.attach_info
    assert stack.provider_view()[pool_name(stack)]["inventories"][RC]["total"] == 1

    delete_instance(stack, last)
    stack.run_agent_cycle()
    assert pool_name(stack) not in providers_named(stack)
    assert pool_name(stack) not in [d["name"] for d in stack.deployables()]
    assert len(stack.devices()) == 1
    assert stack.cyborg_api.get("/v2/accelerator_requests", expect=200).json()["arqs"] == []


def test_vfs_of_a_free_pool_go_at_once(cloud: tuple[Stack, SysfsTree]) -> None:
    stack, tree = cloud
    last = boot(stack)  # in use on PF, not on OTHER
    assert last.attach_info["bus"] == "3b"
    tree.set_num_vfs(OTHER, 0)
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    assert driver.holds == ()
    assert f"{stack.hostname}_{OTHER}" not in stack.provider_view()


def test_a_physnet_renamed_under_an_in_use_vf_survives_the_agent_restart(
        cloud: tuple[Stack, SysfsTree]) -> None:
    """The rename needs a restart; the state file tells the new agent what Cyborg has."""
    stack, _tree = cloud
    last = boot(stack)
    assert (stack.workdir / "smartnic-state.json").is_file()
    stack.restart_agent(smartnic={"physical_device_mappings": "uplink:ens1f0,physnet2:ens2f0"})
    stack.run_agent_cycle()
    arq = stack.get_arq(last.arq)
    assert arq["attach_handle_info"] == last.attach_info  # still physnet1: what the VM got
    view = stack.provider_view()[pool_name(stack)]
    assert "CUSTOM_PHYSNET_UPLINK" in view["traits"]
    assert view["inventories"][RC]["total"] == 1  # frozen while the old handle is in use
    physnets = sorted(json.loads(ah["attach_info"])["physical_network"]
                      for ah in stack.attach_handles() if ah["deployable"] == pool_name(stack))
    assert physnets == ["physnet1"] * 4 + ["uplink"] * 4

    # Released: the old (older) handle rows must go. The conductor would delete the newest
    # rows instead, so the driver leaves the unused pool out for one cycle ...
    delete_instance(stack, last)
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    assert driver.rebuilds == (pool_name(stack),)
    assert pool_name(stack) not in stack.provider_view()
    assert [ah for ah in stack.attach_handles() if ah["deployable"] == pool_name(stack)] == []
    # ... and the next one recreates it whole, with only the new physnet.
    stack.run_agent_cycle()
    physnets = sorted(json.loads(ah["attach_info"])["physical_network"]
                      for ah in stack.attach_handles() if ah["deployable"] == pool_name(stack))
    assert physnets == ["uplink"] * 4
    assert stack.provider_view()[pool_name(stack)]["inventories"][RC]["total"] == 4
    assert stack.provider_view()[pool_name(stack)]["uuid"] == rp_uuid(pool_name(stack))
