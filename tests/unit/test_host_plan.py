"""The pure planner on hand-made model objects: ordering rules, refusals, idempotence."""

from __future__ import annotations

import pytest

from cyborg_smartnic.discovery.model import (
    Firmware,
    Host,
    HugepagePool,
    Link,
    PhysicalFunction,
    Skipped,
    VirtualFunction,
)
from cyborg_smartnic.host.config import (
    DeviceConfig,
    HostConfig,
    HugepageConfig,
    InvalidHostConfig,
    Origin,
    VfDriverRange,
)
from cyborg_smartnic.host.inuse import InUse, VfUser
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.steps import (
    BIND_DRIVER,
    FW_RESET,
    INSTALL_DDP,
    MANUAL,
    REBOOT,
    RELOAD_DRIVER,
    SET_DEVLINK_PARAM,
    SET_ESWITCH_MODE,
    SET_HUGEPAGES,
    SET_NUMVFS,
    SET_NV_CONFIG,
    Plan,
)
from cyborg_smartnic.pci import PciAddress

ORIGIN = Origin("host.yaml", 3, 5, "devices[0].address")
MODELS = {  # driver -> (vendor, device, vf device)
    "mlx5_core": ("15b3", "101d", "101e"),
    "ice": ("8086", "1592", "1889"),
    "i40e": ("8086", "1572", "154c"),
    "bluefield": ("15b3", "a2d6", "101e"),
}


