"""XDP readiness: catalogue facts, the kernel config under a root, profile check and doctor."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cyborg_smartnic.catalog import xdp_support
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.host.ovs import xdp
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import load_profiles
from tests.unit.test_profiles_check import _host as report_offers

PROFILES = """\
- name: xdp-on-x710
  groups:
    - vf_count: 1
      physnet: physnet5
      xdp: native
- name: xdp-on-cx6
  groups:
    - vf_count: 1
      physnet: physnet1
      xdp: native
- name: xdp-generic-on-x710
  groups:
    - vf_count: 1
      physnet: physnet5
      xdp: generic
"""
CONFIG = ("CONFIG_BPF=y\nCONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\n"
          "# CONFIG_XDP_SOCKETS is not set\n")


def test_catalogue_xdp_facts() -> None:
    assert [xdp_support(d) for d in ("mlx5_core", "ixgbevf", "bnxt_en", "iavf", "vfio-pci",
                                     "acme_nic")] == [
        "native", "native", "native", "generic", "none", None]


def test_profile_check_refuses_native_xdp_on_iavf(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES)
    offers, hugepages = report_offers(tmp_path / "host", "example")
    from cyborg_smartnic.profiles.check import check_all

    compiled = compile_all(load_profiles([tmp_path / "p.yaml"]))
    verdicts = {v.profile: v for v in check_all([c.host for c in compiled], offers,
                                                hugepages)}
    assert verdicts["xdp-on-cx6"].servable
    assert verdicts["xdp-generic-on-x710"].servable
    refused = verdicts["xdp-on-x710"]
    assert not refused.servable
    assert refused.problems == (
        "group 0 (1 x CUSTOM_SMARTNIC_VF, physnet5, xdp native): no pool gives native XDP; "
        "compute-0.example.org_0000:18:00.0: VF driver iavf has no native XDP "
        "(generic/skb mode only)",)


def test_profile_check_cli_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES)
    code = main(["profile", "check", "--example-host", "-f", "json", str(tmp_path / "p.yaml")])
    verdicts = {v["profile"]: v for v in json.loads(capsys.readouterr().out)["profiles"]}
    assert code in (0, 1)
    assert not verdicts["xdp-on-x710"]["servable"]
    assert "iavf has no native XDP" in verdicts["xdp-on-x710"]["problems"][0]


def _root(tmp_path: Path, *, boot: str | None, proc_gz: str | None) -> str:
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/osrelease").write_text("6.1.0-21-amd64\n")
    if boot is not None:
        (tmp_path / "boot").mkdir()
        (tmp_path / "boot/config-6.1.0-21-amd64").write_text(boot)
    if proc_gz is not None:
        (tmp_path / "proc/config.gz").write_bytes(gzip.compress(proc_gz.encode()))
    return str(tmp_path)


def test_kernel_config_from_boot_names_the_missing_option(tmp_path: Path) -> None:
    check = xdp.kernel_check(_root(tmp_path, boot=CONFIG, proc_gz=None), wanted=True)
    assert check.status == "fail"
    assert check.detail.startswith("CONFIG_XDP_SOCKETS=n (")
    assert check.detail.endswith("boot/config-6.1.0-21-amd64): a profile asks for XDP")
    assert check.remedy == "use a kernel built with CONFIG_XDP_SOCKETS=y"
    assert xdp.kernel_check(str(tmp_path), wanted=False).status == "warn"


def test_kernel_config_falls_back_to_proc_config_gz(tmp_path: Path) -> None:
    root = _root(tmp_path, boot=None, proc_gz=CONFIG.replace(
        "# CONFIG_XDP_SOCKETS is not set", "CONFIG_XDP_SOCKETS=y"))
    check = xdp.kernel_check(root, wanted=True)
    assert check.status == "ok" and check.detail.endswith("proc/config.gz)")


def test_no_kernel_config_cannot_tell(tmp_path: Path) -> None:
    check = xdp.kernel_check(_root(tmp_path, boot=None, proc_gz=None), wanted=True)
    assert check.status == "warn" and check.detail.startswith("cannot tell: no kernel config")


def test_this_machines_kernel_config_is_read() -> None:
    values, where = xdp.read_config("/")
    if values is None:
        pytest.fail(f"this machine should have a kernel config: {where}")
    assert values.get("CONFIG_BPF_SYSCALL") in ("y", "n")


def test_doctor_runs_the_xdp_checks_for_a_profile_that_asks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(PROFILES)
    code = main(["host", "doctor", "--example-host", "-f", "json", "--profiles",
                 str(tmp_path / "p.yaml")])
    rows = {r["check"]: r for r in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert rows["xdp xdp-on-cx6"]["status"] == "ok"
    assert rows["xdp xdp-on-x710"]["status"] == "fail"
    assert rows["xdp xdp-on-x710"]["detail"] == (
        "0000:18:00.0 (X710) VFs run iavf: generic XDP")
    assert "xdp kernel" in rows
