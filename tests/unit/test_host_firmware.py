"""Firmware steps: recorded mstconfig/mlxfwreset answers, the ice DDP package, and the kernel
emulator reacting to firmware resets, driver reloads and a reboot
(cyborg_smartnic/hostgen/firmware.py)."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import firmware, firmware_privileged, firmware_resume, inuse
from cyborg_smartnic.host.apply import ApplyOptions, Executor
from cyborg_smartnic.host.config import HostConfig, InvalidHostConfig, load_host_config
from cyborg_smartnic.host.devlink_params import with_flow_steering
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.requirements import check
from cyborg_smartnic.host.steps import (
    DISRUPTION_DRIVER,
    DISRUPTION_FW_RESET,
    DISRUPTION_REBOOT,
    FIRMWARE_KINDS,
    FW_RESET,
    INSTALL_DDP,
    REBOOT,
    RELOAD_DRIVER,
    SET_ESWITCH_MODE,
    SET_NUMVFS,
    SET_NV_CONFIG,
    Plan,
    Step,
)
from cyborg_smartnic.hostgen import PfOptions, SysfsTree, build_scenario
from cyborg_smartnic.hostgen.firmware import (
    read_nv,
    write_ddp_packages,
    write_nv_query,
    write_reset_query,
)
from cyborg_smartnic.hostgen.kernel import KernelEmulator, emulated_kernel
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import load_profiles

CX0, CX1 = "0000:3b:00.0", "0000:3b:00.1"
ICE0, ICE1 = "0000:5e:00.0", "0000:5e:00.1"


class Crash(BaseException):
    """A power cut between two steps: nothing may catch it and roll back."""


def read(root: Path) -> Host:
    return with_flow_steering(scan(root), str(root))


def plan_for(tree: SysfsTree, config: HostConfig) -> Plan:
    host = read(tree.root)
    root = str(tree.root)
    return plan(config, host, inuse.detect(root, host),
                firmware_facts=firmware.read_host_facts(root, host), root=root)


def executor(kernel: KernelEmulator) -> Executor:
    root = str(kernel.tree.root)
    return Executor(root, lambda: read(kernel.tree.root), lambda h: inuse.detect(root, h),
                    ApplyOptions(), sleep=kernel.sleep, clock=kernel.clock)


def config_file(tmp_path: Path, text: str) -> HostConfig:
    path = tmp_path / "host.yaml"
    path.write_text(text)
    return load_host_config(path)


def pf(root: Path, address: str) -> object:
    return next(p for p in read(root).physical_functions if str(p.address) == address)


@pytest.fixture
def cx(tmp_path: Path) -> Iterator[KernelEmulator]:
    tree = build_scenario(tmp_path / "host", "cx6dx_switchdev")
    for address in (CX0, CX1):
        write_nv_query(tree.root, address, {"SRIOV_EN": (1, 1), "NUM_OF_VFS": (8, 8)})
        write_reset_query(tree.root, address, level3=True)
    with emulated_kernel(tree) as kernel:
        yield kernel


CX_16 = """devices:
  - address: "0000:3b:00.0"
    vf_count: 16
    eswitch_mode: switchdev