def make_pf(address: str = "0000:3b:00.0", kind: str = "mlx5_core", *, num_vfs: int = 0,
            total_vfs: int = 8, vf_drivers: dict[int, str | None] | None = None,
            eswitch: str | None = "legacy", fw_mode: str | None = None,
            fsm: str | None = None, driver: str | None = "use-kind",
            netdev: str = "ens1f0") -> PhysicalFunction:
    vendor, device, vf_device = MODELS[kind]
    pf_driver = ("mlx5_core" if kind == "bluefield" else kind) if driver == "use-kind" \
        else driver
    default_vf = {"mlx5_core": "mlx5_core", "ice": "iavf", "i40e": "iavf",
                  "bluefield": "mlx5_core"}[kind]
    base = PciAddress.parse(address)
    vfs = []
    for index in range(num_vfs):
        drv = (vf_drivers or {}).get(index, default_vf)
        vfs.append(VirtualFunction(
            address=PciAddress(base.domain, base.bus, 2 + index // 8, index % 8), index=index,
            vendor_id=vendor, device_id=vf_device, driver=drv,
            netdev=None if drv in (None, "vfio-pci") else f"{netdev}v{index}", link=Link(),
            iommu_group=100 + index, numa_node=0))
    return PhysicalFunction(
        address=base, vendor_id=vendor, device_id=device, subsystem_vendor_id=None,
        subsystem_device_id=None, vendor="x", model=kind, model_key=kind.upper(),
        driver=pf_driver, numa_node=0, netdev=netdev, link=Link(), iommu_group=1,
        eswitch_mode=eswitch, firmware=Firmware("1.0", fw_mode), physnet=None,
        total_vfs=total_vfs, num_vfs=num_vfs, vf_device_id=vf_device,
        virtual_functions=tuple(vfs), flow_steering_mode=fsm)


def host(*pfs: PhysicalFunction, pools: tuple[HugepagePool, ...] = ()) -> Host:
    return Host("node1", tuple(pfs), (), hugepages=pools)


def device(address: str = "0000:3b:00.0", **kw: object) -> DeviceConfig:
    drivers = kw.pop("vf_drivers", {})
    assert isinstance(drivers, dict)
    ranges = tuple(VfDriverRange(tuple(r), d, f"{r[0]}-{r[-1]}") for r, d in drivers.items())
    return DeviceConfig(origin=ORIGIN, address=PciAddress.parse(address), vf_drivers=ranges,
                        **kw)  # type: ignore[arg-type]


def config(*devices: DeviceConfig, hugepages: tuple[HugepageConfig, ...] = ()) -> HostConfig:
    return HostConfig("host.yaml", devices, hugepages)


def kinds(result: Plan) -> list[tuple[str, object, object]]:
    return [(s.kind, s.from_value, s.to_value) for s in result.steps]


def test_nothing_to_do_when_the_host_matches() -> None:
    current = host(make_pf(num_vfs=4, eswitch="switchdev"))
    result = plan(config(device(vf_count=4, eswitch_mode="switchdev")), current, InUse())
    assert result.steps == ()


def test_numvfs_n_to_m_goes_through_zero() -> None:
    current = host(make_pf(kind="i40e", num_vfs=4, total_vfs=32))
    result = plan(config(device(vf_count=8)), current, InUse())
    assert kinds(result) == [(SET_NUMVFS, 4, 0), (SET_NUMVFS, 0, 8)]
    destroy = result.steps[0]
    assert destroy.disruptive and len(destroy.destroys_vfs) == 4
    assert not result.steps[1].disruptive and result.steps[1].destroys_vfs == ()


def test_new_vfs_get_their_drivers_bound_after_they_exist() -> None:
    current = host(make_pf(kind="ice", num_vfs=0, total_vfs=64))
    wanted = device(vf_count=4, vf_drivers={range(0, 2): "vfio-pci", range(2, 4): "default"})
    result = plan(config(wanted), current, InUse())
    assert kinds(result) == [
        (SET_NUMVFS, 0, 4), (BIND_DRIVER, None, "vfio-pci"), (BIND_DRIVER, None,
                                                                   "vfio-pci"),
        (BIND_DRIVER, None, "iavf"), (BIND_DRIVER, None, "iavf")]
    assert [s.vf_index for s in result.steps[1:]] == [0, 1, 2, 3]
    assert result.steps[1].target == "0000:3b:00.0 vf0"


def test_rebinding_an_existing_vf_disturbs_only_that_vf() -> None:
    current = host(make_pf(kind="ice", num_vfs=4, total_vfs=64))
    result = plan(config(device(vf_drivers={range(0, 1): "vfio-pci"})), current, InUse())
    (step,) = result.steps
    assert (step.kind, step.from_value, step.to_value) == (BIND_DRIVER, "iavf", "vfio-pci")
    assert step.destroys_vfs == ("0000:3b:02.0",) and step.disruptive


def test_ice_eswitch_change_needs_zero_vfs_and_restores_drivers() -> None:
    current = host(make_pf(kind="ice", num_vfs=2, total_vfs=64, vf_drivers={0: "vfio-pci"}))
    result = plan(config(device(eswitch_mode="switchdev")), current, InUse())
    assert kinds(result) == [
        (SET_NUMVFS, 2, 0), (SET_ESWITCH_MODE, "legacy", "switchdev"),
        (SET_NUMVFS, 0, 2), (BIND_DRIVER, None, "vfio-pci")]
    assert result.steps[1].destroys_vfs == ()  # no VF exists while the mode changes
    assert result.steps[3].reason.startswith("restore the driver VF 0 had")


def test_mlx5_eswitch_change_unbinds_then_rebinds_vfs() -> None:
    current = host(make_pf(num_vfs=2, vf_drivers={0: "vfio-pci"}))
    result = plan(config(device(eswitch_mode="switchdev")), current, InUse())
    assert kinds(result) == [
        (BIND_DRIVER, "vfio-pci", None), (BIND_DRIVER, "mlx5_core", None),
        (SET_ESWITCH_MODE, "legacy", "switchdev"),
        (BIND_DRIVER, None, "vfio-pci"), (BIND_DRIVER, None, "mlx5_core")]
    assert result.steps[2].destroys_vfs == ("0000:3b:02.0", "0000:3b:02.1")


def test_mlx5_eswitch_change_with_a_count_change_happens_at_zero_vfs() -> None:
    current = host(make_pf(num_vfs=2))
    result = plan(config(device(vf_count=4, eswitch_mode="switchdev")), current, InUse())
    assert kinds(result) == [(SET_NUMVFS, 2, 0), (SET_ESWITCH_MODE, "legacy", "switchdev"),
                             (SET_NUMVFS, 0, 4)]


def test_flow_steering_changes_only_in_legacy_mode() -> None:
    current = host(make_pf(num_vfs=0, eswitch="switchdev", fsm="dmfs"))
    result = plan(config(device(flow_steering_mode="smfs")), current, InUse())
    assert kinds(result) == [(SET_ESWITCH_MODE, "switchdev", "legacy"),
                             (SET_DEVLINK_PARAM, "dmfs", "smfs"),
                             (SET_ESWITCH_MODE, "legacy", "switchdev")]
    assert result.steps[1].param == "flow_steering_mode"


def test_flow_steering_before_switching_to_switchdev() -> None:
    current = host(make_pf(num_vfs=0, eswitch="legacy", fsm="dmfs"))
    result = plan(config(device(flow_steering_mode="smfs", eswitch_mode="switchdev")),
                  current, InUse())
    assert kinds(result) == [(SET_DEVLINK_PARAM, "dmfs", "smfs"),
                             (SET_ESWITCH_MODE, "legacy", "switchdev")]


def test_unknown_flow_steering_in_switchdev_is_a_manual_check() -> None:
    current = host(make_pf(num_vfs=0, eswitch="switchdev", fsm=None))
    result = plan(config(device(flow_steering_mode="smfs")), current, InUse())
    (step,) = result.steps
    assert step.kind == MANUAL and "devlink dev param show" in step.reason
    assert result.refused == ()


def test_flow_steering_on_ice_is_refused() -> None:
    current = host(make_pf(kind="ice"))
    result = plan(config(device(flow_steering_mode="smfs")), current, InUse())
    (step,) = result.refused
    assert "mlx5 devlink parameter" in str(step.refused)


def test_vf_in_use_refuses_destroying_steps() -> None:
    current = host(make_pf(kind="i40e", num_vfs=4, total_vfs=32))
    busy = InUse((VfUser("0000:3b:02.1", "/dev/vfio/101 is held open by pid 42 (qemu)"),))
    result = plan(config(device(vf_count=8)), current, busy)
    (refused,) = result.refused
    assert refused.kind == SET_NUMVFS and refused.to_value == 0
    assert "VF 0000:3b:02.1 is in use (/dev/vfio/101 is held open by pid 42" in str(
        refused.refused)


def test_vf_in_use_refuses_its_rebind_but_not_other_vfs() -> None:
    current = host(make_pf(kind="ice", num_vfs=2, total_vfs=64))
    busy = InUse((VfUser("0000:3b:02.0", "its netdev ens1f0v0 is enslaved to bond0"),))
    result = plan(config(device(vf_drivers={range(0, 2): "vfio-pci"})), current, busy)
    assert [bool(s.refused) for s in result.steps] == [True, False]


def test_bluefield_in_dpu_mode_refuses_host_side_changes() -> None:
    current = host(make_pf(kind="bluefield", num_vfs=2, total_vfs=16, fw_mode="dpu"))
    result = plan(config(device(vf_count=4, eswitch_mode="switchdev")), current, InUse())
    refused = result.refused
    assert {s.kind for s in refused} == {SET_NUMVFS, SET_ESWITCH_MODE}
    assert all("DPU mode" in str(s.refused) for s in refused)


def test_bluefield_with_unknown_mode_is_refused_too() -> None:
    current = host(make_pf(kind="bluefield", num_vfs=0, total_vfs=16, fw_mode=None))
    result = plan(config(device(vf_count=2)), current, InUse())
    assert "cannot tell whether" in str(result.refused[0].refused)


def test_bluefield_in_nic_mode_behaves_like_connectx() -> None:
    current = host(make_pf(kind="bluefield", num_vfs=0, total_vfs=16, fw_mode="nic"))
    result = plan(config(device(vf_count=2)), current, InUse())
    assert kinds(result) == [(SET_NUMVFS, 0, 2)] and result.refused == ()


def test_firmware_mode_change_is_nv_config_then_a_reboot() -> None:
    current = host(make_pf(kind="bluefield", fw_mode="dpu", total_vfs=16))
    result = plan(config(device(firmware_mode="nic", vf_count=4)), current, InUse())
    nv = [s for s in result.steps if s.kind == SET_NV_CONFIG]
    assert {s.param: s.to_value for s in nv}["INTERNAL_CPU_PAGE_SUPPLIER"] == 1
    assert result.steps[-1].kind == REBOOT and result.steps[-1].disruption == "reboot"
    assert not any(s.kind == SET_NUMVFS for s in result.steps)  # after the reboot
    assert result.manual == () and result.refused == ()
    assert any("--resume" in note for note in result.notes)
    ice = plan(config(device(firmware_mode="comms")),
               host(make_pf(kind="ice", fw_mode="os_default")), InUse())
    # no package directory was given: the install is planned but refused, saying why
    assert ice.steps[0].kind == INSTALL_DDP and ice.steps[0].refused
    assert ice.steps[1].kind == RELOAD_DRIVER and ice.steps[1].disruption == "driver-reload"


def test_too_many_vfs_and_no_pf_driver_are_refused() -> None:
    result = plan(config(device(vf_count=9)), host(make_pf(kind="i40e", total_vfs=8)),
                  InUse())
    assert "sriov_totalvfs is 8" in str(result.refused[0].refused)
    # mlx5: the VF limit is NV config, raised and activated by a firmware reset first
    result = plan(config(device(vf_count=9)), host(make_pf(total_vfs=8)), InUse())
    assert [(s.kind, s.param, s.to_value) for s in result.steps] == [
        (SET_NV_CONFIG, "SRIOV_EN", 1), (SET_NV_CONFIG, "NUM_OF_VFS", 9),
        (FW_RESET, None, "active"), (SET_NUMVFS, None, 9)]
    assert result.refused == () and result.disruption == "fw-reset"
    result = plan(config(device(vf_count=2)), host(make_pf(driver=None)), InUse())
    assert "no PF driver" in str(result.refused[0].refused)


def test_switchdev_on_a_model_without_it_is_refused() -> None:
    result = plan(config(device(eswitch_mode="switchdev")), host(make_pf(kind="i40e")),
                  InUse())
    assert "has no switchdev" in str(result.refused[0].refused)


def test_hugepages_come_first_and_missing_pools_are_refused() -> None:
    pools = (HugepagePool(0, 1048576, total=2, free=2, surplus=0),
             HugepagePool(0, 2048, total=0, free=0, surplus=0))
    current = host(make_pf(num_vfs=0), pools=pools)
    wanted = config(device(vf_count=2), hugepages=(
        HugepageConfig(ORIGIN, 1048576, 4, 0), HugepageConfig(ORIGIN, 1048576, 4, 1)))
    result = plan(wanted, current, InUse())
    assert [s.kind for s in result.steps] == [SET_HUGEPAGES, SET_HUGEPAGES, SET_NUMVFS]
    assert (result.steps[0].from_value, result.steps[0].to_value) == (2, 4)
    assert "no 1048576 kB pool on NUMA node 1" in str(result.steps[1].refused)


def test_releasing_hugepages_never_goes_below_pages_in_use() -> None:
    pools = (HugepagePool(1, 2048, total=512, free=500, surplus=0),)
    wanted = config(hugepages=(HugepageConfig(ORIGIN, 2048, 4, 1),))
    result = plan(wanted, host(pools=pools), InUse())
    (step,) = result.steps
    assert (step.from_value, step.to_value) == (512, 12)
    assert step.reason == "release hugepages down to the 12 in use"
    assert any("asks for 4 pages but 12 are in use" in note for note in result.notes)


def test_hugepages_all_in_use_plan_no_write_but_report_the_shortfall() -> None:
    pools = (HugepagePool(1, 2048, total=12, free=0, surplus=0),)
    wanted = config(hugepages=(HugepageConfig(ORIGIN, 2048, 4, 1),))
    result = plan(wanted, host(pools=pools), InUse())
    assert result.steps == ()
    assert any("asks for 4 pages but 12 are in use" in note for note in result.notes)


def test_releasing_free_hugepages_goes_all_the_way() -> None:
    pools = (HugepagePool(1, 2048, total=512, free=512, surplus=0),)
    wanted = config(hugepages=(HugepageConfig(ORIGIN, 2048, 4, 1),))
    result = plan(wanted, host(pools=pools), InUse())
    (step,) = result.steps
    assert (step.to_value, step.reason) == (4, "release hugepages")
    assert result.notes == ()


def test_unknown_pf_is_an_error_naming_the_line() -> None:
    skipped = Host("node1", (), (Skipped("0000:3b:00.0", "driver vfio-pci (passed through)"),))
    with pytest.raises(InvalidHostConfig) as caught:
        plan(config(device()), skipped, InUse())
    assert caught.value.details == ("host.yaml:3:5: devices[0].address: no PF '0000:3b:00.0' on "
                                 "this host (discovery skipped it: driver vfio-pci "
                                 "(passed through))")


def test_two_entries_for_one_pf_are_an_error() -> None:
    by_netdev = DeviceConfig(origin=Origin("host.yaml", 9, 5, "devices[1].netdev"),
                             netdev="ens1f0")
    with pytest.raises(InvalidHostConfig) as caught:
        plan(config(device(), by_netdev), host(make_pf()), InUse())
    assert caught.value.details == ("host.yaml:9:5: devices[1].netdev: PF 0000:3b:00.0 is also "
                                    "selected by the entry at line 3")


def test_selector_entries_use_the_selector_function() -> None:
    entry = DeviceConfig(origin=ORIGIN, select="8086:1572", vf_count=2)
    pfs = (make_pf("0000:18:00.0", kind="i40e", total_vfs=32),
           make_pf("0000:3b:00.0", kind="mlx5_core"))
    result = plan(config(entry), host(*pfs), InUse())
    assert [s.pf for s in result.steps] == ["0000:18:00.0"]
    by_vendor = DeviceConfig(origin=ORIGIN, select="15b3:*", vf_count=1)
    assert [s.pf for s in plan(config(by_vendor), host(*pfs), InUse()).steps] == [
        "0000:3b:00.0"]


def test_reserved_vfs_become_a_note() -> None:
    result = plan(config(device(reserved_vfs=(6, 7))), host(make_pf(num_vfs=8)), InUse())
    assert result.steps == ()
    assert result.notes == ("0000:3b:00.0: reserved VFs (6-7) are held back from Cyborg (see "
                            "`host conf` for the [smartnic] lines)",)


def test_plan_is_serialisable_and_stable() -> None:
    current = host(make_pf(kind="i40e", num_vfs=4, total_vfs=32))
    first = plan(config(device(vf_count=8)), current, InUse())
    second = plan(config(device(vf_count=8)), current, InUse())
    assert first == second
    data = first.to_dict()
    assert data["refused"] == 0 and len(data["destroys_vfs"]) == 4
    assert data["steps"][0]["kind"] == "set_numvfs" and data["steps"][0]["from"] == 4


def test_blind_in_use_detection_refuses_destroying_but_not_creating() -> None:
    blind = InUse(notes=("could not read ...",), blind="could not read the open files of 2 "
                                                       "process(es) (run as root)")
    result = plan(config(device(vf_count=8)), host(make_pf(kind="i40e", num_vfs=4,
                                                           total_vfs=32)), blind)
    assert str(result.refused[0].refused) == (
        "cannot tell whether these VFs are free: could not read the open files of 2 "
        "process(es) (run as root)")
    fresh = plan(config(device(vf_count=4)), host(make_pf(kind="i40e", total_vfs=32)), blind)
    assert fresh.refused == () and [s.kind for s in fresh.steps] == [SET_NUMVFS]


def test_an_uncatalogued_model_cannot_use_default_or_switchdev() -> None:
    from cyborg_smartnic.catalog import Catalog

    current = host(make_pf(kind="i40e", num_vfs=0, total_vfs=32))
    wanted = device(vf_count=1, vf_drivers={range(0, 1): "default"}, eswitch_mode="switchdev")
    result = plan(config(wanted), current, InUse(), catalog=Catalog(models=()))
    reasons = [str(s.refused) for s in result.refused]
    assert reasons == ["this model has no switchdev eswitch mode",
                       "'default' VF driver unknown for this model; name the driver in "
                       "vf_drivers"]
