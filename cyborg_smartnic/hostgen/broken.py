"""Broken generated hosts, in the ways real hosts break (hot-removed VFs, dangling or
duplicate links, unreadable or garbled attributes): ``PATHOLOGIES`` and ``build_pathology``.
Every one breaks the ConnectX-6 Dx PF ``PATHOLOGY_PF`` of ``pathology_base`` and leaves the
X710 ``BYSTANDER_PF`` alone."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from cyborg_smartnic.hostgen.builder import PfOptions, SysfsTree

PATHOLOGY_PF = "0000:3b:00.0"  # the ConnectX-6 Dx PF every pathology breaks something of
BYSTANDER_PF = "0000:18:00.0"  # an X710 PF that must come through every pathology untouched


def pathology_base(root: Path | str) -> SysfsTree:
    """A small healthy host: one CX-6 Dx PF (4 VFs, 0-1 on vfio-pci, switchdev, physnet1) and
    one X710 PF (2 iavf VFs) as a bystander."""
    tree = SysfsTree(root)
    tree.add_pf(PATHOLOGY_PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", numa_node=0, total_vfs=8,
        num_vfs=4, vf_drivers={0: "vfio-pci", 1: "vfio-pci"}, eswitch="switchdev",
        fw_version="22.36.1010", vf_offset=2, physnet="physnet1"))
    tree.add_pf(BYSTANDER_PF, PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f0", numa_node=0, total_vfs=32,
        num_vfs=2, fw_version="9.20"))
    return tree


def _vf(tree: SysfsTree, index: int) -> str:
    return tree.vfs(PATHOLOGY_PF)[index]


def _pf_dir(tree: SysfsTree) -> Path:
    return tree.device_path(PATHOLOGY_PF)


def _vanished_vf(tree: SysfsTree) -> None:
    """VF 2 was hot-removed: its virtfn2 link and class/net entry dangle."""
    tree.remove_function(_vf(tree, 2))


def _dangling_virtfn(tree: SysfsTree) -> None:
    """An extra virtfn7 link to a function that never existed."""
    os.symlink("../0000:3b:01.1", _pf_dir(tree) / "virtfn7")


def _vf_without_physfn(tree: SysfsTree) -> None:
    tree.remove_link(tree.device_path(_vf(tree, 1)) / "physfn")


def _duplicate_virtfn(tree: SysfsTree) -> None:
    """virtfn4 points at VF 1 again, and virtfn03 repeats index 3."""
    os.symlink(f"../{_vf(tree, 1)}", _pf_dir(tree) / "virtfn4")
    os.symlink(f"../{_vf(tree, 0)}", _pf_dir(tree) / "virtfn03")


def _pf_without_netdev(tree: SysfsTree) -> None:
    for ifname in ["ens1f0", *(f"ens1f0_{i}" for i in range(4))]:
        tree.remove_netdev(ifname)


def _unbound_pf(tree: SysfsTree) -> None:
    _pf_without_netdev(tree)
    tree.unbind(PATHOLOGY_PF)


def _bad_vendor(tree: SysfsTree) -> None:
    tree.set_attr(PATHOLOGY_PF, "vendor", "0xZZ\n")


def _empty_device(tree: SysfsTree) -> None:
    tree.set_attr(PATHOLOGY_PF, "device", "")


def _huge_totalvfs(tree: SysfsTree) -> None:
    tree.set_attr(PATHOLOGY_PF, "sriov_totalvfs", "99999999999999999999\n")


def _numvfs_over_total(tree: SysfsTree) -> None:
    tree.set_attr(PATHOLOGY_PF, "sriov_numvfs", "12\n")


def _vendor_is_directory(tree: SysfsTree) -> None:
    """Unreadable even as root: a directory where the file should be (EISDIR)."""
    tree.replace_with_dir(_pf_dir(tree) / "vendor")


def _vf_device_is_directory(tree: SysfsTree) -> None:
    tree.replace_with_dir(tree.device_path(_vf(tree, 3)) / "device")


def _bad_vf_device(tree: SysfsTree) -> None:
    tree.set_attr(_vf(tree, 3), "device", "0x10\n")


def _bad_numa_and_mac(tree: SysfsTree) -> None:
    """Degrading values: the PF stays, the field reads as unknown."""
    tree.set_attr(PATHOLOGY_PF, "numa_node", "abc\n")
    (tree.netdev_path("ens1f0") / "address").write_text("zz:zz\n")


PATHOLOGIES: dict[str, Callable[[SysfsTree], None]] = {
    "vanished_vf": _vanished_vf,
    "dangling_virtfn": _dangling_virtfn,
    "vf_without_physfn": _vf_without_physfn,
    "duplicate_virtfn": _duplicate_virtfn,
    "pf_without_netdev": _pf_without_netdev,
    "unbound_pf": _unbound_pf,
    "bad_vendor": _bad_vendor,
    "empty_device": _empty_device,
    "huge_totalvfs": _huge_totalvfs,
    "numvfs_over_total": _numvfs_over_total,
    "vendor_is_directory": _vendor_is_directory,
    "vf_device_is_directory": _vf_device_is_directory,
    "bad_vf_device": _bad_vf_device,
    "bad_numa_and_mac": _bad_numa_and_mac,
}


def build_pathology(root: Path | str, name: str) -> SysfsTree:
    """``pathology_base`` broken the named way (see ``PATHOLOGIES``)."""
    tree = pathology_base(root)
    PATHOLOGIES[name](tree)
    return tree

