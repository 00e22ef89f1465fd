"""The privileged entry points through a real oslo.privsep daemon, writing a generated tree.

The daemon is started the way ``host apply`` starts it as root (``privsep-helper`` with the
context's three capabilities), so this proves the entry points import, validate and write
inside another process, that refused arguments come back as the right exception, and that
only entry points can be called.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic.host import privileged
from cyborg_smartnic.hostgen import build_scenario

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="privsep-helper is started without sudo only as root")

PF = "0000:18:00.1"  # X710 port 1 in the x710_legacy scenario: 0 of 32 VFs


@pytest.fixture
def daemon() -> Iterator[privileged.priv_context.PrivContext]:
    helper = os.path.join(os.path.dirname(sys.executable), "privsep-helper")
    cfg.CONF.set_override("helper_command", shlex.join([helper]),
                          group=privileged.CONFIG_SECTION)
    assert privileged.context.client_mode, "another test left the context in-process"
    try:
        yield privileged.context
    finally:
        privileged.context.stop()
        cfg.CONF.clear_override("helper_command", group=privileged.CONFIG_SECTION)


def test_writes_go_through_the_daemon(tmp_path: Path, daemon: privileged.priv_context.PrivContext,
                                      caplog: pytest.LogCaptureFixture) -> None:
    tree = build_scenario(tmp_path, "x710_legacy")
    numvfs = tree.device_path(PF) / "sriov_numvfs"
    caplog.set_level(logging.INFO)

    privileged.set_sriov_numvfs(str(tmp_path), PF, 3)

    assert numvfs.read_text() == "3\n"
    assert daemon.channel is not None and daemon.channel.running
    writes = [r for r in caplog.records if r.getMessage().startswith("writing '3' to ")]
    assert writes, "the daemon did not log the write back to us"
    assert all(r.process != os.getpid() for r in writes), "the write ran in our own process"
    assert writes[0].getMessage().endswith(str(numvfs.resolve()))
    status = Path(f"/proc/{writes[0].process}/status").read_text()
    effective = int(next(line.split()[1] for line in status.splitlines()
                         if line.startswith("CapEff:")), 16)
    assert effective == (1 << 1) | (1 << 12) | (1 << 19), \
        "expected CAP_DAC_OVERRIDE + CAP_NET_ADMIN + CAP_SYS_PTRACE only"


def test_refusals_and_kernel_errors_cross_the_socket(
        tmp_path: Path, daemon: privileged.priv_context.PrivContext) -> None:
    tree = build_scenario(tmp_path, "x710_legacy")
    numvfs = tree.device_path(PF) / "sriov_numvfs"

    with pytest.raises(ValueError, match=r"VF count 99999 is outside 0-4096"):
        privileged.set_sriov_numvfs(str(tmp_path), PF, 99999)
    with pytest.raises(ValueError, match=r"must not contain '\.\.'"):
        privileged.set_sriov_numvfs(f"{tmp_path}/../{tmp_path.name}", PF, 1)
    with pytest.raises(ValueError, match=r"is not a virtual function"):
        privileged.set_driver_override(str(tmp_path), PF, "vfio-pci")
    with pytest.raises(OSError) as missing:  # a function without SR-IOV: no sriov_numvfs
        privileged.set_sriov_numvfs(str(tmp_path), "0000:17:00.0", 1)
    assert missing.value.errno == errno.ENOENT
    assert numvfs.read_text() == "0\n"


def test_the_daemon_rechecks_in_use_vfs_itself(
        tmp_path: Path, daemon: privileged.priv_context.PrivContext) -> None:
    """A caller that skipped the planner still cannot destroy a held VF: the daemon reads the
    witnesses from its own view of the tree and its refusal crosses the socket."""
    tree = build_scenario(tmp_path, "x710_legacy")
    held = Path(os.path.realpath(tree.device_path("0000:18:00.0") / "virtfn2")).name
    group = os.readlink(tree.device_path(held) / "iommu_group").rsplit("/", 1)[-1]
    fd_dir = tmp_path / "proc" / "4242" / "fd"
    fd_dir.mkdir(parents=True)
    (fd_dir.parent / "comm").write_text("qemu-kvm\n")
    (fd_dir / "20").symlink_to(f"/dev/vfio/{group}")

    with pytest.raises(privileged.VfInUse, match=rf"VF {held} is in use: .*pid 4242"):
        privileged.set_sriov_numvfs(str(tmp_path), "0000:18:00.0", 0)
    with pytest.raises(privileged.VfInUse, match=r"refusing to unbind iavf"):
        privileged.unbind_driver(str(tmp_path), held)
    assert (tree.device_path("0000:18:00.0") / "sriov_numvfs").read_text() == "4\n"


def test_only_entry_points_can_be_called(tmp_path: Path,
                                         daemon: privileged.priv_context.PrivContext) -> None:
    tree = build_scenario(tmp_path, "x710_legacy")
    target = tree.device_path(PF) / "sriov_numvfs"
    privileged.set_sriov_numvfs(str(tmp_path), PF, 0)  # starts the daemon
    assert daemon.channel is not None
    with pytest.raises(NameError, match=r"not exported"):
        daemon.channel.remote_call("cyborg_smartnic.host.privileged._write",
                                   (str(target), "7\n"), {}, None)
    assert target.read_text() == "0\n"


def test_cli_apply_starts_the_daemon_itself(tmp_path: Path) -> None:
    """The real command, as root, with only a hugepage change (a plain file write suffices)."""
    import subprocess

    tree = build_scenario(tmp_path / "host", "x710_legacy")
    tree.add_hugepages(node=0, size_kb=2048, total=0, free=0)
    config = tmp_path / "host.yaml"
    config.write_text("hugepages:\n  - {node: 0, size: 2M, count: 64}\n")
    command = os.path.join(os.path.dirname(sys.executable), "cyborg-smartnic")
    done = subprocess.run([command, "host", "apply", "--yes", "-f", "json", "--sysfs-root",
                           str(tmp_path / "host"), str(config)], capture_output=True,
                          text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    pool = tree.sys / "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages"
    assert pool.read_text() == "64\n"
    assert '"ok": true' in done.stdout
    assert "Eventlet" not in done.stderr