"""


# ---------------------------------------------------------------------------- parsing
def test_mstconfig_query_with_and_without_e_and_reset_levels() -> None:
    plain = ("Configurations:                 Next Boot\n"
             "        SRIOV_EN                 True(1)\n"
             "        NUM_OF_VFS               8\n"
             "        INTERNAL_CPU_MODEL       EMBEDDED_CPU(1)\n")
    assert firmware.parse_nv(plain) == {
        "SRIOV_EN": firmware.NvValue(1, 1), "NUM_OF_VFS": firmware.NvValue(8, 8),
        "INTERNAL_CPU_MODEL": firmware.NvValue(1, 1)}
    extended = ("Device:   0000:3b:00.0\n"
                "Configurations:      Default     Current     Next Boot\n"
                "*       NUM_OF_VFS   8           8           16\n"
                "        SRIOV_EN     True(1)     True(1)     True(1)\n"
                "        JUNK LINE WITH TOO MANY WORDS HERE\n")
    parsed = firmware.parse_nv(extended)
    assert parsed["NUM_OF_VFS"] == firmware.NvValue(8, 16) and parsed["NUM_OF_VFS"].pending
    assert not parsed["SRIOV_EN"].pending and len(parsed) == 2
    assert firmware.parse_reset_levels(
        "3: Driver restart and PCI reset   -Supported     (default)\n") is True
    assert firmware.parse_reset_levels("3: Driver restart   -Not Supported\n") is False
    assert firmware.parse_reset_levels("garbage") is None


# ---------------------------------------------------------------------------- mlx5 NV
def test_vf_limit_is_raised_by_nv_config_and_a_firmware_reset(cx: KernelEmulator,
                                                               tmp_path: Path) -> None:
    config = config_file(tmp_path, CX_16)
    first = plan_for(cx.tree, config)
    kinds = [(s.kind, s.param) for s in first.steps]
    assert kinds[:2] == [(SET_NV_CONFIG, "NUM_OF_VFS"), (FW_RESET, None)]
    reset = first.steps[1]
    # the blast radius: both functions of the adapter and every VF they have
    assert reset.disturbs_pfs == (CX0, CX1) and len(reset.destroys_vfs) == 8
    assert reset.disruption == DISRUPTION_FW_RESET and first.disruption == "fw-reset"
    # the rest is planned on the PF as the reset leaves it (0 VFs, legacy, limit 16)
    assert (SET_ESWITCH_MODE, None) in kinds and first.refused == ()
    assert any(s.kind == SET_NUMVFS and s.pf == CX1 and s.to_value == 4 for s in first.steps)

    result = executor(cx).apply(first)

    assert result.ok, result.error
    assert ["mstconfig", "-y", "-d", CX0, "set", "NUM_OF_VFS=16"] in cx.commands
    assert ["mlxfwreset", "-d", CX0, "--level", "3", "-y", "reset"] in cx.commands
    assert read_nv(cx.tree.root, CX0)["NUM_OF_VFS"] == (16, 16)
    after = read(cx.tree.root)
    cx0 = next(p for p in after.physical_functions if str(p.address) == CX0)
    assert (cx0.total_vfs, cx0.num_vfs, cx0.eswitch_mode) == (16, 16, "switchdev")
    assert cx.num_vfs(CX1) == 4  # the other port got its VFs back, in switchdev again
    assert cx.eswitch_mode(CX1) == "switchdev"
    assert plan_for(cx.tree, config).steps == ()  # converged: a second apply does nothing


def test_devlink_fw_activate_when_mlxfwreset_is_missing(cx: KernelEmulator,
                                                        tmp_path: Path) -> None:
    cx.tools.discard("mlxfwreset")
    cx.tools.discard("mstconfig")
    cx.tools.add("mlxconfig")
    result = executor(cx).apply(plan_for(cx.tree, config_file(tmp_path, CX_16)))
    assert result.ok, result.error
    assert ["mlxconfig", "-y", "-d", CX0, "set", "NUM_OF_VFS=16"] in cx.commands
    assert ["devlink", "dev", "reload", f"pci/{CX0}", "action", "fw_activate"] in cx.commands


def test_power_loss_between_nv_write_and_reset_converges(cx: KernelEmulator,
                                                        tmp_path: Path) -> None:
    config = config_file(tmp_path, CX_16)
    first = plan_for(cx.tree, config)
    at = next(i for i, s in enumerate(first.actions, 1) if s.kind == FW_RESET)

    def progress(line: str) -> None:
        if line.startswith(f"[{at}/"):
            raise Crash

    with pytest.raises(Crash):
        replace(executor(cx), progress=progress).apply(first)
    assert read_nv(cx.tree.root, CX0)["NUM_OF_VFS"] == (8, 16)  # written, not active

    again = plan_for(cx.tree, config)
    assert [s.kind for s in again.steps][:1] == [FW_RESET]  # no second NV write
    assert executor(cx).apply(again).ok
    assert plan_for(cx.tree, config).steps == ()


def test_reset_refused_while_a_vm_holds_a_vf_of_the_other_port(cx: KernelEmulator,
                                                               tmp_path: Path) -> None:
    held = cx.tree.vfs(CX1)[0]  # on vfio-pci
    cx.hold_vfio(4242, cx.iommu_group(held))
    result = plan_for(cx.tree, config_file(tmp_path, CX_16))
    reset = next(s for s in result.steps if s.kind == FW_RESET)
    assert reset.refused and held in reset.refused


def test_no_reset_level_3_means_a_reboot_then_resume(cx: KernelEmulator,
                                                     tmp_path: Path) -> None:
    for address in (CX0, CX1):
        write_reset_query(cx.tree.root, address, level3=False)
    config = config_file(tmp_path, CX_16)
    first = plan_for(cx.tree, config)
    assert [s.kind for s in first.steps] == [SET_NV_CONFIG, REBOOT]
    assert first.steps[-1].disruption == DISRUPTION_REBOOT
    assert any("--resume" in note for note in first.notes)

    result = executor(cx).apply(first)

    assert result.ok and [s.kind for s in result.after_reboot] == [REBOOT]
    assert result.to_dict()["reboot_required"] is True
    assert not any(c[0] == "mlxfwreset" for c in cx.commands)
    assert plan_for(cx.tree, config).steps[-1].kind == REBOOT  # still pending: converges
    cx.firmware.reboot()  # the tree as the recorded post-reboot state has it
    after = plan_for(cx.tree, config)
    assert not any(s.kind in FIRMWARE_KINDS for s in after.steps)
    assert executor(cx).apply(after).ok
    assert plan_for(cx.tree, config).steps == ()
    assert cx.num_vfs(CX0) == 16


def test_bluefield_mode_change_writes_every_mode_key_then_reboots(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "bluefield2_dpu")
    config = config_file(tmp_path, 'devices:\n  - address: "0000:af:00.0"\n'
                                   '    firmware_mode: nic\n    vf_count: 2\n')
    with emulated_kernel(tree) as kernel:
        first = plan_for(tree, config)
        nv = {s.param: s.to_value for s in first.steps if s.kind == SET_NV_CONFIG}
        # INTERNAL_CPU_MODEL is EMBEDDED_CPU(1) in both modes: recorded so, not written again
        assert nv == {k: v for k, v in firmware.BLUEFIELD_MODES["nic"].items()
                      if k != "INTERNAL_CPU_MODEL"}
        assert first.steps[-1].kind == REBOOT and first.refused == ()
        assert executor(kernel).apply(first).after_reboot
        kernel.firmware.reboot()
        host = read(tree.root)
        assert next(p for p in host.physical_functions
                    if str(p.address) == "0000:af:00.0").firmware.mode == "nic"


# ---------------------------------------------------------------------------- E810 DDP
@pytest.fixture
def ice(tmp_path: Path) -> Iterator[KernelEmulator]:
    tree = build_scenario(tmp_path / "host", "e810_comms")
    write_ddp_packages(tree.root)
    with emulated_kernel(tree) as kernel:
        yield kernel


ICE_DEFAULT = """devices:
  - address: "0000:5e:00.0"
    vf_count: 8
    firmware_mode: os_default
