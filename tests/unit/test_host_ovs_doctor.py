"""The doctor's offload checks on a fully recorded host (recorded OVSDB, tc, ethtool and
dpctl answers from cyborg_smartnic/hostgen/ovs_recorded.py), plus the pure parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.host.ovs import datapath as dp
from cyborg_smartnic.hostgen import build_scenario, ovs_recorded

HOST_YAML = """\
ovs:
  hw_offload: true
  tc_policy: none
  max_idle: 30000
  uplinks:
    - netdev: ens1f0
      bridge: br-phys
"""


def _host(tmp_path: Path, *, healthy: bool, set_after_start: bool = False) -> tuple[str, str]:
    root = tmp_path / "root"
    build_scenario(root, "cx6dx_switchdev")
    ovs_recorded.record_ovsdb(root, set_after_start=set_after_start)
    ovs_recorded.record_datapath(root, healthy=healthy)
    (tmp_path / "host.yaml").write_text(HOST_YAML)
    return str(root), str(tmp_path / "host.yaml")


def _doctor(root: str, config: str, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["host", "doctor", "-f", "json", "--sysfs-root", root, config])
    rows = json.loads(capsys.readouterr().out)["checks"]
    return code, {r["check"]: r for r in rows}


def test_healthy_recorded_host_passes_every_offload_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = _doctor(*_host(tmp_path, healthy=True), capsys)
    ovs = {k: v for k, v in checks.items() if k.startswith(("ovs", "tc ", "hw-tc"))}
    assert {v["status"] for v in ovs.values()} == {"ok"}, ovs
    assert set(ovs) == {"ovs hw-offload", "ovs uplink ens1f0", "hw-tc-offload ens1f0",
                        "ovs representors", "hw-tc-offload ens1f0_0", "tc ens1f0_0",
                        "hw-tc-offload ens1f0_1", "tc ens1f0_1",
                        "ovs datapath system@ovs-system"}
    assert "in effect" in ovs["ovs hw-offload"]["detail"]
    assert ovs["ovs datapath system@ovs-system"]["detail"].startswith(
        "3 of 4 flow(s) offloaded (75%)")
    assert code == 0


def test_broken_representor_fails_with_remedies(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = _doctor(*_host(tmp_path, healthy=False), capsys)
    assert code == 1
    assert checks["hw-tc-offload ens1f0_1"]["status"] == "fail"
    assert checks["hw-tc-offload ens1f0_1"]["remedy"].startswith(
        "ethtool -K ens1f0_1 hw-tc-offload on")
    assert checks["tc ens1f0_1"]["status"] == "fail"
    assert checks["tc ens1f0_1"]["detail"].startswith("1 of 3 flower filter(s) not_in_hw")
    assert checks["tc ens1f0_0"]["status"] == "ok"
    assert checks["ovs datapath system@ovs-system"]["status"] == "warn"


def test_setting_changed_after_the_daemon_started_is_not_in_effect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, checks = _doctor(*_host(tmp_path, healthy=True, set_after_start=True), capsys)
    check = checks["ovs hw-offload"]
    assert (code, check["status"]) == (1, "fail")
    assert "not in effect" in check["detail"]
    assert check["remedy"].startswith("systemctl restart openvswitch-switch")


def test_uplink_on_the_wrong_bridge_and_legacy_pf(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root, config = _host(tmp_path, healthy=True)
    Path(config).write_text(HOST_YAML.replace("br-phys", "br-ex") + "    - netdev: ens1f1\n")
    code, checks = _doctor(root, config, capsys)
    assert code == 1
    wrong = checks["ovs uplink ens1f0"]
    assert wrong["detail"] == "ens1f0 (0000:3b:00.0) is on br-phys, expected on br-ex"
    assert wrong["remedy"] == "ovs-vsctl del-port br-phys ens1f0 -- add-port br-ex ens1f0"
    # an uplink without its own bridge belongs on ovs.bridge (br-int by default)
    assert checks["ovs uplink ens1f1"]["detail"] == (
        "ens1f1 (0000:3b:00.1) is on no bridge, expected on br-int")


def test_no_recorded_ovs_is_one_failure(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    build_scenario(root, "cx6dx_switchdev")
    (tmp_path / "host.yaml").write_text(HOST_YAML)
    code = main(["host", "doctor", "--sysfs-root", str(root), str(tmp_path / "host.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    assert "[FAIL] ovs: cannot read Open vSwitch: no Open vSwitch recorded under" in out


def test_host_without_ovs_config_or_recording_gets_no_ovs_checks(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    build_scenario(root, "cx6dx_switchdev")
    main(["host", "doctor", "-f", "json", "--sysfs-root", str(root)])
    rows = json.loads(capsys.readouterr().out)["checks"]
    assert not [r for r in rows if r["check"].startswith("ovs")]


def test_parsers() -> None:
    assert dp.parse_dps("netdev@ovs-netdev\nsystem@ovs-system\n") == (
        "netdev@ovs-netdev", "system@ovs-system")
    text = ("flow-dump from the main thread:\n"
            "recirc_id(0),in_port(2),eth_type(0x0800), packets:2, bytes:236, used:0.3s, "
            "actions:3\nrecirc_id(0),in_port(3), packets:0, bytes:0, used:never, actions:2\n")
    assert dp.parse_flows(text) == dp.FlowCount(flows=2, packets=2)
    tc = dp.parse_tc(ovs_recorded.tc_filters("ens1f0_1", 1, refused=2))
    assert tc == dp.TcCount(in_hw=2, not_in_hw=2, skip_sw=0)
    assert dp.parse_tc("not json") is None
    assert dp.parse_tc("") == dp.TcCount(0, 0, 0)
    features = dp.parse_features(ovs_recorded.features("ens1f0", False))
    assert features["hw-tc-offload"] is False and features["esp-hw-offload"] is False


def test_snapshot_carries_the_recorded_ovs_answers(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from cyborg_smartnic.discovery.snapshot import unpack

    root, config = _host(tmp_path, healthy=False)
    archive = tmp_path / "snap.tar.gz"
    assert main(["snapshot", "-o", str(archive), "--sysfs-root", root]) == 0
    capsys.readouterr()
    unpacked = unpack(archive, tmp_path / "unpacked")
    for rel in ("ovs/ovsdb.json", "tc/filter-show-ens1f0_1-ingress.json",
                "ethtool/features-ens1f0_1.txt",
                "ovs/dpctl-dump-flows-system_ovs-system-offloaded.txt"):
        assert (unpacked / rel).read_bytes() == (Path(root) / rel).read_bytes(), rel
    _, original = _doctor(root, config, capsys)
    _, replayed = _doctor(str(unpacked), config, capsys)
    ovs_checks = [k for k in original if k.startswith(("ovs", "tc ", "hw-tc"))]
    assert [original[k] for k in ovs_checks] == [replayed[k] for k in ovs_checks]
