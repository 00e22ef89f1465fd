"""``cyborg-smartnic host plan|apply|doctor|conf`` end to end on generated trees."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.hostgen.kernel import KernelEmulator, emulated_kernel

EXAMPLE_CONFIG = str(Path(__file__).parents[2] / "deploy" / "host.example.yaml")
CX_PF = "0000:3b:00.0"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def root(tmp_path: Path) -> Path:
    build_scenario(tmp_path / "host", "example")
    return tmp_path / "host"


@pytest.fixture
def example_kernel(tmp_path: Path) -> Iterator[KernelEmulator]:
    tree = build_scenario(tmp_path / "emulated", "example")
    with emulated_kernel(tree) as emulator:
        yield emulator


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_table(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "host", "plan", "--sysfs-root", str(root), EXAMPLE_CONFIG)
    assert code == 0, err
    assert "| set_numvfs    | 0000:3b:00.0     | 4    | 0         | DISRUPTIVE |" in out
    # host.example.yaml against the example host: 1G pages 8 -> 16 on nodes 0 and 1 (2),
    # 0000:3b:00.0 from 4 to 8 VFs goes through 0 (2 steps, its 4 VFs destroyed), then its
    # 8 new VFs get their drivers (8); every other PF already matches.
    assert "12 change(s), 0 manual, 0 refused; VFs destroyed or disturbed: 4" in out
    rows = [line for line in out.splitlines() if re.match(r"^\| +\d+ +\| ", line)]
    assert len(rows) == 12, out
    assert "note: 0000:3b:00.1: reserved VFs (3) are held back from Cyborg" in out


def test_plan_json(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "host", "plan", "-f", "json", "--sysfs-root", str(root),
                       EXAMPLE_CONFIG)
    data = json.loads(out)
    assert code == 0 and data["refused"] == 0
    assert data["steps"][0] == {
        "kind": "set_hugepages", "target": "node0 1048576kB", "from": 8, "to": 16,
        "reason": "reserve hugepages", "disruptive": False, "destroys_vfs": [],
        "refused": None, "pf": None, "vf_index": None, "numa_node": 0, "size_kb": 1048576,
        "param": None, "disruption": "none", "disturbs_pfs": []}
    assert data["destroys_vfs"] == ["0000:3b:00.2", "0000:3b:00.3", "0000:3b:00.4",
                                    "0000:3b:00.5"]


def test_plan_with_a_vf_in_use_exits_1_naming_the_user(
        example_kernel: KernelEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    vf0 = example_kernel.tree.vfs(CX_PF)[0]
    example_kernel.hold_vfio(4242, example_kernel.iommu_group(vf0), comm="qemu-kvm")
    code, out, err = run(capsys, "host", "plan", "--sysfs-root",
                         str(example_kernel.tree.root), EXAMPLE_CONFIG)
    assert code == 1
    assert "REFUSED" in out
    assert err == (f"cyborg-smartnic: error: 1 step(s) refused; first: {CX_PF}: VF {vf0} is in "
                   f"use (/dev/vfio/{example_kernel.iommu_group(vf0)} is held open by pid 4242 "
                   f"(qemu-kvm)); `host apply --drain --os-cloud CLOUD` live-migrates the "
                   f"instances holding them through Nova first\n")


def test_bad_host_config_lists_every_error(root: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('devices:\n  - address: "0000:3b:00.0"\n    vf_count: many\n'
                   '  - netdev: nosuchnic\n')
    code, out, err = run(capsys, "host", "plan", "--sysfs-root", str(root), str(bad))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{bad}:3:5: devices[0].vf_count: expected an integer, got a string",
        "cyborg-smartnic: error: 1 error(s) in the host config; nothing was done"]
    bad.write_text('devices:\n  - netdev: nosuchnic\n  - address: "0000:aa:00.0"\n')
    code, _, err = run(capsys, "host", "plan", "--sysfs-root", str(root), str(bad))
    assert code == 1
    assert err.splitlines() == [
        f"{bad}:2:5: devices[0].netdev: no PF 'nosuchnic' on this host",
        f"{bad}:3:5: devices[1].address: no PF '0000:aa:00.0' on this host",
        "cyborg-smartnic: error: 2 error(s) in the host config; nothing was done"]


def test_apply_without_yes_and_without_a_tty_changes_nothing(
        example_kernel: KernelEmulator, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run(capsys, "host", "apply", "--sysfs-root",
                         str(example_kernel.tree.root), EXAMPLE_CONFIG)
    assert code == 1
    assert "set_numvfs" in out  # the plan is shown
    assert err == ("cyborg-smartnic: error: refusing to change the host without --yes (stdin "
                   "is not a terminal to ask on)\n")
    assert example_kernel.writes == []


@pytest.mark.parametrize(("answer", "applied"), [("y\n", True), ("\n", False), ("no\n", False)])
def test_apply_asks_on_a_tty(example_kernel: KernelEmulator, answer: str, applied: bool,
                             capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Tty(answer))
    code, out, err = run(capsys, "host", "apply", "--sysfs-root",
                         str(example_kernel.tree.root), EXAMPLE_CONFIG)
    assert "Apply these 12 change(s) to this host? [y/N]" in out
    assert code == (0 if applied else 1)
    assert (example_kernel.num_vfs(CX_PF) == 8) is applied
    if not applied:
        assert err == "cyborg-smartnic: error: not confirmed; nothing was done\n"


def test_apply_yes_then_plan_is_empty(example_kernel: KernelEmulator,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = str(example_kernel.tree.root)
    code, out, err = run(capsys, "host", "apply", "--yes", "--sysfs-root", root,
                         EXAMPLE_CONFIG)
    assert code == 0, err
    assert "[12/12] bind_driver 0000:3b:00.0 vf7: - -> mlx5_core" in out
    assert out.rstrip().endswith("Applied 12 step(s): 8 changed the host, 4 found it already "
                                 "right.")
    code, out, _ = run(capsys, "host", "plan", "--sysfs-root", root, EXAMPLE_CONFIG)
    assert code == 0 and out.startswith("Nothing to do: the host matches the host config.")
    code, out, _ = run(capsys, "host", "apply", "--sysfs-root", root, EXAMPLE_CONFIG)
    assert code == 0 and "No changes applied." in out


def test_apply_failure_reports_the_step_and_the_rollback(
        example_kernel: KernelEmulator, capsys: pytest.CaptureFixture[str]) -> None:
    example_kernel.enospc_above[CX_PF] = 4
    code, out, err = run(capsys, "host", "apply", "--yes", "-f", "json", "--sysfs-root",
                         str(example_kernel.tree.root), EXAMPLE_CONFIG)
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["failed"]["target"] == CX_PF
    assert data["error"].startswith("ENOSPC")
    assert err.splitlines()[-1].startswith(f"cyborg-smartnic: error: apply failed at {CX_PF}: "
                                           f"ENOSPC")
    undone = [r for r in data["restored"] if r["changed"]]
    assert err.splitlines()[-1].endswith(f"rolled back {len(undone)} change(s), 0 could not be "
                                         f"restored")
    assert (undone[0]["kind"], undone[0]["to"]) == ("set_numvfs", 4)
    assert example_kernel.num_vfs(CX_PF) == 4


def test_doctor_passes_on_the_example_and_fails_without_iommu(
        root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "host", "doctor", "--sysfs-root", str(root))
    assert code == 0, err
    assert "[ ok ] iommu: IOMMU groups present (intel_iommu=on iommu=pt)" in out.splitlines()
    from cyborg_smartnic.hostgen import SysfsTree, x710_legacy

    bare = SysfsTree(tmp_path / "bare", iommu=False)
    x710_legacy(bare)
    config = tmp_path / "x710.yaml"
    config.write_text('devices:\n  - netdev: ens3f0\n    vf_drivers: {"0-1": vfio-pci}\n')
    code, out, err = run(capsys, "host", "doctor", "-f", "json", "--sysfs-root",
                         str(tmp_path / "bare"), str(config))
    assert code == 1
    checks = {c["check"]: c for c in json.loads(out)["checks"]}
    assert checks["iommu"]["status"] == "fail"
    assert "intel_iommu=on iommu=pt" in checks["iommu"]["remedy"]
    assert checks["vfio-pci"]["status"] == "fail"  # host.yaml asks for vfio-pci VFs
    assert "cyborg-smartnic: error:" in err and "iommu" in err


def test_conf_prints_the_smartnic_lines(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "host", "conf", "--sysfs-root", str(root), EXAMPLE_CONFIG)
    assert code == 0
    assert ("devices = 0000:18:00.0,0000:3b:00.0,0000:3b:00.1#0-2,0000:5e:00.0,0000:5e:00.1"
            in out.splitlines())
    assert "[smartnic_pool:ens1f0_vfio_pci]\ndevices = 0000:3b:00.0#0-3\nphysnet = physnet1" \
        in out


def test_a_pf_the_catalogue_does_not_know_can_be_named(root: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The I350 LOM of the example host is skipped by discovery unless host.yaml names it."""
    config = tmp_path / "lom.yaml"
    config.write_text('devices:\n  - address: "0000:01:00.0"\n    vf_count: 2\n'
                      '  - netdev: ens3f0\n    vf_count: 4\n')
    code, out, err = run(capsys, "host", "plan", "-f", "json", "--sysfs-root", str(root),
                         str(config))
    assert code == 0, err
    steps = json.loads(out)["steps"]
    assert [(s["kind"], s["target"], s["from"], s["to"]) for s in steps] == [
        ("set_numvfs", "0000:01:00.0", 0, 2)]


def test_bad_profiles_are_listed_one_per_line(root: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad-profile.yaml"
    bad.write_text("name: x\ngroups:\n  - vf_count: many\n")
    code, _, err = run(capsys, "host", "doctor", "--sysfs-root", str(root), "--profiles",
                       str(bad))
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith(f"{bad}:3:5: groups[0].vf_count: ")
    assert lines[-1] == "cyborg-smartnic: error: 1 error(s) in device profiles; nothing was done"


def test_a_failure_before_any_change_says_nothing_was_rolled_back(
        example_kernel: KernelEmulator, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pf = "0000:18:00.1"
    example_kernel.enospc_above[pf] = 1
    config = tmp_path / "two.yaml"
    config.write_text(f'devices:\n  - address: "{pf}"\n    vf_count: 2\n')
    code, out, err = run(capsys, "host", "apply", "--yes", "--sysfs-root",
                         str(example_kernel.tree.root), str(config))
    assert code == 1
    assert "Rolled back 0" not in out and "NOT restored" not in out
    assert "Nothing to roll back: no step had changed the host." in out.splitlines()
    assert err.endswith("rolled back 0 change(s), 0 could not be restored\n")
