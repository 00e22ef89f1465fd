"""The privileged writes resolve and open paths with directory descriptors, not names.

The race test is the class of bug: a directory on the written path is swapped for a symlink
out of the tree, in a loop, while the real entry point writes through the real
``SystemKernel``. With ``realpath()`` then ``open()`` some writes land outside (the issue
reproduced it after a few hundred tries); with the descriptor walk none may.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.host import beneath, privileged
from cyborg_smartnic.hostgen import SysfsTree, build_scenario
from cyborg_smartnic.hostgen.kernel import in_process_kernel

PF = "0000:18:00.1"  # x710_legacy: X710 port 1, 0 of 32 VFs


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return build_scenario(tmp_path / "host", "x710_legacy")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory out of the tree that looks like a PF (what a swapped link points at)."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "sriov_numvfs").write_text("0\n")
    (path / "driver_override").write_text("(null)\n")
    return path


@pytest.fixture
def sysdir(tree: SysfsTree) -> Iterator[beneath.SysDir]:
    with beneath.SysDir.open(str(tree.root)) as opened:
        yield opened


def test_sysfs_links_resolve_to_the_physical_path(tree: SysfsTree,
                                                  sysdir: beneath.SysDir) -> None:
    rel = sysdir.resolve("bus", "pci", "devices", PF, "sriov_numvfs")
    assert sysdir.join(rel) == os.path.realpath(tree.device_path(PF) / "sriov_numvfs")
    assert sysdir.path == os.path.realpath(tree.sys)
    assert sysdir.is_link("bus", "pci", "devices", PF)
    assert not sysdir.is_link("bus", "pci", "devices", PF, "sriov_numvfs")
    assert sysdir.readlink("bus", "pci", "devices", PF).startswith("../../../devices/")
    assert sysdir.read("bus", "pci", "devices", PF, "sriov_totalvfs") == "32\n"


@pytest.mark.parametrize("target", ["../../../../../outside", "../" * 12 + "etc"])
def test_relative_links_cannot_climb_out(tree: SysfsTree, sysdir: beneath.SysDir,
                                         target: str) -> None:
    (tree.sys / "bus/pci/devices/0000:99:00.0").symlink_to(target)
    with pytest.raises(beneath.Escape, match="resolves outside"):
        sysdir.resolve("bus", "pci", "devices", "0000:99:00.0", "sriov_numvfs")


def test_absolute_links_and_loops_are_refused(tree: SysfsTree, sysdir: beneath.SysDir,
                                              outside: Path) -> None:
    (tree.sys / "bus/pci/devices/0000:99:00.0").symlink_to(outside)
    with pytest.raises(beneath.Escape, match="resolves outside"):
        sysdir.resolve("bus", "pci", "devices", "0000:99:00.0", "sriov_numvfs")
    (tree.sys / "loop").symlink_to("loop")
    with pytest.raises(OSError) as loop:
        sysdir.resolve("loop", "x")
    assert loop.value.errno == errno.ELOOP
    with pytest.raises(ValueError, match="unsafe path component"):
        sysdir.resolve("bus", "..", "..")


def test_open_physical_follows_no_symlink_and_opens_only_regular_files(
        tree: SysfsTree, outside: Path) -> None:
    link = tree.root / "via-link"
    link.symlink_to(outside)
    with pytest.raises(OSError) as through_link:
        beneath.open_physical(f"{link}/sriov_numvfs", os.O_WRONLY)
    assert through_link.value.errno in (errno.ENOTDIR, errno.ELOOP)
    fifo = outside / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as not_regular:  # would block forever without O_NONBLOCK
        beneath.open_physical(str(fifo), os.O_RDONLY)
    assert not_regular.value.errno == errno.EINVAL
    with pytest.raises(ValueError, match="not a physical path"):
        beneath.open_physical(f"{tree.sys}/../outside/sriov_numvfs", os.O_WRONLY)


def test_swapped_directory_never_redirects_a_write(tree: SysfsTree, outside: Path) -> None:
    """A swapper thread replaces the PF's device directory with a symlink out of the tree
    (and back) as fast as it can while the real entry point writes through SystemKernel."""
    device = Path(os.path.realpath(tree.device_path(PF)))
    aside = device.with_name(device.name + ".aside")
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            os.rename(device, aside)
            os.symlink(outside, device)
            os.unlink(device)
            os.rename(aside, device)
            swaps += 1
            time.sleep(0.0002)  # leave the real directory in place now and then

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads as finely as CPython allows
    thread = threading.Thread(target=swapper, daemon=True)
    written = refused = 0
    with in_process_kernel(privileged.SystemKernel()):
        thread.start()
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and written + refused < 3000:
                try:
                    privileged.set_sriov_numvfs(str(tree.root), PF, 1 + (written % 7))
                    written += 1
                except (OSError, ValueError):
                    refused += 1
        finally:
            stop.set()
            thread.join(5)
            sys.setswitchinterval(interval)
    assert (outside / "sriov_numvfs").read_text() == "0\n", "a write landed outside <root>/sys"
    assert not thread.is_alive() and swaps > 0 and written > 0, (swaps, written, refused)
    assert (device / "sriov_numvfs").read_text().strip() in {str(n) for n in range(1, 8)}
