"""Profile requirements vs host.yaml, doctor checks, the cyborg.conf snippet, devlink params."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.devlink import parse_param
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import doctor
from cyborg_smartnic.host.config import load_host_config
from cyborg_smartnic.host.devlink_params import with_flow_steering
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.requirements import Finding, check
from cyborg_smartnic.host.snippet import cyborg_conf
from cyborg_smartnic.host.steps import MANUAL, SET_NUMVFS, Plan, Step
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.hostgen.kernel import KernelEmulator
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import load_profiles

REPO = Path(__file__).parents[2]
EXAMPLE_CONFIG = REPO / "deploy" / "host.example.yaml"


@pytest.fixture(scope="module")
def example_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("example")
    build_scenario(root, "example")
    return root


def requirements(*names: str) -> list[object]:
    compiled = compile_all(load_profiles([REPO / "profiles" / name for name in names]))
    return [c.host for c in compiled]


def test_example_profiles_are_met_by_the_example_host_config(example_root: Path) -> None:
    config = load_host_config(EXAMPLE_CONFIG)
    found = check(requirements("dpdk.yaml", "ovs-offload.yaml", "upf-5g.yaml", "xdp.yaml",
                               "e810-comms-gtp.yaml"),  # type: ignore[arg-type]
                  config, scan(example_root))
    assert all(f.ok for f in found), [f.message for f in found if not f.ok]
    assert Finding("dpdk-vfio", True, "profile dpdk-vfio needs 2 vfio-pci VFs; 0000:3b:00.0 "
                                      "gives 4") in found


def test_too_few_vfs_is_reported_with_the_best_pf(example_root: Path, tmp_path: Path) -> None:
    small = tmp_path / "host.yaml"
    small.write_text('devices:\n  - address: "0000:3b:00.0"\n    vf_count: 4\n'
                     '    vf_drivers: {"0": vfio-pci, "1-3": default}\n  - netdev: ens1f1\n'
                     '    vf_drivers: {"0-3": default}\n  - netdev: ens2f0\n'
                     '    vf_drivers: {"0-7": default}\n  - netdev: ens2f1\n'
                     '    vf_drivers: {"0-3": default}\n'
                     'hugepages:\n  - {node: 0, size: 1G, count: 2}\n'
                     '  - {node: 1, size: 1G, count: 2}\n')
    found = check(requirements("dpdk.yaml"), load_host_config(small),  # type: ignore[arg-type]
                  scan(example_root))
    assert [f.message for f in found if not f.ok] == [
        "profile dpdk-vfio needs 2 vfio-pci VFs; host.yaml gives 1 (best: 0000:3b:00.0)",
        "profile dpdk-vfio needs 8 x 1GB hugepages per instance (on one NUMA node); "
        "host.yaml gives at most 2"]


def test_bluefield_profile_is_unmet_without_a_bluefield(example_root: Path) -> None:
    (finding,) = check(requirements("bluefield-dpu.yaml"),  # type: ignore[arg-type]
                       None, scan(example_root))
    assert not finding.ok and finding.message.endswith("this host gives 0")


def test_doctor_checks_a_host_against_host_yaml(example_root: Path) -> None:
    host = scan(example_root)
    config = load_host_config(EXAMPLE_CONFIG)
    checks = doctor.run_checks(host, vfio=doctor.vfio_state(str(example_root)), config=config,
                               plan=plan(config, host, InUse()))
    by_name = {(c.name, c.detail.split(":")[0]): c.status for c in checks}
    assert by_name[("iommu", "IOMMU groups present (intel_iommu=on iommu=pt)")] == doctor.OK
    assert by_name[("vfio-pci", "vfio-pci driver loaded")] == doctor.OK
    assert by_name[("hugepages", "node0 1048576kB")] == doctor.FAIL
    assert by_name[("host.yaml", "host does not match host.yaml")] == doctor.FAIL


def test_doctor_flags_dpu_mode_and_unknown_mode(tmp_path: Path) -> None:
    host = scan(build_scenario(tmp_path, "bluefield2_dpu").root)
    checks = doctor.run_checks(host, vfio="loaded")
    dpu = [c for c in checks if c.name == "dpu"]
    assert [c.status for c in dpu] == [doctor.WARN, doctor.WARN]
    assert "is in DPU mode: host-side eswitch and VF changes are refused" in dpu[0].detail
    unknown = replace(host, physical_functions=tuple(
        replace(pf, firmware=replace(pf.firmware, mode=None)) for pf in host.physical_functions))
    (first, *_) = [c for c in doctor.run_checks(unknown, vfio="loaded") if c.name == "dpu"]
    assert "DPU or NIC mode unknown" in first.detail and "mstconfig" in first.remedy


def test_doctor_vfio_states(tmp_path: Path) -> None:
    root = tmp_path
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-21-amd64\n")
    assert doctor.vfio_state(str(root)) is None
    modules = root / "lib/modules/6.1.0-21-amd64"
    modules.mkdir(parents=True)
    (modules / "modules.dep").write_text(
        "kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/vfio.ko\n")
    assert doctor.vfio_state(str(root)) == "module"
    (root / "sys/module/vfio_pci").mkdir(parents=True)
    assert doctor.vfio_state(str(root)) == "loaded"
    host = scan(build_scenario(tmp_path / "h", "x710_legacy").root)
    (check_module,) = [c for c in doctor.run_checks(host, vfio="module") if c.name == "vfio-pci"]
    assert check_module.status == doctor.WARN and "modprobe vfio-pci" in check_module.remedy


def test_doctor_reports_refused_and_manual_plans(example_root: Path) -> None:
    host = scan(example_root)
    refused = Plan((Step(SET_NUMVFS, "x", "r", refused="VF busy"),))
    manual = Plan((Step(MANUAL, "x", "mlxconfig"),))
    assert [c.status for c in doctor.run_checks(host, vfio="loaded", plan=refused)
            if c.name == "host.yaml"] == [doctor.FAIL]
    (manual_check,) = [c for c in doctor.run_checks(host, vfio="loaded", plan=manual)
                       if c.name == "host.yaml"]
    assert "1 manual step(s) (firmware)" in manual_check.detail
    assert [c.status for c in doctor.run_checks(host, vfio="loaded", plan=Plan())
            if c.name == "host.yaml"] == [doctor.OK]


def test_conf_snippet_is_valid_for_the_smartnic_options(example_root: Path,
                                                        tmp_path: Path) -> None:
    from oslo_config import cfg

    from cyborg_smartnic import conf as smartnic_conf
    from cyborg_smartnic.discovery.scan import scan_options_from_conf

    text = cyborg_conf(load_host_config(EXAMPLE_CONFIG), scan(example_root))
    path = tmp_path / "cyborg.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    smartnic_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    smartnic_conf.register_pool_opts(conf, list(conf.smartnic.pools))
    options = scan_options_from_conf(conf)  # the scanner accepts every selector
    assert [s.text for s in options.selectors] == [
        "0000:18:00.0", "0000:3b:00.0", "0000:3b:00.1#0-2", "0000:5e:00.0", "0000:5e:00.1"]
    assert conf["smartnic_pool:ens2f0_vfio_pci"].devices == ["0000:5e:00.0#0-3"]
    from cyborg_smartnic.pools import report_config_from_conf

    report = report_config_from_conf(conf, "compute-0")  # the driver accepts the pools too
    assert [(p.name, p.physnet) for p in report.pools] == [
        ("ens1f0_mlx5_core", "physnet1"), ("ens1f0_vfio_pci", "physnet1"),
        ("ens2f0_iavf", "physnet3"), ("ens2f0_vfio_pci", "physnet3")]
    host = scan(example_root, options)
    pf1 = host.find_pf(options.selectors[2].address)  # type: ignore[arg-type]
    assert pf1 is not None and pf1.physnet == "physnet2"
    assert [vf.index for vf in pf1.virtual_functions] == [0, 1, 2]  # VF 3 held back


def test_flow_steering_is_read_from_recorded_devlink_output(tmp_path: Path) -> None:
    kernel = KernelEmulator(build_scenario(tmp_path, "cx6dx_switchdev"))
    host = scan(tmp_path)
    assert {pf.flow_steering_mode for pf in with_flow_steering(host, str(tmp_path))
            .physical_functions} == {None}
    kernel.set_flow_steering("0000:3b:00.1", "smfs")
    modes = [pf.flow_steering_mode for pf in with_flow_steering(host, str(tmp_path))
             .physical_functions]
    assert modes == [None, "smfs"]


@pytest.mark.parametrize(("text", "value"), [
    ('{"param": {"pci/0000:3b:00.0": [{"name": "flow_steering_mode", "values": '
     '[{"cmode": "runtime", "value": "dmfs"}]}]}}', "dmfs"),
    ('{"param": {}}', None),
    ("not json", None),
    ('{"param": {"pci/0000:3b:00.0": [{"name": "flow_steering_mode", "values": '
     '[{"cmode": "driverinit", "value": "dmfs"}]}]}}', None),
])
def test_parse_param(text: str, value: str | None) -> None:
    assert parse_param(text, "0000:3b:00.0") == value
