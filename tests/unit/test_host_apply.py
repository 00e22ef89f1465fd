"""The executor against the kernel emulator: ordering, verification, retries, rollback, resume.

Everything is real except the final write: the plan comes from a real scan of a generated
tree, every write goes through the privileged entry points (in process) and their
validation, and the emulator answers the way Linux does.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import inuse, steps
from cyborg_smartnic.host.apply import ApplyOptions, ApplyResult, Executor, PlanRefused
from cyborg_smartnic.host.config import HostConfig, load_host_config
from cyborg_smartnic.host.devlink_params import with_flow_steering
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.steps import Plan, Step
from cyborg_smartnic.hostgen import PfOptions, SysfsTree, build_scenario
from cyborg_smartnic.hostgen.kernel import KernelEmulator, emulated_kernel

EXAMPLE_CONFIG = Path(__file__).parents[2] / "deploy" / "host.example.yaml"
CX_PF = "0000:3b:00.0"
X710_PF1 = "0000:18:00.1"


class Crash(BaseException):
    """A power cut: not an error the executor may catch and roll back."""


def read(root: Path) -> Host:
    return with_flow_steering(scan(root), str(root))


def state(root: Path) -> dict[str, object]:
    """What a rollback must restore: VF counts, VF drivers by index, eswitch, hugepages."""
    host = read(root)
    return {
        "pfs": {str(pf.address): (pf.num_vfs, pf.eswitch_mode, pf.flow_steering_mode,
                                  tuple((vf.index, vf.driver) for vf in pf.virtual_functions))
                for pf in host.physical_functions},
        "hugepages": {(p.numa_node, p.size_kb): p.total for p in host.hugepages},
    }


def executor(kernel: KernelEmulator, **options: float) -> Executor:
    root = str(kernel.tree.root)
    return Executor(root, lambda: read(kernel.tree.root), lambda h: inuse.detect(root, h),
                    ApplyOptions(**options), sleep=kernel.sleep, clock=kernel.clock)  # type: ignore[arg-type]


def plan_for(tree: SysfsTree, config: HostConfig) -> Plan:
    host = read(tree.root)
    return plan(config, host, inuse.detect(str(tree.root), host))


def write_config(tmp_path: Path, text: str) -> HostConfig:
    path = tmp_path / "host.yaml"
    path.write_text(text)
    return load_host_config(path)


@pytest.fixture
def example(tmp_path: Path) -> Iterator[KernelEmulator]:
    tree = build_scenario(tmp_path / "host", "example")
    with emulated_kernel(tree) as kernel:
        yield kernel


def test_example_applies_and_converges(example: KernelEmulator) -> None:
    config = load_host_config(EXAMPLE_CONFIG)
    first = plan_for(example.tree, config)
    assert first.actions and not first.refused

    result = executor(example).apply(first)

    assert result.ok, result.error
    assert len(result.done) == len(first.actions)
    after = read(example.tree.root)
    cx = after.find_pf(next(pf.address for pf in after.physical_functions
                            if str(pf.address) == CX_PF))
    assert cx is not None and cx.num_vfs == 8
    assert [vf.driver for vf in cx.virtual_functions] == ["vfio-pci"] * 4 + ["mlx5_core"] * 4
    assert example.hugepages(0, 1048576) == 16 and example.hugepages(1, 1048576) == 16
    assert plan_for(example.tree, config).steps == ()  # nothing left to do


def test_interrupted_apply_is_resumed_by_running_it_again(example: KernelEmulator) -> None:
    config = load_host_config(EXAMPLE_CONFIG)
    first = plan_for(example.tree, config)
    crash_at = next(i for i, s in enumerate(first.actions, 1)
                    if s.kind == steps.SET_NUMVFS and s.pf == CX_PF and s.to_value == 8)

    def progress(line: str) -> None:
        if line.startswith(f"[{crash_at}/"):
            raise Crash

    with pytest.raises(Crash):
        replace(executor(example), progress=progress).apply(first)
    assert example.num_vfs(CX_PF) == 0  # stopped between "go to 0" and "create 8"

    resumed = plan_for(example.tree, config)
    assert [s.kind for s in resumed.actions][:1] == [steps.SET_NUMVFS]
    assert resumed.actions[0].from_value == 0 and resumed.actions[0].to_value == 8
    assert len(resumed.actions) < len(first.actions)
    assert executor(example).apply(resumed).ok
    assert plan_for(example.tree, config).steps == ()


def test_failure_rolls_everything_back_in_reverse(example: KernelEmulator) -> None:
    before = state(example.tree.root)
    example.enospc_above[CX_PF] = 4  # MSI-X runs out above 4 VFs
    first = plan_for(example.tree, load_host_config(EXAMPLE_CONFIG))

    result = executor(example).apply(first)

    assert not result.ok
    assert result.failed is not None
    assert (result.failed.kind, result.failed.pf, result.failed.to_value) == (
        steps.SET_NUMVFS, CX_PF, 8)
    assert result.error is not None and result.error.startswith("ENOSPC")
    assert "ask for fewer" in result.error
    assert result.not_restored == ()
    assert state(example.tree.root) == before
    restored = [(o.step.kind, o.step.target, o.step.to_value) for o in result.restored
                if o.changed]
    # newest change first: the CX VFs come back with their drivers, then X710, then hugepages
    assert restored[0] == (steps.SET_NUMVFS, CX_PF, 4)
    assert (steps.BIND_DRIVER, f"{CX_PF} vf0", "vfio-pci") in restored
    assert restored[-2:] == [(steps.SET_HUGEPAGES, "node1 1048576kB", 8),
                             (steps.SET_HUGEPAGES, "node0 1048576kB", 8)]


def test_ebusy_is_retried_with_backoff(example: KernelEmulator) -> None:
    example.fail_next("sriov_numvfs", errno.EBUSY, times=2)
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 2\n')
    result = executor(example, busy_backoff=0.25).apply(plan_for(example.tree, config))
    assert result.ok
    assert example.now == pytest.approx(0.25 + 0.5)  # two waits, doubling
    assert example.num_vfs(X710_PF1) == 2


def test_persistent_ebusy_fails_and_restores(example: KernelEmulator) -> None:
    example.fail_next(f"{X710_PF1}/sriov_numvfs", errno.EBUSY, times=100)
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 2\n')
    result = executor(example, busy_retries=2).apply(plan_for(example.tree, config))
    assert not result.ok and str(result.error).startswith("EBUSY")
    assert example.num_vfs(X710_PF1) == 0


def test_kernel_erange_and_enoent_fail_clearly(example: KernelEmulator) -> None:
    too_many = Plan((Step(steps.SET_NUMVFS, X710_PF1, "test", 0, 64, pf=X710_PF1),))
    result = executor(example).apply(too_many)
    assert result.error == ("ERANGE: writing '64' to "
                            f"{example.tree.device_path(X710_PF1).resolve()}/sriov_numvfs: "
                            "Numerical result out of range (more VFs than sriov_totalvfs "
                            "allows)")
    example.tree.unbind(X710_PF1)
    one = Plan((Step(steps.SET_NUMVFS, X710_PF1, "test", 0, 1, pf=X710_PF1),))
    result = executor(example).apply(one)
    assert str(result.error).startswith("ENOENT") and "no PF driver bound" in str(result.error)


def test_fewer_vfs_than_asked_is_a_failure_and_undone(example: KernelEmulator) -> None:
    example.vf_cap[X710_PF1] = 3
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 4\n')
    result = executor(example).apply(plan_for(example.tree, config))
    assert result.error == "0000:18:00.1: asked for 4 VFs, the driver enabled only 3"
    assert example.num_vfs(X710_PF1) == 0


def test_late_vfs_are_waited_for(example: KernelEmulator) -> None:
    example.late_polls = 3
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 4\n    vf_drivers:\n'
                                                    f'      "0-1": vfio-pci\n')
    result = executor(example).apply(plan_for(example.tree, config))
    assert result.ok, result.error
    assert example.sleeps >= 3
    assert [example.driver_of(a) for a in example.tree.vfs(X710_PF1).values()] == [
        "vfio-pci", "vfio-pci", "iavf", "iavf"]


def test_vfs_that_never_appear_time_out_and_roll_back(example: KernelEmulator) -> None:
    example.late_polls = 10_000
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 4\n')
    result = executor(example, vf_timeout=5.0).apply(plan_for(example.tree, config))
    assert result.error == "0000:18:00.1: 0 of 4 VFs appeared within 5s"
    assert example.num_vfs(X710_PF1) == 0
    assert example.now == pytest.approx(5.0)


def test_partial_hugepages_report_the_shortfall(example: KernelEmulator) -> None:
    example.hugepage_limit[(0, 1048576)] = 12
    config = write_config(example.tree.root.parent,
                          "hugepages:\n  - {node: 0, size: 1G, count: 16}\n")
    result = executor(example).apply(plan_for(example.tree, config))
    assert str(result.error).startswith("node0 1048576kB: asked for 16 pages, the kernel "
                                        "allocated 12 (short by 4)")
    assert example.hugepages(0, 1048576) == 8  # released again


def test_refused_plan_is_not_applied(example: KernelEmulator) -> None:
    vf0 = example.tree.vfs(CX_PF)[0]
    example.hold_vfio(4242, example.iommu_group(vf0))
    first = plan_for(example.tree, load_host_config(EXAMPLE_CONFIG))
    assert first.refused
    with pytest.raises(PlanRefused, match=r"refusing to apply: 1 refused step\(s\); first: "
                                          r"0000:3b:00.0: VF 0000:3b:00.2 is in use \(/dev/vfio/"
                                          r"\d+ is held open by pid 4242 \(qemu-system-x86\)\)"):
        executor(example).apply(first)
    assert example.writes == []


def test_vf_taken_between_plan_and_apply_is_not_destroyed(example: KernelEmulator) -> None:
    first = plan_for(example.tree, load_host_config(EXAMPLE_CONFIG))
    vf0 = example.tree.vfs(CX_PF)[0]
    example.hold_vfio(4243, example.iommu_group(vf0))  # a VM started meanwhile
    result = executor(example).apply(first)
    assert result.failed is not None and result.failed.pf == CX_PF
    assert "not touching it now: VF 0000:3b:00.2 is in use (/dev/vfio/" in str(result.error)
    assert example.num_vfs(CX_PF) == 4
    assert example.driver_of(vf0) == "vfio-pci"


def test_rollback_that_fails_is_reported(example: KernelEmulator) -> None:
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 2\n    vf_drivers:\n'
                                                    f'      "0-1": vfio-pci\n')
    first = plan_for(example.tree, config)
    example.fail_next("drivers_probe", errno.EIO, times=1)  # the first bind fails
    example.fail_next(f"{X710_PF1}/sriov_numvfs", errno.EIO, times=100)  # and the undo too
    example.faults[-1].times = 0  # armed below, after the VFs were created

    def progress(line: str) -> None:
        if "rollback" in line:
            example.faults[-1].times = 100

    result = replace(executor(example), progress=progress).apply(first)
    assert result.failed is not None and result.failed.kind == steps.BIND_DRIVER
    assert [(o.step.kind, o.step.to_value) for o in result.not_restored] == [
        (steps.SET_NUMVFS, 0)]
    assert str(result.not_restored[0].detail).startswith("EIO")


def mlx5_legacy(root: Path) -> SysfsTree:
    tree = SysfsTree(root)
    tree.add_pf(CX_PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", numa_node=0, total_vfs=8,
        num_vfs=2, vf_drivers={0: "vfio-pci"}, eswitch="legacy", fw_version="22.36.1010"))
    return tree


def test_mlx5_switchdev_unbinds_vfs_first(tmp_path: Path) -> None:
    with emulated_kernel(mlx5_legacy(tmp_path / "host")) as kernel:
        config = write_config(tmp_path, f'devices:\n  - address: "{CX_PF}"\n'
                                        f'    eswitch_mode: switchdev\n')
        first = plan_for(kernel.tree, config)
        assert [s.kind for s in first.actions] == [steps.BIND_DRIVER, steps.BIND_DRIVER,
                                                   steps.SET_ESWITCH_MODE, steps.BIND_DRIVER,
                                                   steps.BIND_DRIVER]
        result = executor(kernel).apply(first)
        assert result.ok, result.error
        assert kernel.eswitch_mode(CX_PF) == "switchdev"
        assert [kernel.driver_of(a) for a in kernel.tree.vfs(CX_PF).values()] == [
            "vfio-pci", "mlx5_core"]
        assert plan_for(kernel.tree, config).steps == ()


def test_mlx5_switchdev_with_bound_vfs_is_ebusy(tmp_path: Path) -> None:
    """Why the planner unbinds first: the naive order fails (and changes nothing)."""
    with emulated_kernel(mlx5_legacy(tmp_path / "host")) as kernel:
        naive = Plan((Step(steps.SET_ESWITCH_MODE, f"pci/{CX_PF}", "test", "legacy",
                               "switchdev", pf=CX_PF),))
        result = executor(kernel, busy_retries=1).apply(naive)
        assert str(result.error).startswith("EBUSY")
        assert kernel.eswitch_mode(CX_PF) == "legacy"


def test_flow_steering_goes_through_legacy(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "cx6dx_switchdev")
    with emulated_kernel(tree) as kernel:
        kernel.set_flow_steering(CX_PF, "dmfs")
        config = write_config(tmp_path, f'devices:\n  - address: "{CX_PF}"\n'
                                        f'    flow_steering_mode: smfs\n')
        first = plan_for(tree, config)
        assert [(s.kind, s.to_value) for s in first.actions if s.kind != steps.BIND_DRIVER] == [
            (steps.SET_ESWITCH_MODE, "legacy"), (steps.SET_DEVLINK_PARAM, "smfs"),
            (steps.SET_ESWITCH_MODE, "switchdev")]
        result = executor(kernel).apply(first)
        assert result.ok, result.error
        assert kernel.flow_steering[CX_PF] == "smfs"
        assert kernel.eswitch_mode(CX_PF) == "switchdev"
        assert plan_for(tree, config).steps == ()


def test_ice_switchdev_goes_through_zero_vfs(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "e810_comms")
    with emulated_kernel(tree) as kernel:
        config = write_config(tmp_path, 'devices:\n  - netdev: ens2f0\n'
                                        '    eswitch_mode: switchdev\n')
        result = executor(kernel).apply(plan_for(tree, config))
        assert result.ok, result.error
        assert kernel.eswitch_mode("0000:5e:00.0") == "switchdev"
        drivers = [kernel.driver_of(a) for a in tree.vfs("0000:5e:00.0").values()]
        assert drivers == ["vfio-pci"] * 4 + ["iavf"] * 4  # restored after recreation
        assert plan_for(tree, config).steps == ()


def test_bluefield_dpu_mode_plan_is_refused(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "bluefield2_dpu")
    with emulated_kernel(tree) as kernel:
        config = write_config(tmp_path, 'devices:\n  - address: "0000:af:00.0"\n'
                                        '    vf_count: 4\n')
        first = plan_for(tree, config)
        assert first.refused and "DPU mode" in str(first.refused[0].refused)
        with pytest.raises(PlanRefused):
            executor(kernel).apply(first)
        assert kernel.writes == [] and kernel.commands == []


def test_missing_vfio_module_fails_with_a_hint(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "x710_legacy")
    with emulated_kernel(tree) as kernel:
        config = write_config(tmp_path, 'devices:\n  - address: "0000:18:00.0"\n'
                                        '    vf_drivers: {"0": vfio-pci}\n')
        result: ApplyResult = executor(kernel, bind_timeout=1.0).apply(plan_for(tree, config))
        assert result.error == ("0000:18:01.0: driver is none, expected vfio-pci (is the "
                                "vfio-pci module loaded? modprobe vfio-pci)")
        assert kernel.driver_of("0000:18:01.0") == "iavf"  # rolled back
        kernel.load_module("vfio-pci")
        assert executor(kernel).apply(plan_for(tree, config)).ok
        assert kernel.driver_of("0000:18:01.0") == "vfio-pci"


def test_eswitch_change_is_rolled_back_when_a_later_step_fails(tmp_path: Path) -> None:
    with emulated_kernel(mlx5_legacy(tmp_path / "host")) as kernel:
        before = state(kernel.tree.root)
        config = write_config(tmp_path, f'devices:\n  - address: "{CX_PF}"\n'
                                        f'    eswitch_mode: switchdev\n')
        kernel.fail_next("drivers_probe", errno.EIO)  # rebinding VF 0 after the mode change
        result = executor(kernel).apply(plan_for(kernel.tree, config))
        assert result.failed is not None and result.failed.kind == steps.BIND_DRIVER
        assert (steps.SET_ESWITCH_MODE, "legacy") in [(o.step.kind, o.step.to_value)
                                                  for o in result.restored if o.changed]
        assert state(kernel.tree.root) == before


def test_flow_steering_change_is_rolled_back(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "cx6dx_switchdev")
    with emulated_kernel(tree) as kernel:
        kernel.set_flow_steering(CX_PF, "dmfs")
        before = state(tree.root)
        config = write_config(tmp_path, f'devices:\n  - address: "{CX_PF}"\n'
                                        f'    flow_steering_mode: smfs\n')
        first = plan_for(tree, config)
        kernel.fail_next("mode switchdev", errno.EINVAL)  # going back to switchdev fails
        result = executor(kernel).apply(first)
        assert result.failed is not None and result.failed.kind == steps.SET_ESWITCH_MODE
        assert str(result.error).startswith("EINVAL")
        assert kernel.flow_steering[CX_PF] == "dmfs"
        assert state(tree.root) == before


def test_rollback_never_takes_a_vf_a_vm_grabbed_meanwhile(example: KernelEmulator) -> None:
    """A VM takes a VF this apply created; a later step fails: the undo steps that would
    destroy or rebind that VF are not run, and the result says so."""
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 2\n    vf_drivers:\n'
                                                    f'      "0-1": vfio-pci\n')
    first = plan_for(example.tree, config)
    assert [s.kind for s in first.actions] == [steps.SET_NUMVFS, steps.BIND_DRIVER,
                                               steps.BIND_DRIVER]

    def progress(line: str) -> None:
        if line.startswith("[3/3]"):  # vf0 is on vfio-pci now: a VM opens it
            vf0 = example.tree.vfs(X710_PF1)[0]
            example.hold_vfio(4244, example.iommu_group(vf0))
            example.fail_next("drivers_probe", errno.EIO)  # and binding vf1 fails

    result = replace(executor(example), progress=progress).apply(first)

    assert result.failed is not None and result.failed.target == f"{X710_PF1} vf1"
    vf0 = example.tree.vfs(X710_PF1)[0]
    assert example.num_vfs(X710_PF1) == 2 and example.driver_of(vf0) == "vfio-pci"
    assert [(o.step.kind, o.step.target, o.step.to_value) for o in result.not_restored] == [
        (steps.BIND_DRIVER, f"{X710_PF1} vf0", "iavf"), (steps.SET_NUMVFS, X710_PF1, 0)]
    for outcome in result.not_restored:
        assert f"not touching it now: VF {vf0} is in use (/dev/vfio/" in outcome.detail
    assert result.to_dict()["not_restored"] != []


def test_recheck_refuses_when_the_tool_went_blind(example: KernelEmulator) -> None:
    """The plan saw every process; by the time the VFs would go, /proc cannot be read."""
    first = plan_for(example.tree, load_host_config(EXAMPLE_CONFIG))
    assert any(step.destroys_vfs for step in first.actions) and not first.refused
    (example.tree.root / "proc").rename(example.tree.root / "proc.hidden")

    result = executor(example).apply(first)

    assert result.failed is not None and result.failed.pf == CX_PF
    assert "not touching it now: cannot tell whether these VFs are free" in str(result.error)
    assert example.num_vfs(CX_PF) == 4


def test_vfs_that_are_slow_to_go_are_reported_once_and_restored(
        example: KernelEmulator) -> None:
    """sriov_numvfs reads 0 but the VF directories stay: the step fails, worded as a removal
    (never "4 of 0 VFs appeared"), and its undo is one step back to 4 (through 0 when
    needed), so a PF that ends up restored is never listed as not restored."""
    before = state(example.tree.root)
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{CX_PF}"\n'
                                                    f'    vf_count: 6\n')
    first = plan_for(example.tree, config)
    assert [(s.kind, s.to_value) for s in first.actions[:2]] == [(steps.SET_NUMVFS, 0),
                                                                 (steps.SET_NUMVFS, 6)]
    original = example.write

    def stalled(path: str, value: str) -> None:
        if path.endswith("sriov_numvfs"):  # the count changes, the VFs do not (yet)
            example.tree.set_attr(CX_PF, "sriov_numvfs", value)
            return
        original(path, value)

    example.write = stalled  # type: ignore[method-assign]
    lines: list[str] = []
    result = replace(executor(example, vf_timeout=3.0), progress=lines.append).apply(first)

    assert result.error == f"{CX_PF}: 4 of 4 VFs were not removed within 3s"
    assert result.not_restored == ()
    assert [(o.step.kind, o.step.to_value) for o in result.restored][:1] == [
        (steps.SET_NUMVFS, 4)]
    assert state(example.tree.root) == before
    assert not any("of 0 VFs" in line for line in lines)


def test_long_vf_waits_say_what_they_wait_for(example: KernelEmulator) -> None:
    example.late_polls = 50  # 25 s of 0.5 s polls
    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 4\n')
    lines: list[str] = []
    result = replace(executor(example), progress=lines.append).apply(
        plan_for(example.tree, config))
    assert result.ok, result.error
    waits = [line for line in lines if line.lstrip().startswith("waiting")]
    assert waits == [f"    waiting for the VFs of {X710_PF1}: 0 of 4 VFs present (10s of 120s)",
                     f"    waiting for the VFs of {X710_PF1}: 0 of 4 VFs present (20s of 120s)"]


def test_permission_denied_says_how_to_get_the_privilege(example: KernelEmulator) -> None:
    example.fail_next("nr_hugepages", errno.EACCES)
    config = write_config(example.tree.root.parent,
                          "hugepages:\n  - {node: 0, size: 1G, count: 12}\n")
    result = executor(example).apply(plan_for(example.tree, config))
    assert str(result.error).startswith("EACCES: ")
    assert "run host apply as root, or as a member of the cyborg-smartnic group with the " \
           "sudoers rule" in str(result.error)


def test_blind_still_lets_an_apply_set_up_the_vfs_it_creates(example: KernelEmulator) -> None:
    """Blind refuses what the plan destroys; the VFs this apply creates (autoprobed, then
    rebound) existed for no one when the plan was made: only a witness stops those.

    Blind is the unprivileged side (a non-root operator cannot read other users' open
    files); the privsep daemon (root, CAP_SYS_PTRACE) still reads /proc and re-checks."""
    root = str(example.tree.root)

    def unprivileged(host: Host) -> inuse.InUse:
        return inuse.detect(root, host).merged(inuse.InUse(blind="other users' open files "
                                                                 "are hidden (not root)"))

    config = write_config(example.tree.root.parent, f'devices:\n  - address: "{X710_PF1}"\n'
                                                    f'    vf_count: 2\n    vf_drivers:\n'
                                                    f'      "0-1": vfio-pci\n')
    host = read(example.tree.root)
    first = plan(config, host, unprivileged(host))
    assert not first.refused
    result = Executor(root, lambda: read(example.tree.root), unprivileged, ApplyOptions(),
                      sleep=example.sleep, clock=example.clock).apply(first)
    assert result.ok, result.error
    assert [example.driver_of(a) for a in example.tree.vfs(X710_PF1).values()] == [
        "vfio-pci", "vfio-pci"]
