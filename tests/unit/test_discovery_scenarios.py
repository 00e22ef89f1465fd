"""Each named host scenario scans into exactly the model a person reading the hardware expects.

Expectations are written out by hand (ids, drivers, eswitch modes, firmware, VF indexes and
addresses, physnets, NUMA, IOMMU groups), not computed from the builder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.hostgen import build_scenario, scratch_dir


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


def _scan(root: Path, name: str, **options: object) -> Host:
    tree = build_scenario(root, name)
    physnets = parse_physnet_mappings(tree.physnet_mappings())
    return scan(root, ScanOptions(physnets=physnets, hostname="node-1", **options))  # type: ignore[arg-type]


def _vfs(pf: PhysicalFunction) -> list[tuple[int, str, str | None, str | None]]:
    return [(vf.index, str(vf.address), vf.driver, vf.netdev) for vf in pf.virtual_functions]


def test_cx6dx_switchdev(root: Path) -> None:
    host = _scan(root, "cx6dx_switchdev")
    assert [str(pf.address) for pf in host.physical_functions] == ["0000:3b:00.0", "0000:3b:00.1"]
    pf0, pf1 = host.physical_functions
    assert (pf0.vendor_id, pf0.device_id, pf0.subsystem_vendor_id, pf0.subsystem_device_id) == (
        "15b3", "101d", "15b3", "0042")
    assert (pf0.vendor, pf0.model, pf0.model_key) == ("nvidia", "ConnectX-6 Dx", "CONNECTX_6_DX")
    assert (pf0.driver, pf0.netdev, pf0.numa_node) == ("mlx5_core", "ens1f0", 0)
    assert pf0.eswitch_mode == "switchdev"
    assert (pf0.firmware.version, pf0.firmware.mode) == ("22.36.1010", None)
    assert (pf0.total_vfs, pf0.num_vfs, pf0.vf_device_id) == (8, 4, "101e")
    assert (pf0.physnet, pf1.physnet) == ("physnet1", "physnet2")
    assert pf0.serial == "MT2034X12345"
    assert pf0.representors == ("ens1f0_0", "ens1f0_1", "ens1f0_2", "ens1f0_3")
    assert (pf0.link.mac, pf0.link.operstate, pf0.link.speed_mbps, pf0.link.mtu) == (
        "b8:ce:f6:00:3b:00", "up", 100000, 1500)
    assert _vfs(pf0) == [(0, "0000:3b:00.2", "vfio-pci", None),
                         (1, "0000:3b:00.3", "vfio-pci", None),
                         (2, "0000:3b:00.4", "mlx5_core", "ens1f0v2"),
                         (3, "0000:3b:00.5", "mlx5_core", "ens1f0v3")]
    assert _vfs(pf1)[0] == (0, "0000:3b:01.2", "vfio-pci", None)
    # one group per function, in creation order after the root port's (10)
    assert [pf0.iommu_group] + [vf.iommu_group for vf in pf0.virtual_functions] == [
        11, 12, 13, 14, 15]
    for vf in pf0.virtual_functions:
        assert (vf.vendor_id, vf.device_id, vf.numa_node) == ("15b3", "101e", 0)
    assert host.skipped == ()


def test_cx6dx_without_devlink_infers_the_same_from_sysfs(root: Path) -> None:
    host = _scan(root, "cx6dx_switchdev", use_devlink=False)
    pf0 = host.physical_functions[0]
    assert pf0.eswitch_mode == "switchdev"  # compat/devlink/mode
    assert pf0.firmware.version == "22.36.1010"  # infiniband/mlx5_0/fw_ver
    assert pf0.serial == "MT2034X12345"  # the VPD's SN keyword


def test_bluefield2_nic_mode(root: Path) -> None:
    host = _scan(root, "bluefield2")
    for pf in host.physical_functions:
        assert (pf.model, pf.device_id, pf.eswitch_mode) == ("BlueField-2", "a2d6", "legacy")
        assert (pf.firmware.version, pf.firmware.mode) == ("24.35.2000", "nic")
        assert pf.numa_node == 1
    assert _vfs(host.physical_functions[1]) == [
        (0, "0000:af:02.2", "mlx5_core", "ens5f1np1v0"),
        (1, "0000:af:02.3", "mlx5_core", "ens5f1np1v1")]


def test_bluefield2_dpu_mode_has_no_host_eswitch(root: Path) -> None:
    host = _scan(root, "bluefield2_dpu")
    for pf in host.physical_functions:
        assert pf.firmware.mode == "dpu"
        assert pf.eswitch_mode is None  # owned by the Arm side (ECPF)
        assert pf.representors == ()


def test_e810_comms(root: Path) -> None:
    host = _scan(root, "e810_comms")
    pf0, pf1 = host.physical_functions
    assert (pf0.vendor, pf0.model, pf0.driver, pf0.netdev) == ("intel", "E810", "ice", "ens2f0")
    assert (pf0.firmware.version, pf0.firmware.mode) == ("4.40", "comms")
    assert (pf0.eswitch_mode, pf0.physnet, pf0.numa_node) == ("legacy", "physnet3", 1)
    assert (pf0.total_vfs, pf0.num_vfs, pf0.vf_device_id) == (128, 8, "1889")
    assert [vf.driver for vf in pf0.virtual_functions] == ["vfio-pci"] * 4 + ["iavf"] * 4
    assert [vf.netdev for vf in pf0.virtual_functions][3:5] == [None, "ens2f0v4"]
    assert pf0.virtual_functions[4].link.speed_mbps == 10000
    assert {vf.device_id for vf in pf0.virtual_functions} == {"1889"}
    # PF1's VFs follow PF0's 128 reserved routing ids
    assert _vfs(pf1) == [(i, f"0000:5e:11.{i}", "vfio-pci", None) for i in range(4)]
    assert pf1.physnet == "physnet4"
    assert pf0.serial == "b4-96-91-03-00-00-5e-00"


def test_e810_without_devlink_has_no_firmware_mode(root: Path) -> None:
    host = _scan(root, "e810_comms", use_devlink=False)
    pf0 = host.physical_functions[0]
    assert pf0.firmware.mode is None and pf0.firmware.version is None  # only devlink knows
    assert pf0.eswitch_mode == "legacy"


def test_x710_legacy(root: Path) -> None:
    host = _scan(root, "x710_legacy")
    pf0, pf1 = host.physical_functions
    assert (pf0.model, pf0.driver, pf0.eswitch_mode, pf0.firmware.version) == (
        "X710", "i40e", "legacy", "9.20")
    assert _vfs(pf0) == [(i, f"0000:18:01.{i}", "iavf", f"ens3f0v{i}") for i in range(4)]
    assert (pf1.num_vfs, pf1.virtual_functions, pf1.physnet) == (0, (), None)
    assert (pf1.link.operstate, pf1.link.speed_mbps) == ("down", None)


def test_bcm57414(root: Path) -> None:
    host = _scan(root, "bcm57414")
    pf0 = host.physical_functions[0]
    assert (pf0.vendor, pf0.model, pf0.driver, pf0.firmware.version) == (
        "broadcom", "BCM57414", "bnxt_en", "223.0.161.0")
    assert [vf.device_id for vf in pf0.virtual_functions] == ["16dc", "16dc"]
    assert pf0.eswitch_mode == "legacy"


def test_noise_is_ignored_except_the_uncatalogued_sriov_nic(root: Path) -> None:
    host = _scan(root, "noise")
    assert host.physical_functions == ()
    assert [(s.address, s.reason) for s in host.skipped] == [(
        "0000:01:00.0", "8086:1521 is not a catalogued SmartNIC model: select it in "
                        "[smartnic] devices or add it to [smartnic] extra_models")]


def test_example_host(root: Path) -> None:
    host = _scan(root, "example")
    assert host.hostname == "node-1"
    assert [(str(pf.address), pf.model, pf.eswitch_mode, pf.physnet, len(pf.virtual_functions))
            for pf in host.physical_functions] == [
        ("0000:18:00.0", "X710", "legacy", "physnet5", 4),
        ("0000:18:00.1", "X710", "legacy", None, 0),
        ("0000:3b:00.0", "ConnectX-6 Dx", "switchdev", "physnet1", 4),
        ("0000:3b:00.1", "ConnectX-6 Dx", "switchdev", "physnet2", 4),
        ("0000:5e:00.0", "E810", "legacy", "physnet3", 8),
        ("0000:5e:00.1", "E810", "legacy", "physnet4", 4)]
    assert [s.address for s in host.skipped] == ["0000:01:00.0"]
    assert host.iommu_enabled
    assert host.kernel_cmdline is not None and "intel_iommu=on" in host.kernel_cmdline
    assert [(p.numa_node, p.size_kb, p.total, p.free) for p in host.hugepages] == [
        (None, 2048, 1024, 1012), (None, 1048576, 16, 14),
        (0, 2048, 512, 512), (0, 1048576, 8, 8),
        (1, 2048, 512, 500), (1, 1048576, 8, 6)]


def test_hostname_defaults_to_fqdn(root: Path) -> None:
    import socket

    build_scenario(root, "x710_legacy")
    assert scan(root).hostname == socket.getfqdn()


def test_no_iommu_no_groups(root: Path) -> None:
    from cyborg_smartnic.hostgen import SysfsTree, x710_legacy

    tree = SysfsTree(root, iommu=False)
    x710_legacy(tree)
    host = scan(root, ScanOptions(hostname="h"))
    assert not host.iommu_enabled
    assert {pf.iommu_group for pf in host.physical_functions} == {None}
    assert host.hugepages == ()


@pytest.mark.parametrize("name", ["cx6dx_switchdev", "e810_comms", "example"])
def test_scan_is_deterministic(root: Path, name: str) -> None:
    build_scenario(root, name)
    first = scan(root, ScanOptions(hostname="h"))
    assert first.physical_functions  # two empty scans would prove nothing
    assert scan(root, ScanOptions(hostname="h")) == first


def test_vf_enslaved_to_a_bond(root: Path) -> None:
    import os

    tree = build_scenario(root, "x710_legacy")
    bond = root / "sys/devices/virtual/net/bond0"
    bond.mkdir(parents=True)
    ndir = tree.netdev_path("ens3f0v1")
    os.symlink(os.path.relpath(bond, ndir), ndir / "master")
    host = scan(root, ScanOptions(hostname="h"))
    masters = [vf.netdev_master for vf in host.physical_functions[0].virtual_functions]
    assert masters == [None, "bond0", None, None]
