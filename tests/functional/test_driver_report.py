"""The driver inside the real cyborg-agent, reporting through the real conductor to Placement."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable

import pytest

from cyborg_smartnic import driver as driver_module
from cyborg_smartnic.driver import ScanFailed, SmartNicDriver
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.hostgen import PfOptions, SysfsTree, build_scenario
from tests.fixtures.cyborg_objects import object_data
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
EXAMPLE_MAPPINGS = ("physnet1:ens1f0,physnet2:ens1f1,physnet3:ens2f0,physnet4:ens2f1,"
                    "physnet5:ens3f0")


@pytest.fixture
def example(make_inproc: Callable[..., InProcessCloud]) -> InProcessCloud:
    inproc = make_inproc(smartnic={"physical_device_mappings": EXAMPLE_MAPPINGS})
    build_scenario(inproc.sysfs_root, "example")
    return inproc


def test_pools_become_nested_providers_with_inventory_and_traits(example: InProcessCloud) -> None:
    example.run_agent_cycle()
    view = example.provider_view()
    host = example.hostname
    assert sorted(view) == [f"{host}_0000:18:00.0", f"{host}_0000:3b:00.0",
                            f"{host}_0000:3b:00.1", f"{host}_0000:5e:00.0",
                            f"{host}_0000:5e:00.1"]
    assert {rp["parent"] for rp in view.values()} == {example.compute_rp_uuid}
    totals = {name.rsplit("_", 1)[1]: rp["inventories"][RC]["total"]
              for name, rp in view.items()}
    assert totals == {"0000:18:00.0": 4, "0000:3b:00.0": 4, "0000:3b:00.1": 4,
                      "0000:5e:00.0": 8, "0000:5e:00.1": 4}
    assert all(rp["inventories"][RC]["max_unit"] == rp["inventories"][RC]["total"]
               for rp in view.values())
    assert view[f"{host}_0000:5e:00.0"]["traits"] == [
        "CUSTOM_PHYSNET_PHYSNET3", "CUSTOM_SMARTNIC_ESWITCH_LEGACY", "CUSTOM_SMARTNIC_FW_COMMS",
        "CUSTOM_SMARTNIC_MODEL_E810", "CUSTOM_SMARTNIC_VENDOR_INTEL", "OWNER_CYBORG"]
    assert view[f"{host}_0000:3b:00.1"]["traits"] == [
        "CUSTOM_PHYSNET_PHYSNET2", "CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV",
        "CUSTOM_SMARTNIC_MODEL_CONNECTX_6_DX", "CUSTOM_SMARTNIC_VENDOR_NVIDIA", "OWNER_CYBORG"]
    # The RP uuid is the conductor's uuid3 of the deployable name.
    assert all(rp["uuid"] == driver_module.rp_uuid(name) for name, rp in view.items())


def test_cyborg_api_shows_devices_deployables_and_attach_handles(example: InProcessCloud) -> None:
    example.run_agent_cycle()
    devices = example.cyborg_api.get("/v2/devices", expect=200).json()["devices"]
    assert len(devices) == 6  # the X710 port without VFs is a device without deployables
    assert {(d["type"], d["hostname"]) for d in devices} == {("NIC", example.hostname)}
    assert sorted({d["model"] for d in devices}) == ["ConnectX-6 Dx", "E810", "X710"]
    deployables = example.deployables()
    assert [d["num_accelerators"] for d in deployables] == [4, 4, 4, 8, 4]
    assert all(d["rp_uuid"] == driver_module.rp_uuid(d["name"]) for d in deployables)
    handles = example.attach_handles()
    assert len(handles) == 24
    assert {h["attach_type"] for h in handles} == {"PCI"}
    physnets = {json.loads(h["attach_info"])["physical_network"] for h in handles}
    assert physnets == {"physnet1", "physnet2", "physnet3", "physnet4", "physnet5"}


def test_an_unchanged_host_causes_no_placement_writes(example: InProcessCloud) -> None:
    example.run_agent_cycle()
    example.run_agent_cycle()  # the driver's Placement client discovers versions once
    before = example.provider_view()
    mark = example.placement_log.mark()
    example.run_agent_cycle()
    example.run_agent_cycle()
    assert example.placement_log.writes(mark) == []
    # per cycle: the conductor reads the compute node RP; the driver reads the generations
    # of the 5 pools' providers in one request and sends their devices as unchanged stubs
    assert example.placement_log.by_method(mark) == {"GET": 2 * (1 + 1)}
    assert example.provider_view() == before


def test_unchanged_devices_go_as_stubs_and_one_pf_in_turn_is_audited(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    inproc = make_inproc(smartnic={"physical_device_mappings": EXAMPLE_MAPPINGS,
                                   "audit_interval": 3})
    tree = build_scenario(inproc.sysfs_root, "example")
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.unchanged == ()  # the first report after a start without state is full
    inproc.run_agent_cycle()
    assert driver.unchanged == ()  # and so is the next: what changed is sent again once
    pfs = tuple(sorted(d.controlpath_id.cpid_info for d in driver.discover()))
    assert driver.audited == pfs[0]  # the third cycle audits the first PF
    audited = []
    for _ in range(3 * len(pfs)):
        sent = driver.discover()
        full = [d.controlpath_id.cpid_info for d in sent if not d.stub]
        assert full == ([driver.audited] if driver.audited else [])
        assert all(d.deployable_list == [] for d in sent if d.stub)
        audited.append(driver.audited)
    assert audited[2::3] == [*pfs[1:], pfs[0]]  # in turn, round the host
    assert set(audited[0::3]) == set(audited[1::3]) == {None}
    # a changed device goes in full (and is applied), the others stay stubs
    tree.set_num_vfs("0000:3b:00.1", 2)
    handles = len(inproc.attach_handles())
    inproc.run_agent_cycle()
    assert "0000:3b:00.1" not in driver.unchanged and len(driver.unchanged) == 5
    assert len(inproc.attach_handles()) == handles - 2
    assert inproc.provider_view()[f"{inproc.hostname}_0000:3b:00.1"]["inventories"][RC][
        "total"] == 2


def test_two_reports_of_an_unchanged_host_are_identical(example: InProcessCloud) -> None:
    example.run_agent_cycle()
    (driver,) = example.agent._rt.acc_drivers
    assert isinstance(driver, SmartNicDriver)
    driver.discover()  # the cycle after a change sends it again in full
    first = json.dumps(object_data(driver.discover()))
    second = json.dumps(object_data(driver.discover()))
    assert first == second


def test_a_broken_config_stops_the_agent_at_start(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    """stevedore's DriverManager re-raises what the driver's __init__ raised, so
    cyborg-agent dies at start with the one-line reason (before any report)."""
    inproc = make_inproc(start_agent=False, pools={"dpdk": {"devices": "ens1f0#0-1",
                                                           "resource_class": "FOO"}})
    with pytest.raises(ConfigError) as caught:
        inproc.start_agent()
    assert str(caught.value) == ("[smartnic_pool:dpdk] resource_class: 'FOO' is not a "
                                 "CUSTOM_* name (upper-case letters, digits and '_')")
    assert inproc.agent is None
    assert inproc.resource_providers() == []


def test_one_unreadable_device_is_skipped_and_the_rest_reported(
        make_inproc: Callable[..., InProcessCloud], caplog: pytest.LogCaptureFixture) -> None:
    inproc = make_inproc()
    tree = build_scenario(inproc.sysfs_root, "cx6dx_switchdev")
    tree.set_attr("0000:3b:00.1", "sriov_totalvfs", "many\n")
    caplog.set_level(logging.INFO)
    inproc.run_agent_cycle()
    assert list(inproc.provider_view()) == [f"{inproc.hostname}_0000:3b:00.0"]
    tree.set_attr("0000:3b:00.1", "sriov_totalvfs", "8\n")
    inproc.run_agent_cycle()
    assert len(inproc.provider_view()) == 2


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_a_skipped_device_is_logged_once_per_change(
        make_inproc: Callable[..., InProcessCloud], caplog: pytest.LogCaptureFixture) -> None:
    """docs/driver.md: skipped devices are logged once per change, not every 60 s."""
    inproc = make_inproc()
    tree = build_scenario(inproc.sysfs_root, "cx6dx_switchdev")
    caplog.set_level(logging.INFO)
    tree.set_attr("0000:3b:00.1", "sriov_totalvfs", "many\n")
    for _ in range(3):
        inproc.run_agent_cycle()
    assert _lines(caplog, "skipping 0000:3b:00.1") == 1
    tree.set_attr("0000:3b:00.1", "sriov_totalvfs", "8\n")
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()
    assert _lines(caplog, "0000:3b:00.1 is no longer skipped") == 1
    tree.set_attr("0000:3b:00.1", "sriov_totalvfs", "lots\n")  # a change: logged again
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()
    assert _lines(caplog, "skipping 0000:3b:00.1") == 2
    assert _lines(caplog, "skipping 0000:3b:00.0") == 0


def test_pools_without_a_physnet_are_warned_about_once_per_change(
        make_inproc: Callable[..., InProcessCloud], caplog: pytest.LogCaptureFixture) -> None:
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens1f0"})
    tree = build_scenario(inproc.sysfs_root, "cx6dx_switchdev")  # ens1f0 and ens1f1
    caplog.set_level(logging.INFO)
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()
    tree.set_num_vfs("0000:3b:00.1", 2)  # same pools, other VFs: nothing new to say
    inproc.run_agent_cycle()
    warnings = [r.getMessage() for r in caplog.records if "no physical network" in
                r.getMessage()]
    assert warnings == [
        f"smartnic: pool(s) {inproc.hostname}_0000:3b:00.1 have no physical network "
        "([smartnic] physical_device_mappings or [smartnic_pool:NAME] physnet): their "
        "attach handles carry no physical_network, so Neutron ports of vnic type "
        "accelerator-direct cannot use them"]
    assert all(r.levelname == "WARNING" for r in caplog.records
               if "no physical network" in r.getMessage())
    handles = [json.loads(ah["attach_info"]) for ah in inproc.attach_handles()
               if ah["deployable"] == f"{inproc.hostname}_0000:3b:00.1"]
    assert handles and all("physical_network" not in h for h in handles)


def test_a_failed_scan_reports_nothing_and_changes_nothing(
        example: InProcessCloud, monkeypatch: pytest.MonkeyPatch) -> None:
    example.run_agent_cycle()
    before = example.provider_view()
    handles = example.attach_handles()
    mark = example.placement_log.mark()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in the scanner")

    monkeypatch.setattr(driver_module, "scan", broken)
    with pytest.raises(ScanFailed, match="bug in the scanner"):
        example.run_agent_cycle()
    monkeypatch.undo()
    shutil.rmtree(example.sysfs_root / "sys/bus/pci/devices")  # wrong root / sysfs unmounted
    with pytest.raises(ScanFailed, match="no sys/bus/pci/devices directory"):
        example.run_agent_cycle()
    assert example.placement_log.since(mark) == []
    assert example.provider_view() == before
    assert example.attach_handles() == handles


def test_explicit_pools_split_a_pf(make_inproc: Callable[..., InProcessCloud]) -> None:
    inproc = make_inproc(
        smartnic={"physical_device_mappings": "physnet1:ens1f0", "extra_traits": "CUSTOM_RACK7"},
        pools={"dpdk": {"devices": "ens1f0#0-1", "resource_class": "CUSTOM_DPDK_VF",
                        "traits": "CUSTOM_DPDK", "physnet": "dpdknet"}})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf("0000:3b:00.0", PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=6,
        vf_drivers={0: "vfio-pci", 1: "vfio-pci"}))
    inproc.run_agent_cycle()
    view = inproc.provider_view()
    default = view[f"{inproc.hostname}_0000:3b:00.0"]
    dpdk = view[f"{inproc.hostname}_0000:3b:00.0_dpdk"]
    assert default["inventories"] == {RC: {"total": 4, "max_unit": 4, "reserved": 0}}
    assert dpdk["inventories"] == {"CUSTOM_DPDK_VF": {"total": 2, "max_unit": 2,
                                                      "reserved": 0}}
    assert {"CUSTOM_DPDK", "CUSTOM_RACK7", "CUSTOM_PHYSNET_DPDKNET",
            "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"} <= set(dpdk["traits"])
    assert {"CUSTOM_RACK7", "CUSTOM_PHYSNET_PHYSNET1",
            "CUSTOM_SMARTNIC_VF_DRIVER_MLX5_CORE"} <= set(default["traits"])
    assert "CUSTOM_DPDK" not in default["traits"]
