"""Host changes between two report cycles, read back from Placement and Cyborg.

Each change must show up in Placement and Cyborg, and nothing else may move: the Placement
writes of the second cycle are asserted exactly. Traits a pool no longer has disappear from
its resource provider; the conductor then also deletes the trait globally (``DELETE
/traits/NAME``), which Placement refuses (409, logged by the conductor) while any other
provider still has it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from tests.functional.harness import InProcessCloud, request_groups_query

RC = "CUSTOM_SMARTNIC_VF"
PF0, PF1 = "0000:5e:00.0", "0000:5e:00.1"


@pytest.fixture
def e810(make_inproc: Callable[..., InProcessCloud]) -> tuple[InProcessCloud, SysfsTree]:
    """Two E810 ports in legacy mode with iavf VFs (4 and 2), physnet1 and physnet2."""
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens2f0,physnet2:ens2f1"})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(PF0, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", numa_node=0, total_vfs=16,
        num_vfs=4, eswitch="legacy", fw_version="4.40"))
    tree.add_pf(PF1, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f1", numa_node=0, total_vfs=16,
        num_vfs=2, eswitch="legacy", fw_version="4.40"))
    inproc.run_agent_cycle()
    return inproc, tree


def name(inproc: InProcessCloud, pf: str) -> str:
    return f"{inproc.hostname}_{pf}"


def write_paths(inproc: InProcessCloud, mark: int) -> list[tuple[str, str]]:
    """The Placement writes since ``mark``, as (method, path) with RP uuids named."""
    names = {rp["uuid"]: rp["name"] for rp in inproc.resource_providers()}
    out = []
    for method, raw, _status in inproc.placement_log.writes(mark):
        path = raw
        for rp_uuid, rp_name in names.items():
            path = path.replace(rp_uuid, rp_name)
        out.append((method, path))
    return out


def trait_exists(inproc: InProcessCloud, trait: str) -> bool:
    return inproc.placement.get(f"/traits/{trait}", expect=(204, 404)).status_code == 204


def handles_of(inproc: InProcessCloud, pf: str) -> list[str]:
    return [ah["attach_info"] for ah in inproc.attach_handles()
            if ah["deployable"] == name(inproc, pf)]


def test_vf_count_up_only_grows_the_inventory(e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    before = inproc.provider_view()
    mark = inproc.placement_log.mark()
    tree.set_num_vfs(PF0, 6)
    inproc.run_agent_cycle()
    after = inproc.provider_view()
    assert after[name(inproc, PF0)]["inventories"][RC]["total"] == 6
    assert after[name(inproc, PF0)]["traits"] == before[name(inproc, PF0)]["traits"]
    assert after[name(inproc, PF1)] == before[name(inproc, PF1)]
    assert write_paths(inproc, mark) == [
        ("PUT", f"/resource_providers/{name(inproc, PF0)}/inventories")]
    assert len(handles_of(inproc, PF0)) == 6
    assert {json.loads(h)["physical_network"] for h in handles_of(inproc, PF0)} == {"physnet1"}


def test_vf_count_down_shrinks_the_inventory_and_drops_handles(
        e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    kept = sorted(handles_of(inproc, PF0))
    tree.set_num_vfs(PF0, 1)
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert inproc.provider_view()[name(inproc, PF0)]["inventories"][RC] == {
        "total": 1, "max_unit": 1, "reserved": 0}
    assert write_paths(inproc, mark) == [
        ("PUT", f"/resource_providers/{name(inproc, PF0)}/inventories")]
    (left,) = handles_of(inproc, PF0)
    assert left == kept[0]
    # down to zero: the pool (and its resource provider) goes, the device stays
    tree.set_num_vfs(PF0, 0)
    inproc.run_agent_cycle()
    assert name(inproc, PF0) not in inproc.provider_view()
    assert len(inproc.devices()) == 2
    assert handles_of(inproc, PF0) == []


def test_vf_rebound_to_vfio_swaps_the_driver_trait(e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    iavf, vfio = "CUSTOM_SMARTNIC_VF_DRIVER_IAVF", "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"
    assert iavf in inproc.provider_view()[name(inproc, PF0)]["traits"]
    # one VF rebound: the pool no longer shares one driver, so no driver trait at all
    tree.bind(tree.vfs(PF0)[0], "vfio-pci")
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    view = inproc.provider_view()
    assert not any("VF_DRIVER" in t for t in view[name(inproc, PF0)]["traits"])
    assert iavf in view[name(inproc, PF1)]["traits"]
    # the conductor tried to delete the trait globally; PF1's RP still has it, so it stays
    assert ("DELETE", f"/traits/{iavf}") in write_paths(inproc, mark)
    assert trait_exists(inproc, iavf)
    # the rest rebound: vfio-pci trait added; inventory and handles untouched
    for vf in list(tree.vfs(PF0).values())[1:]:
        tree.bind(vf, "vfio-pci")
    handles = handles_of(inproc, PF0)
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    traits = inproc.provider_view()[name(inproc, PF0)]["traits"]
    assert vfio in traits and iavf not in traits
    assert handles_of(inproc, PF0) == handles
    assert not any(path.endswith("/inventories") for _, path in write_paths(inproc, mark))


def test_eswitch_legacy_to_switchdev(e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    legacy, switchdev = "CUSTOM_SMARTNIC_ESWITCH_LEGACY", "CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV"
    tree.set_eswitch(PF0, "switchdev")
    tree.set_eswitch(PF1, "switchdev")
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    view = inproc.provider_view()
    for pf in (PF0, PF1):
        assert switchdev in view[name(inproc, pf)]["traits"]
        assert legacy not in view[name(inproc, pf)]["traits"]
        assert view[name(inproc, pf)]["inventories"][RC]["total"] == (4 if pf == PF0 else 2)
    writes = write_paths(inproc, mark)
    assert ("PUT", f"/traits/{switchdev}") in writes
    assert not any(path.endswith("/inventories") for _, path in writes)
    # no provider has the legacy trait any more: the conductor deleted it from Placement,
    # so a profile still asking for it gets an error, not an empty answer
    assert not trait_exists(inproc, legacy)
    answer = inproc.placement.get("/allocation_candidates?" + request_groups_query(
        [{f"resources:{RC}": "1", f"trait:{legacy}": "required"}]))
    assert answer.status_code == 400 and "No such trait" in answer.text


def test_a_removed_pf_takes_its_pool_and_device_away(
        e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    tree.set_num_vfs(PF1, 0)
    tree.remove_function(PF1)
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert list(inproc.provider_view()) == [name(inproc, PF0)]
    assert [d["std_board_info"] for d in inproc.devices()] and len(inproc.devices()) == 1
    assert handles_of(inproc, PF1) == []
    assert [d["name"] for d in inproc.deployables()] == [name(inproc, PF0)]
    rp_deletes = [p for m, p in write_paths(inproc, mark)
                  if m == "DELETE" and "/resource_providers/" in p]
    assert len(rp_deletes) == 1


def test_a_renamed_physnet(e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, _tree = e810
    old, new = "CUSTOM_PHYSNET_PHYSNET1", "CUSTOM_PHYSNET_UPLINK_A"
    inproc.restart_agent(smartnic={
        "physical_device_mappings": "uplink-a:ens2f0,physnet2:ens2f1"})
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    view = inproc.provider_view()
    assert new in view[name(inproc, PF0)]["traits"] and old not in view[name(inproc, PF0)]["traits"]
    assert "CUSTOM_PHYSNET_PHYSNET2" in view[name(inproc, PF1)]["traits"]
    assert {json.loads(h)["physical_network"] for h in handles_of(inproc, PF0)} == {"uplink-a"}
    assert len(handles_of(inproc, PF0)) == 4
    assert not trait_exists(inproc, old)
    assert not any(path.endswith("/inventories") for _, path in write_paths(inproc, mark))
    # the RP itself was kept (same name): same uuid, no create/delete
    assert not any(m in ("POST", "DELETE") and p.endswith("/resource_providers")
                   for m, p in write_paths(inproc, mark))


def test_a_new_pf_appears(e810: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = e810
    tree.add_pf("0000:3b:00.0", PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=2,
        eswitch="switchdev"))
    inproc.run_agent_cycle()
    view = inproc.provider_view()
    assert view[name(inproc, "0000:3b:00.0")]["inventories"][RC]["total"] == 2
    assert "CUSTOM_SMARTNIC_VENDOR_NVIDIA" in view[name(inproc, "0000:3b:00.0")]["traits"]
    assert len(inproc.devices()) == 3
