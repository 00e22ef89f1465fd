"""``report`` names pools as the driver does in cyborg-agent, says so, and warns what is off.

The driver's name comes from ``pools.load_report_config(CONF)`` on cyborg's own CONF, where
cyborg registers ``[agent] resource_provider_name`` (default ``socket.getfqdn()``); here the
same call runs on a ConfigOpts holding cyborg's real agent options, and ``report`` must print
the same names.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from cyborg.conf import agent as cyborg_agent_conf
from oslo_config import cfg

from cyborg_smartnic import conf as smartnic_conf
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.pools import load_report_config


def _report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _agent_conf(path: Path) -> cfg.ConfigOpts:
    """What cyborg-agent's CONF holds for us: cyborg's [agent] options plus [smartnic]."""
    conf = cfg.ConfigOpts()
    cyborg_agent_conf.register_opts(conf)
    conf.register_opt(cfg.StrOpt("host", default=socket.gethostname()))
    smartnic_conf.register_opts(conf)
    conf(args=[], default_config_files=[str(path)])
    return conf


@pytest.mark.parametrize("text", [
    "[DEFAULT]\nhost = node-a\n[agent]\nresource_provider_name = compute-9.example.org\n",
    "[DEFAULT]\nhost = node-a\n",  # the agent's default, the FQDN, not [DEFAULT] host
    "[agent]\nresource_provider_name = compute-9.example.org\n[smartnic]\nhostname = cn7\n",
])
def test_report_names_pools_as_the_driver_does(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    build_scenario(tmp_path / "host", "cx6dx_switchdev")
    path = tmp_path / "cyborg.conf"
    path.write_text(text + "[smartnic]\n" * ("[smartnic]" not in text)
                    + "physical_device_mappings = physnet1:ens1f0,physnet2:ens1f1\n")
    driver_name = load_report_config(_agent_conf(path)).hostname
    code, out, err = _report(capsys, "--sysfs-root", str(tmp_path / "host"),
                             "--config-file", str(path), "-f", "json")
    assert code == 0, err
    names = [dep["name"] for d in json.loads(out) for dep in d["deployable_list"]]
    assert names and all(n.startswith(f"{driver_name}_") for n in names)
    assert driver_name != "node-a"
    code, out, _ = _report(capsys, "--sysfs-root", str(tmp_path / "host"),
                           "--config-file", str(path))
    assert out.splitlines()[0].startswith(f"Provider {driver_name} (from ")


def test_the_provider_line_says_where_the_name_came_from(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_scenario(tmp_path / "host", "x710_legacy")
    path = tmp_path / "a.conf"
    path.write_text("[agent]\nresource_provider_name = rp.example.org\n")
    _, out, _ = _report(capsys, "--sysfs-root", str(tmp_path / "host"), "--config-file",
                        str(path))
    assert out.startswith("Provider rp.example.org (from [agent] resource_provider_name)\n")
    _, out, _ = _report(capsys, "--sysfs-root", str(tmp_path / "host"))
    assert out.startswith(f"Provider {socket.getfqdn()} (from socket.getfqdn(), "
                          "cyborg-agent's default [agent] resource_provider_name)\n")
    (tmp_path / "host/etc").mkdir(exist_ok=True)
    (tmp_path / "host/etc/hostname").write_text("recorded-7\n")
    _, out, _ = _report(capsys, "--sysfs-root", str(tmp_path / "host"))
    assert out.startswith("Provider recorded-7 (from the recorded tree's etc/hostname")


def test_pools_without_a_physnet_are_warned_in_report_and_doctor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_scenario(tmp_path / "host", "cx6dx_switchdev")
    path = tmp_path / "c.conf"
    path.write_text("[smartnic]\nhostname = cn7\nphysical_device_mappings = physnet1:ens1f0\n")
    root = ("--sysfs-root", str(tmp_path / "host"), "--config-file", str(path))
    code, out, err = _report(capsys, *root, "-f", "json")
    assert code == 0
    json.loads(out)  # stdout stays parseable: the warning goes to stderr
    warnings = [line for line in err.splitlines() if "has no physnet" in line]
    assert warnings == ["cyborg-smartnic: warning: pool cn7_0000:3b:00.1 has no physnet "
                        "(attach_info without physical_network: Neutron accelerator-direct "
                        "ports cannot use its VFs); map its PF in [smartnic] "
                        "physical_device_mappings, or set physnet in its [smartnic_pool:NAME] "
                        "group"]
    code = main(["host", "doctor", *root, "-f", "json"])
    checks = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["check"] == "physnet"]
    assert [(c["status"], c["detail"].split(" (")[0]) for c in checks] == [
        ("warn", "pool cn7_0000:3b:00.1 has no physnet")]
    path.write_text("[smartnic]\nhostname = cn7\n"
                    "physical_device_mappings = physnet1:ens1f0,physnet2:ens1f1\n")
    _, _, err = _report(capsys, *root)
    assert "physnet" not in err


def test_unknown_options_in_our_groups_are_warned_with_a_suggestion(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_scenario(tmp_path / "host", "x710_legacy")
    path = tmp_path / "typo.conf"
    path.write_text("[DEFAULT]\ndebug = true\n"          # 1-2: not ours, not checked
                    "[smartnic]\n"                         # 3
                    "physical_device_mapings = physnet1:ens1f0\n"
                    "pools = dpdk\n"
                    "[smartnic_pool:dpdk]\n"               # 6
                    "devices = ens1f0#0-1\n"
                    "phsynet = physnet1\n"                 # 8
                    "[smartnic_pool:other]\n"              # 9
                    "devices = ens1f1\n"
                    "[smart_nic]\n"                        # 11
                    "devices = 8086:*\n"
                    "[agent]\nfoo = 1\n")
    code, _, err = _report(capsys, "--sysfs-root", str(tmp_path / "host"),
                           "--config-file", str(path))
    assert code == 0
    prefix = f"cyborg-smartnic: warning: {path}"
    assert [line for line in err.splitlines() if line.startswith(prefix)] == [
        f"{prefix}:4: [smartnic] physical_device_mapings: unknown option, ignored; did you "
        "mean 'physical_device_mappings'?",
        f"{prefix}:8: [smartnic_pool:dpdk] phsynet: unknown option, ignored; did you mean "
        "'physnet'?",
        f"{prefix}:9: [smartnic_pool:other]: pool 'other' is not in [smartnic] pools, so this "
        "group is ignored",
        f"{prefix}:11: [smart_nic]: unknown section, ignored; did you mean 'smartnic'?",
    ]


def test_the_agents_config_files_are_checked_too(tmp_path: Path) -> None:
    path = tmp_path / "cyborg.conf"
    path.write_text("[smartnic]\nphysical_device_mapings = physnet1:ens1f0\n")
    conf = _agent_conf(path)
    conf(args=["--config-file", str(path)])
    assert smartnic_conf.unknown_options(smartnic_conf.config_files(conf), []) == [
        f"{path}:2: [smartnic] physical_device_mapings: unknown option, ignored; did you mean "
        "'physical_device_mappings'?"]
