"""Broken and changing hosts: one bad device costs that device only, with a reason.

Every case builds a broken tree (``cyborg_smartnic.hostgen.PATHOLOGIES``) or breaks it during the
scan through the reader hook; the scan must finish, keep the bystander PF intact, and list the
casualty in ``Host.skipped`` (or degrade a field to unknown) with a warning in the log.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.sysfs import SysfsReader
from cyborg_smartnic.hostgen import (
    BYSTANDER_PF,
    PATHOLOGIES,
    PATHOLOGY_PF,
    FunctionIds,
    build_pathology,
    pathology_base,
    scratch_dir,
)
from cyborg_smartnic.pci import PciAddress

OPTIONS = ScanOptions(hostname="h")


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


def _pf(host: Host, address: str) -> PhysicalFunction | None:
    return host.find_pf(PciAddress.parse(address))


def _vf_indexes(host: Host) -> list[int]:
    pf = _pf(host, PATHOLOGY_PF)
    assert pf is not None
    return [vf.index for vf in pf.virtual_functions]


def _skips(host: Host) -> list[tuple[str, str]]:
    return [(s.address, s.reason) for s in host.skipped]


# name -> (expected VF indexes of the broken PF, or None when the PF itself is skipped;
#          expected skipped rows)
EXPECTED: dict[str, tuple[list[int] | None, list[tuple[str, str]]]] = {
    "vanished_vf": ([0, 1, 3], [(
        "0000:3b:00.4", "virtfn2 of 0000:3b:00.0 points to a function that is not there "
                        "(removed during the scan?)")]),
    "dangling_virtfn": ([0, 1, 2, 3], [(
        "0000:3b:01.1", "virtfn7 of 0000:3b:00.0 points to a function that is not there "
                        "(removed during the scan?)")]),
    "vf_without_physfn": ([0, 2, 3], [(
        "0000:3b:00.3", "virtfn1 of 0000:3b:00.0, but its physfn link is missing")]),
    "duplicate_virtfn": ([0, 1, 2, 3], [
        ("0000:3b:00.0", "virtfn03 -> 0000:3b:00.2 repeats VF index 3 "
                         "(kept virtfn3 -> 0000:3b:00.5)"),
        ("0000:3b:00.0", "virtfn4 -> 0000:3b:00.3 points to a VF already listed by virtfn1; "
                         "ignored")]),
    "pf_without_netdev": ([0, 1, 2, 3], []),
    "unbound_pf": ([0, 1, 2, 3], []),
    "bad_vendor": (None, [(
        "0000:3b:00.0", "bad sysfs value: vendor '0xZZ': expected 0x and 4 hexadecimal digits")]),
    "empty_device": (None, [(
        "0000:3b:00.0", "bad sysfs value: device '': expected 0x and 4 hexadecimal digits")]),
    "huge_totalvfs": (None, [(
        "0000:3b:00.0", "bad sysfs value: sriov_totalvfs '99999999999999999999': expected a "
                        "decimal integer")]),
    "numvfs_over_total": (None, [(
        "0000:3b:00.0", "bad sysfs value: sriov_numvfs '12': exceeds sriov_totalvfs 8")]),
    "vendor_is_directory": (None, [(
        "0000:3b:00.0", "cannot read /sys/bus/pci/devices/0000:3b:00.0/vendor: Is a directory")]),
    "vf_device_is_directory": ([0, 1, 2], [(
        "0000:3b:00.5", "VF 3 of 0000:3b:00.0: cannot read "
                        "/sys/bus/pci/devices/0000:3b:00.5/device: Is a directory")]),
    "bad_vf_device": ([0, 1, 2], [(
        "0000:3b:00.5", "VF 3 of 0000:3b:00.0: device '0x10': expected 0x and 4 hexadecimal "
                        "digits")]),
    "bad_numa_and_mac": ([0, 1, 2, 3], []),
}


def test_every_pathology_has_an_expectation() -> None:
    assert set(EXPECTED) == set(PATHOLOGIES)


@pytest.mark.parametrize("name", sorted(PATHOLOGIES))
def test_pathology(root: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    build_pathology(root, name)
    with caplog.at_level(logging.WARNING):
        host = scan(root, OPTIONS)
    vfs, skipped = EXPECTED[name]
    bystander = _pf(host, BYSTANDER_PF)
    assert bystander is not None and len(bystander.virtual_functions) == 2
    if vfs is None:
        assert _pf(host, PATHOLOGY_PF) is None
    else:
        assert _vf_indexes(host) == vfs
    assert _skips(host) == skipped
    for address, reason in skipped:
        assert any(address in r.getMessage() and reason in r.getMessage()
                   for r in caplog.records), f"not logged: {address}: {reason}"


def test_pf_without_netdev_degrades(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    build_pathology(root, "pf_without_netdev")
    with caplog.at_level(logging.WARNING):
        pf = _pf(scan(root, OPTIONS), PATHOLOGY_PF)
    assert pf is not None
    assert (pf.netdev, pf.link.mac, pf.representors, pf.driver) == (None, None, (), "mlx5_core")
    assert "0000:3b:00.0: PF bound to mlx5_core has no netdev" in caplog.text


def test_physnet_by_address_survives_a_missing_netdev(root: Path) -> None:
    from cyborg_smartnic.discovery.physnets import parse_physnet_mappings

    build_pathology(root, "pf_without_netdev")
    by_name = scan(root, ScanOptions(physnets=parse_physnet_mappings(["physnet1:ens1f0"])))
    by_address = scan(root, ScanOptions(physnets=parse_physnet_mappings(
        [f"physnet1:{PATHOLOGY_PF}"])))
    assert _pf(by_name, PATHOLOGY_PF).physnet is None  # type: ignore[union-attr]
    assert _pf(by_address, PATHOLOGY_PF).physnet == "physnet1"  # type: ignore[union-attr]


def test_unbound_pf_has_no_eswitch(root: Path) -> None:
    build_pathology(root, "unbound_pf")
    pf = _pf(scan(root, OPTIONS), PATHOLOGY_PF)
    assert pf is not None and (pf.driver, pf.eswitch_mode) == (None, None)


def test_bad_numa_and_mac_degrade_to_unknown(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    build_pathology(root, "bad_numa_and_mac")
    with caplog.at_level(logging.WARNING):
        pf = _pf(scan(root, OPTIONS), PATHOLOGY_PF)
    assert pf is not None and (pf.numa_node, pf.link.mac) == (None, None)
    assert pf.link.operstate == "up"
    assert "numa_node 'abc'" in caplog.text and "address 'zz:zz'" in caplog.text


def _scan_with_hook(root: Path, trigger: str, action: object) -> Host:
    """Scan, running ``action()`` the first time the scan touches a path ending in ``trigger``."""
    fired: list[str] = []

    def hook(op: str, path: str) -> None:
        if path.endswith(trigger) and not fired:
            fired.append(path)
            action()  # type: ignore[operator]

    host = scan(root, OPTIONS, reader=SysfsReader(root, hook=hook))
    assert fired, f"the scan never touched {trigger}"
    return host


def test_vf_vanishes_mid_scan(root: Path) -> None:
    tree = pathology_base(root)
    victim = tree.vfs(PATHOLOGY_PF)[2]
    host = _scan_with_hook(root, f"{victim}/physfn", lambda: tree.remove_function(victim))
    assert _vf_indexes(host) == [0, 1, 3]
    assert _skips(host) == [(victim, "virtfn2 of 0000:3b:00.0 points to a function that is "
                                     "not there (removed during the scan?)")]


def test_vf_vanishes_between_two_of_its_reads(root: Path) -> None:
    tree = pathology_base(root)
    victim = tree.vfs(PATHOLOGY_PF)[3]
    host = _scan_with_hook(root, f"{victim}/device", lambda: tree.remove_function(victim))
    assert _vf_indexes(host) == [0, 1, 2]
    assert _skips(host) == [(victim, "VF 3 of 0000:3b:00.0 disappeared during the scan")]


def test_pf_vanishes_mid_scan(root: Path) -> None:
    tree = pathology_base(root)

    def unplug() -> None:
        for vf in tree.vfs(PATHOLOGY_PF).values():
            tree.remove_function(vf)
        tree.remove_function(PATHOLOGY_PF)

    host = _scan_with_hook(root, f"{PATHOLOGY_PF}/sriov_numvfs", unplug)
    assert _pf(host, PATHOLOGY_PF) is None
    assert _skips(host) == [(PATHOLOGY_PF, "disappeared during the scan")]
    assert _pf(host, BYSTANDER_PF) is not None


def test_netdev_vanishes_mid_scan(root: Path) -> None:
    tree = pathology_base(root)
    host = _scan_with_hook(root, "net/ens1f0/address", lambda: shutil.rmtree(
        tree.netdev_path("ens1f0")))
    pf = _pf(host, PATHOLOGY_PF)
    assert pf is not None and pf.netdev == "ens1f0"
    assert pf.link == type(pf.link)()  # every link field unknown, nothing raised
    assert host.skipped == ()


def test_unexpected_error_costs_one_device(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    pathology_base(root)

    def hook(op: str, path: str) -> None:
        if path.endswith(f"{PATHOLOGY_PF}/driver"):
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        host = scan(root, OPTIONS, reader=SysfsReader(root, hook=hook))
    assert _pf(host, PATHOLOGY_PF) is None
    assert _skips(host) == [(PATHOLOGY_PF, "internal error while reading it: "
                                           "RuntimeError('boom')")]
    assert "unexpected error while reading 0000:3b:00.0" in caplog.text


def test_missing_sysfs_is_an_empty_host(root: Path) -> None:
    host = scan(root / "nothing-here", OPTIONS)
    assert (host.physical_functions, host.skipped, host.hugepages) == ((), (), ())
    assert (host.iommu_enabled, host.kernel_cmdline) == (False, None)


def test_catalogued_nic_without_sriov(root: Path) -> None:
    tree = pathology_base(root)
    tree.add_function("0000:af:00.0", FunctionIds(vendor="15b3", device="101d"), driver="mlx5_core")
    host = scan(root, OPTIONS)
    assert ("0000:af:00.0", "ConnectX-6 Dx (15b3:101d) has no SR-IOV capability (no "
            "sriov_totalvfs): enable SR-IOV in the NIC firmware and BIOS") in _skips(host)


def test_vf_claimed_by_two_pfs(root: Path) -> None:
    import os

    tree = pathology_base(root)
    stolen = tree.vfs(PATHOLOGY_PF)[0]
    os.symlink(f"../../pci0000:3a/0000:3a:00.0/{stolen}",
               tree.device_path(BYSTANDER_PF) / "virtfn5")
    host = scan(root, OPTIONS)
    # the X710 (lower address) is read first, but the VF's physfn names its real PF: refused
    # there, it stays with the ConnectX-6 Dx
    assert _skips(host) == [(stolen, "virtfn5 of 0000:18:00.0, but its physfn link is "
                                     "0000:3b:00.0")]
    assert _vf_indexes(host) == [0, 1, 2, 3]
