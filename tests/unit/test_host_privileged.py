"""Every privileged entry point re-validates its inputs before anything is written.

The entry points run in process here (privsep client mode off) with a recording kernel, so
a refused call is proven to write nothing; one test uses the real ``SystemKernel`` on a
generated tree to check the production write path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.host import privileged
from cyborg_smartnic.hostgen import SysfsTree, build_scenario
from cyborg_smartnic.hostgen.kernel import in_process_kernel

PF = "0000:18:00.0"  # x710_legacy: i40e with 4 iavf VFs
VF = "0000:18:01.0"


class Recorder:
    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []
        self.commands: list[list[str]] = []

    def write(self, path: str, value: str) -> None:
        self.writes.append((path, value))

    def run(self, argv: list[str]) -> None:
        self.commands.append(argv)


@pytest.fixture
def tree(tmp_path: Path) -> SysfsTree:
    return build_scenario(tmp_path, "x710_legacy")


@pytest.fixture
def kernel() -> Iterator[Recorder]:
    with in_process_kernel(Recorder()) as recorder:
        yield recorder


def test_valid_calls_write_the_resolved_sysfs_file(tree: SysfsTree, kernel: Recorder) -> None:
    tree.add_hugepages(node=0, size_kb=2048, total=0, free=0)
    root = str(tree.root)
    privileged.set_sriov_numvfs(root, "0000:18:00.0", 2)
    privileged.set_driver_override(root, VF, "vfio-pci")
    privileged.set_driver_override(root, VF, None)
    assert privileged.unbind_driver(root, VF) is True
    privileged.bind_driver(root, VF, "iavf")
    privileged.drivers_probe(root, VF)
    privileged.set_nr_hugepages(root, None, 2048, 16)
    sys_dir = os.path.realpath(tree.sys)
    device = os.path.realpath(tree.device_path(PF))
    vf_dir = os.path.realpath(tree.device_path(VF))
    assert kernel.writes == [
        (f"{device}/sriov_numvfs", "2\n"),
        (f"{vf_dir}/driver_override", "vfio-pci\n"),
        (f"{vf_dir}/driver_override", "\n"),
        (f"{sys_dir}/bus/pci/drivers/iavf/unbind", VF),
        (f"{sys_dir}/bus/pci/drivers/iavf/bind", VF),
        (f"{sys_dir}/bus/pci/drivers_probe", VF),
        (f"{sys_dir}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "16\n"),
    ]


def test_devlink_commands_are_fixed_argv_lists(kernel: Recorder) -> None:
    privileged.devlink_set_eswitch_mode("0000:3B:00.0", "switchdev")
    privileged.devlink_set_param("0000:3b:00.0", "flow_steering_mode", "smfs")
    assert kernel.commands == [
        ["devlink", "dev", "eswitch", "set", "pci/0000:3b:00.0", "mode", "switchdev"],
        ["devlink", "dev", "param", "set", "pci/0000:3b:00.0", "name", "flow_steering_mode",
         "value", "smfs", "cmode", "runtime"],
    ]


@pytest.mark.parametrize(("call", "message"), [
    (lambda r: privileged.set_sriov_numvfs(r, "0000:18:00.9", 1), "function"),
    (lambda r: privileged.set_sriov_numvfs(r, "../../etc", 1), "expected dddd:bb:ss.f"),
    (lambda r: privileged.set_sriov_numvfs(r, PF, -1), "outside 0-4096"),
    (lambda r: privileged.set_sriov_numvfs(r, PF, True), "must be an integer"),
    (lambda r: privileged.set_sriov_numvfs(r, PF, "4"), "must be an integer"),
    (lambda r: privileged.set_sriov_numvfs("relative/root", PF, 1), "absolute path"),
    (lambda r: privileged.set_sriov_numvfs(r + "/../x", PF, 1), "must not contain '..'"),
    (lambda r: privileged.set_sriov_numvfs("/nonexistent-root", PF, 1), "is not a directory"),
    (lambda r: privileged.set_sriov_numvfs(None, PF, 1), "non-empty string"),
    (lambda r: privileged.set_driver_override(r, VF, "vfio pci"), "not a kernel driver name"),
    (lambda r: privileged.set_driver_override(r, VF, "../../x"), "not a kernel driver name"),
    (lambda r: privileged.set_driver_override(r, PF, "vfio-pci"), "not a virtual function"),
    (lambda r: privileged.unbind_driver(r, PF), "not a virtual function"),
    (lambda r: privileged.bind_driver(r, PF, "vfio-pci"), "not a virtual function"),
    (lambda r: privileged.drivers_probe(r, "0000:17:00.0"), "not a virtual function"),
    (lambda r: privileged.set_nr_hugepages(r, 0, 3000, 1), "not a power of two"),
    (lambda r: privileged.set_nr_hugepages(r, 5000, 2048, 1), "outside 0-1023"),
    (lambda r: privileged.set_nr_hugepages(r, 0, 2048, 10**10), "outside 0-4294967296"),
    (lambda r: privileged.devlink_set_eswitch_mode("0000:3b:00.0", "offload"), "eswitch mode"),
    (lambda r: privileged.devlink_set_eswitch_mode("pci/0000:3b:00.0", "legacy"), "expected"),
    (lambda r: privileged.devlink_set_param("0000:3b:00.0", "enable_roce", "true"),
     "not one this tool sets"),
    (lambda r: privileged.devlink_set_param("0000:3b:00.0", "flow_steering_mode", "x; rm"),
     "not one of"),
])
def test_bad_arguments_are_refused_before_any_write(tree: SysfsTree, kernel: Recorder,
                                                    call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(str(tree.root))  # type: ignore[operator]
    assert kernel.writes == [] and kernel.commands == []


def test_missing_targets_are_enoent(tree: SysfsTree, kernel: Recorder) -> None:
    root = str(tree.root)
    with pytest.raises(OSError) as no_device:
        privileged.set_sriov_numvfs(root, "0000:99:00.0", 1)
    with pytest.raises(OSError) as no_module:
        privileged.bind_driver(root, VF, "vfio-pci")  # vfio-pci is not loaded in this tree
    with pytest.raises(OSError) as no_pool:
        privileged.set_nr_hugepages(root, 3, 1048576, 1)
    assert {e.value.errno for e in (no_device, no_module, no_pool)} == {errno.ENOENT}
    assert "module not loaded?" in str(no_module.value)
    assert kernel.writes == []


def test_symlinks_may_not_lead_out_of_the_tree(tree: SysfsTree, kernel: Recorder,
                                               tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "sriov_numvfs").write_text("0\n")
    (tree.sys / "bus/pci/devices/0000:99:00.0").symlink_to(outside)
    with pytest.raises(ValueError, match=r"resolves outside"):
        privileged.set_sriov_numvfs(str(tree.root), "0000:99:00.0", 1)
    vf_dir = tree.device_path(VF)
    (vf_dir / "physfn").unlink()
    (vf_dir / "physfn").symlink_to(outside)  # a "VF" whose PF is somewhere else
    with pytest.raises(ValueError, match=r"resolves outside"):
        privileged.set_driver_override(str(tree.root), VF, "vfio-pci")
    assert kernel.writes == []
    assert (outside / "sriov_numvfs").read_text() == "0\n"


def test_system_kernel_writes_the_file(tree: SysfsTree) -> None:
    previous = privileged.use_kernel(privileged.SystemKernel())
    privileged.context.set_client_mode(False)
    try:
        privileged.set_sriov_numvfs(str(tree.root), "0000:18:00.1", 5)
        with pytest.raises(OSError) as not_a_file:  # a directory where the file should be
            tree.replace_with_dir(tree.device_path(PF) / "sriov_numvfs")
            privileged.set_sriov_numvfs(str(tree.root), PF, 1)
    finally:
        privileged.context.set_client_mode(True)
        privileged.use_kernel(previous)
    assert (tree.device_path("0000:18:00.1") / "sriov_numvfs").read_text() == "5\n"
    assert not_a_file.value.errno == errno.EISDIR
    assert "writing '1' to " in str(not_a_file.value)


@pytest.mark.parametrize(("message", "code"), [
    ("Error: mlx5_core: Can't change mode while VFs are bound.\nkernel answers: Device or "
     "resource busy", errno.EBUSY),
    ("kernel answers: Operation not supported", errno.EOPNOTSUPP),
    ("something odd", errno.EIO),
])
def test_devlink_failures_keep_the_errno(message: str, code: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert argv[0].endswith("/devlink") and argv[1:3] == ["dev", "eswitch"]
        return subprocess.CompletedProcess(argv, 1, "", message)

    monkeypatch.setattr(privileged.subprocess, "run", fake_run)
    monkeypatch.setattr(privileged.os, "access", lambda path, mode: True)
    with pytest.raises(OSError) as caught:
        privileged.SystemKernel().run(["devlink", "dev", "eswitch", "set", "pci/x", "mode",
                                       "legacy"])
    assert caught.value.errno == code
    assert message.splitlines()[-1] in str(caught.value)