"""


def test_ddp_package_install_and_ice_reload_take_down_every_ice_port(
        ice: KernelEmulator, tmp_path: Path) -> None:
    config = config_file(tmp_path, ICE_DEFAULT)
    first = plan_for(ice.tree, config)
    install, reload = first.steps[:2]
    assert install.kind == INSTALL_DDP and install.refused is None
    assert install.target == "/lib/firmware/intel/ice/ddp/ice-1.3.36.0.pkg"
    assert reload.kind == RELOAD_DRIVER and reload.disturbs_pfs == (ICE0, ICE1)
    assert len(reload.destroys_vfs) == 12 and reload.disruption == DISRUPTION_DRIVER
    assert any(ICE1 in note for note in first.notes)

    result = executor(ice).apply(first)

    assert result.ok, result.error
    assert ["modprobe", "-r", "ice"] in ice.commands and ["modprobe", "ice"] in ice.commands
    installed = ice.tree.root / firmware.DDP_TARGET_DIR / "ice.pkg"
    assert "ICE OS Default Package" in installed.read_text() and not installed.is_symlink()
    modes = {str(p.address): p.firmware.mode for p in read(ice.tree.root).physical_functions}
    assert modes == {ICE0: "os_default", ICE1: "os_default"}
    assert ice.num_vfs(ICE0) == 8 and ice.num_vfs(ICE1) == 4
    assert plan_for(ice.tree, config).steps == ()


def test_ddp_install_is_skipped_when_already_in_place(ice: KernelEmulator,
                                                      tmp_path: Path) -> None:
    config = config_file(tmp_path, ICE_DEFAULT)
    first = plan_for(ice.tree, config)
    at = next(i for i, s in enumerate(first.actions, 1) if s.kind == RELOAD_DRIVER)

    def progress(line: str) -> None:
        if line.startswith(f"[{at}/"):
            raise Crash

    with pytest.raises(Crash):
        replace(executor(ice), progress=progress).apply(first)
    result = executor(ice).apply(plan_for(ice.tree, config))
    assert result.ok
    assert result.done[0].detail.startswith("already installed")
    assert plan_for(ice.tree, config).steps == ()


def test_ddp_without_the_package_or_with_two_modes_is_refused(tmp_path: Path) -> None:
    tree = build_scenario(tmp_path / "host", "e810_comms")  # no packages written
    result = plan_for(tree, config_file(tmp_path, ICE_DEFAULT))
    assert result.steps[0].kind == INSTALL_DDP
    assert "no os_default DDP package" in str(result.steps[0].refused)
    write_ddp_packages(tree.root)
    both = config_file(tmp_path, ICE_DEFAULT + '  - address: "0000:5e:00.1"\n'
                                               "    firmware_mode: wireless_edge\n")
    refused = plan_for(tree, both).refused
    assert refused and "one package for every port" in str(refused[0].refused)


def test_ice_reload_refused_while_a_vm_holds_a_vf(ice: KernelEmulator, tmp_path: Path) -> None:
    held = ice.tree.vfs(ICE1)[0]
    ice.hold_vfio(4343, ice.iommu_group(held))
    result = plan_for(ice.tree, config_file(tmp_path, ICE_DEFAULT))
    reload = next(s for s in result.steps if s.kind == RELOAD_DRIVER)
    assert reload.refused and held in reload.refused


# ---------------------------------------------------------------------------- privsep
def test_entry_points_validate_every_argument(ice: KernelEmulator) -> None:
    root = str(ice.tree.root)
    with pytest.raises(ValueError, match="not one this tool sets"):
        firmware_privileged.nv_config_set(CX0, "LINK_TYPE_P1", 2)
    with pytest.raises(ValueError, match="not allowed"):
        firmware_privileged.nv_config_set(CX0, "SRIOV_EN", 7)
    with pytest.raises(ValueError, match="not allowed"):
        firmware_privileged.nv_config_set(CX0, "NUM_OF_VFS", True)
    with pytest.raises(ValueError):
        firmware_privileged.nv_config_set("0000:3b:00.0; reboot", "SRIOV_EN", 1)
    with pytest.raises(ValueError):
        firmware_privileged.fw_reset("3b:00.0 --level 4")
    with pytest.raises(ValueError, match="not one this tool reloads"):
        firmware_privileged.reload_driver("mlx5_core")
    with pytest.raises(ValueError, match="not a DDP package file name"):
        firmware_privileged.install_ddp(root, "lib/firmware/intel/ice/ddp", "../../shadow")
    with pytest.raises(ValueError, match="not a DDP package directory"):
        firmware_privileged.install_ddp(root, "etc", "ice-1.3.36.0.pkg")
    with pytest.raises(ValueError, match="absolute"):
        firmware_privileged.install_ddp("relative", "lib/firmware/intel/ice/ddp",
                                        "ice-1.3.36.0.pkg")
    assert ice.commands == []  # nothing ran


def test_install_never_follows_a_symlink(ice: KernelEmulator, tmp_path: Path) -> None:
    root = ice.tree.root
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "lib/firmware/updates").symlink_to(elsewhere)
    with pytest.raises(OSError) as caught:
        firmware_privileged.install_ddp(str(root), "lib/firmware/intel/ice/ddp",
                                        "ice-1.3.36.0.pkg")
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    assert list(elsewhere.iterdir()) == []
    # a source that is a symlink (the distribution's ice.pkg link) is refused too
    (root / "lib/firmware/updates").unlink()
    (root / "lib/firmware/intel/ice/ddp/ice_comms-9.9.9.9.pkg").symlink_to("/etc/hostname")
    with pytest.raises(OSError):
        firmware_privileged.install_ddp(str(root), "lib/firmware/intel/ice/ddp",
                                        "ice_comms-9.9.9.9.pkg")


def test_recorded_dev_info_follows_the_reload(ice: KernelEmulator) -> None:
    ice.firmware.ice_load()  # nothing in updates/: the distribution's default package
    data = json.loads((ice.tree.root / "devlink" / f"dev-info-{ICE0}.json").read_text())
    assert data["info"][f"pci/{ICE0}"]["versions"]["running"]["fw.app.name"] == \
        "ICE OS Default Package"


# ---------------------------------------------------------------------------- CLI resume
def test_cli_apply_stops_at_the_reboot_and_resume_finishes_it(
        cx: KernelEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for address in (CX0, CX1):
        write_reset_query(cx.tree.root, address, level3=False)
    host_yaml = tmp_path / "host.yaml"
    host_yaml.write_text(CX_16)
    root = str(cx.tree.root)
    state_dir = cx.tree.root / "var/lib/cyborg-smartnic"

    assert main(["host", "apply", "--resume", "--sysfs-root", root]) == 1  # nothing to resume
    assert "HOST.yaml is required" in capsys.readouterr().err

    assert main(["host", "plan", "--sysfs-root", root, str(host_yaml)]) == 0
    out = capsys.readouterr().out
    assert "REBOOT" in out and "worst disruption: reboot" in out

    assert main(["host", "apply", "--yes", "--sysfs-root", root, str(host_yaml)]) == 0
    out = capsys.readouterr().out
    assert "reboot required" in out and "--resume" in out
    record = firmware_resume.load(str(state_dir))
    assert record is not None and record.host_config == str(host_yaml)
    assert record.pending[0]["kind"] == REBOOT

    # a warm boot that did not activate the change: resume says so and keeps the record
    assert main(["host", "apply", "--resume", "--sysfs-root", root]) == 1
    assert "still not active" in capsys.readouterr().err
    assert firmware_resume.load(str(state_dir)) is not None

    cx.firmware.reboot()
    assert main(["host", "apply", "--resume", "--yes", "--sysfs-root", root]) == 0
    out = capsys.readouterr().out
    assert "resumed after the reboot: 1 step(s) were pending" in out
    assert firmware_resume.load(str(state_dir)) is None
    assert cx.num_vfs(CX0) == 16
    assert main(["host", "apply", "--resume", "--yes", "--sysfs-root", root,
                 str(host_yaml)]) == 0
    assert "No changes applied." in capsys.readouterr().out


def test_resume_record_is_atomic_and_bad_ones_are_reported(tmp_path: Path) -> None:
    step = Step(REBOOT, "host", reason="x", disruption=DISRUPTION_REBOOT)
    path = firmware_resume.record(str(tmp_path / "state"), "host.yaml", "node1", (step,))
    assert [p.name for p in path.parent.iterdir()] == [firmware_resume.FILE_NAME]
    loaded = firmware_resume.load(str(tmp_path / "state"))
    assert loaded is not None and loaded.pending[0]["disruption"] == "reboot"
    path.write_text("{not json")
    with pytest.raises(firmware_resume.BadRecord, match="not JSON"):
        firmware_resume.load(str(tmp_path / "state"))
    assert firmware_resume.clear(str(tmp_path / "state"))
    assert not firmware_resume.clear(str(tmp_path / "state"))


# ---------------------------------------------------------------------------- hints (item 4)
def _os_default_e810(root: Path) -> SysfsTree:
    tree = SysfsTree(root)
    tree.add_pf(ICE0, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", numa_node=1, total_vfs=128,
        num_vfs=4, vf_driver="vfio-pci", fw_version="4.40", fw_mode="os_default",
        physnet="physnet3"))
    tree.add_pf(ICE1, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f1", numa_node=1, total_vfs=128,
        num_vfs=0, fw_version="4.40", fw_mode="os_default", physnet="physnet4"))
    tree.add_pf("0000:af:00.0", PfOptions(
        vendor="15b3", device="a2d6", driver="mlx5_core", netdev="ens5f0np0", total_vfs=16,
        num_vfs=0, fw_version="24.35.2000", fw_mode="nic", eswitch="legacy"))
    return tree


def test_profile_check_and_doctor_name_the_firmware_change(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = _os_default_e810(tmp_path / "host")
    host = read(tree.root)
    comms = firmware.firmware_hint("comms", host)
    assert comms is not None and f"firmware_mode: comms on {ICE0} (E810)" in comms
    assert "driver-reload" in comms and "2 here" in comms
    dpu = firmware.firmware_hint("dpu", host)
    assert dpu is not None and "0000:af:00.0 (BlueField-2)" in dpu and "reboot" in dpu
    assert firmware.firmware_hint("comms", Host("n", (), ())) is None

    profiles = Path(__file__).parents[2] / "profiles" / "e810-comms-gtp.yaml"
    needs = [c.host for c in compile_all(load_profiles([profiles]))]
    finding = next(f for f in check(needs, None, host) if "VFs" in f.message)
    assert not finding.ok and "host apply installs the comms DDP package" in finding.message

    # profile check (the driver's report of this host) says the same
    code = main(["profile", "check", "--sysfs-root", str(tree.root), "-f", "json",
                 str(profiles)])
    out = capsys.readouterr().out
    assert code == 0, out
    problems = json.loads(out)["profiles"][0]["problems"]
    assert any("firmware_mode: comms on 0000:5e:00.0" in p and "driver-reload" in p
               for p in problems), problems

    # host doctor with the profiles: the failed profile check carries the hint
    code = main(["host", "doctor", "--sysfs-root", str(tree.root), "--profiles",
                 str(profiles)])
    out = capsys.readouterr().out
    assert code == 1 and "host apply installs the comms DDP package" in out


def test_operator_named_ddp_package(ice: KernelEmulator, tmp_path: Path) -> None:
    newer = ice.tree.root / "lib/firmware/intel/ice/ddp/ice-1.3.40.0.pkg"
    older = "ice-1.3.36.0.pkg"
    newer.write_text("stand-in ice DDP package: ICE OS Default Package (1.3.40)\n")
    config = config_file(tmp_path, 'devices:\n  - address: "0000:5e:00.0"\n'
                                   f"    ddp_package: {older}\n")
    first = plan_for(ice.tree, config)
    assert first.steps[0].target == f"/lib/firmware/intel/ice/ddp/{older}"  # not the newest
    assert first.steps[1].to_value == "os_default" and first.refused == ()
    assert executor(ice).apply(first).ok
    installed = ice.tree.root / firmware.DDP_TARGET_DIR / "ice.pkg"
    assert installed.read_bytes() == (newer.parent / older).read_bytes()
    assert plan_for(ice.tree, config).steps == ()
    wrong = config_file(tmp_path, 'devices:\n  - address: "0000:5e:00.0"\n'
                                  "    firmware_mode: comms\n    ddp_package: ice-1.3.40.0.pkg\n")
    assert "holds the os_default package, not comms" in str(
        plan_for(ice.tree, wrong).refused[0].refused)
    with pytest.raises(InvalidHostConfig) as caught:
        config_file(tmp_path, 'devices:\n  - address: "0000:5e:00.0"\n'
                              "    ddp_package: ../../etc/shadow\n")
    assert "ddp_package" in str(caught.value.errors[0])
