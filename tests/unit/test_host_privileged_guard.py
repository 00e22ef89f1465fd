"""The privileged side does not trust its caller: it re-reads what it can check itself.

Each test calls an entry point directly, as a buggy or second caller could, bypassing the
planner: the daemon must still refuse to destroy or rebind a VF that is in use (read from
its own view of ``<root>``), and hugepage pools larger than the memory behind them.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.host import privileged
from cyborg_smartnic.hostgen import SysfsTree, build_scenario
from cyborg_smartnic.hostgen.kernel import KernelEmulator, emulated_kernel

PF = "0000:18:00.0"  # x710_legacy: i40e with 4 iavf VFs (ens3f0v0..3), 64 GiB on node 0


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    tree = build_scenario(tmp_path, "x710_legacy")
    tree.add_hugepages(node=0, size_kb=2048, total=0, free=0)
    return tree


@pytest.fixture
def kernel(tree: SysfsTree) -> Iterator[KernelEmulator]:
    with emulated_kernel(tree) as emulator:
        emulator.load_module("vfio-pci")
        yield emulator


def _vfs(tree: SysfsTree) -> list[str]:
    return sorted(p.name for p in tree.device_path(PF).glob("virtfn*"))


def _vf(tree: SysfsTree, index: int) -> str:
    return (tree.device_path(PF) / f"virtfn{index}").resolve().name


Call = Callable[[str, str], object]

DRIVER_WRITES: list[tuple[str, Call]] = [
    ("set driver_override", lambda r, vf: privileged.set_driver_override(r, vf, "vfio-pci")),
    ("unbind iavf", privileged.unbind_driver),
    ("probe", privileged.drivers_probe),
]


def test_destroying_a_held_vf_is_refused(tree: SysfsTree, kernel: KernelEmulator) -> None:
    held = _vf(tree, 3)
    kernel.hold_vfio(4242, kernel.iommu_group(held))
    with pytest.raises(ValueError) as caught:
        privileged.set_sriov_numvfs(str(tree.root), PF, 0)
    assert type(caught.value).__name__ == "VfInUse"  # a ValueError: crosses the socket
    assert f"VF {held} is in use" in str(caught.value)
    assert "held open by pid 4242 (qemu-system-x86)" in str(caught.value)
    with pytest.raises(ValueError):
        privileged.set_sriov_numvfs(str(tree.root), PF, 3)  # index 3 is the held one
    assert kernel.writes == [] and len(_vfs(tree)) == 4


def test_writes_that_destroy_no_used_vf_pass(tree: SysfsTree, kernel: KernelEmulator) -> None:
    kernel.hold_vfio(4242, kernel.iommu_group(_vf(tree, 0)))  # held, but not destroyed
    privileged.set_sriov_numvfs(str(tree.root), PF, 4)  # same count: destroys nothing
    privileged.set_sriov_numvfs(str(tree.root), "0000:18:00.1", 0)  # other PF
    assert kernel.writes == [(_rel(tree, PF) + "/sriov_numvfs", "4\n"),
                             (_rel(tree, "0000:18:00.1") + "/sriov_numvfs", "0\n")]


def _rel(tree: SysfsTree, address: str) -> str:
    return os.path.relpath(os.path.realpath(tree.device_path(address)),
                           os.path.realpath(tree.sys))


@pytest.mark.parametrize(("action", "call"), DRIVER_WRITES, ids=[a for a, _ in DRIVER_WRITES])
def test_rebinding_a_held_vf_is_refused(tree: SysfsTree, kernel: KernelEmulator,
                                        action: str, call: Call) -> None:
    vf = _vf(tree, 1)
    kernel.hold_vfio(777, kernel.iommu_group(vf), comm="dpdk-testpmd")
    with pytest.raises(ValueError, match=rf"refusing to {action}.* of VF {vf}: "
                                                 rf"VF {vf} is in use: .*pid 777"):
        call(str(tree.root), vf)
    assert kernel.writes == []
    call(str(tree.root), _vf(tree, 2))  # its free sibling is fine
    assert kernel.writes


def test_bind_of_a_held_vf_is_refused(tree: SysfsTree, kernel: KernelEmulator) -> None:
    vf = _vf(tree, 2)
    privileged.unbind_driver(str(tree.root), vf)
    kernel.hold_vfio(99, kernel.iommu_group(vf))  # what a stale or racing holder looks like
    with pytest.raises(ValueError, match=r"refusing to bind vfio-pci"):
        privileged.bind_driver(str(tree.root), vf, "vfio-pci")
    assert [w for w in kernel.writes if w[0].endswith("/bind")] == []


def test_enslaved_vf_netdev_is_in_use(tree: SysfsTree, kernel: KernelEmulator) -> None:
    vf = _vf(tree, 0)
    kernel.enslave("ens3f0v0")
    with pytest.raises(ValueError, match=r"enslaved to bond0"):
        privileged.unbind_driver(str(tree.root), vf)
    with pytest.raises(ValueError, match=r"enslaved to bond0"):
        privileged.set_sriov_numvfs(str(tree.root), PF, 0)
    assert kernel.writes == []


def test_a_vf_the_daemon_cannot_read_is_not_assumed_free(tree: SysfsTree,
                                                         kernel: KernelEmulator) -> None:
    vf = _vf(tree, 3)
    tree.set_attr(vf, "device", "0x10\n")  # malformed: the scan skips this VF
    with pytest.raises(ValueError, match=rf"cannot read VF {vf}"):
        privileged.set_sriov_numvfs(str(tree.root), PF, 0)
    with pytest.raises(ValueError, match=rf"cannot read VF {vf}"):
        privileged.unbind_driver(str(tree.root), vf)
    assert kernel.writes == []


def test_blind_daemon_refuses(tree: SysfsTree, kernel: KernelEmulator) -> None:
    proc = tree.root / "proc"
    shutil.rmtree(proc)  # the tree's /proc has processes and the reader's own view
    proc.write_text("not a directory\n")  # /proc cannot be listed: processes unknown
    with pytest.raises(ValueError, match=r"cannot tell whether .* are free"):
        privileged.set_sriov_numvfs(str(tree.root), PF, 0)
    assert kernel.writes == []


@pytest.mark.parametrize(("pool", "count", "message"), [
    ((0, 2048), 10_000_000, r"more than the memory of NUMA node 0 \(32768 pages\)"),
    ((0, 2048), 32769, r"more than the memory of NUMA node 0"),
    ((None, 2048), 32769, r"more than the memory of the host \(32768 pages\)"),
    ((0, 2048), -1, r"outside 0-"),
    ((0, 1048576), 65, r"more than the memory of NUMA node 0 \(64 pages\)"),
])
def test_hugepages_beyond_memory_are_refused(tree: SysfsTree, kernel: KernelEmulator,
                                             pool: tuple[int | None, int], count: int,
                                             message: str) -> None:
    tree.add_hugepages(node=0, size_kb=1048576, total=0, free=0)
    with pytest.raises(ValueError, match=message):
        privileged.set_nr_hugepages(str(tree.root), pool[0], pool[1], count)
    assert kernel.writes == []


def test_hugepages_within_memory_pass(tree: SysfsTree, kernel: KernelEmulator) -> None:
    privileged.set_nr_hugepages(str(tree.root), 0, 2048, 32768)
    privileged.set_nr_hugepages(str(tree.root), None, 2048, 32768)  # the nodes' sum
    assert kernel.hugepages(0, 2048) == 32768


def test_host_meminfo_bounds_the_global_pool(tree: SysfsTree, kernel: KernelEmulator) -> None:
    (tree.root / "proc/meminfo").write_text("MemTotal:        4194304 kB\nMemFree: 1 kB\n")
    with pytest.raises(ValueError, match=r"the host \(2048 pages\)"):
        privileged.set_nr_hugepages(str(tree.root), None, 2048, 2049)
    privileged.set_nr_hugepages(str(tree.root), None, 2048, 2048)
    assert kernel.hugepages(None, 2048) == 2048


def test_unknown_memory_fails_closed(tree: SysfsTree, kernel: KernelEmulator) -> None:
    (tree.sys / "devices/system/node/node0/meminfo").unlink()
    with pytest.raises(OSError) as caught:
        privileged.set_nr_hugepages(str(tree.root), 0, 2048, 1)
    assert caught.value.errno == errno.ENOENT
    assert "cannot read MemTotal of NUMA node 0" in str(caught.value)
    assert kernel.writes == []


@pytest.mark.skipif(os.geteuid() != 0, reason="handing the tree to another uid needs root")
def test_a_tree_someone_else_can_change_is_refused(tree: SysfsTree, kernel: KernelEmulator,
                                                   tmp_path: Path) -> None:
    """The daemon reads the tree as root and reports what it found: a caller's own tree could
    point those reads at any file, e.g. a "process name" that is a link to a secret."""
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.write_text("root:$6$hash\n")
    fd_dir = tree.root / "proc/4242/fd"
    fd_dir.mkdir(parents=True)
    (fd_dir.parent / "comm").symlink_to(secret)
    (fd_dir / "3").symlink_to(f"/dev/vfio/{kernel.iommu_group(_vf(tree, 0))}")
    os.chown(tree.root, 65534, 65534)
    with pytest.raises(ValueError, match=r"must be owned by root and writable only by root "
                                         r"\(uid 65534") as caught:
        privileged.unbind_driver(str(tree.root), _vf(tree, 0))
    assert "$6$" not in str(caught.value)
    os.chown(tree.root, 0, 0)
    tree.root.chmod(0o777)
    with pytest.raises(ValueError, match=r"mode 0777"):
        privileged.set_nr_hugepages(str(tree.root), 0, 2048, 1)
    assert kernel.writes == []
