"""host.yaml's ``ovs:`` section against a real ovsdb-server and ovs-vswitchd: read, plan,
apply through the privsep entry points, restart, and plan again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.host.apply import Executor
from cyborg_smartnic.host.config import HostConfig, load_host_config
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.ovs import ovsdb
from cyborg_smartnic.host.ovs import privileged as ovs_privileged
from cyborg_smartnic.host.ovs.apply import OvsRunner
from cyborg_smartnic.host.ovs.plan import OvsInput, not_in_effect
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.privileged import context
from cyborg_smartnic.host.steps import MANUAL, RESTART_OVS, SET_ESWITCH_MODE, SET_OVS_CONFIG
from cyborg_smartnic.hostgen import build_scenario
from deploy.stacklib.private_ovs import PrivateOvs

HOST_YAML = """\
devices:
  - address: "0000:3b:00.0"
    eswitch_mode: switchdev
ovs:
  hw_offload: true
  tc_policy: skip_sw
  max_idle: 30000
  uplinks:
    - netdev: ens1f0
      bridge: br-phys
"""


@pytest.fixture
def host(tmp_path: Path) -> Host:
    build_scenario(tmp_path / "root", "cx6dx_switchdev")
    return scan(str(tmp_path / "root"), ScanOptions())


@pytest.fixture
def config(tmp_path: Path) -> HostConfig:
    path = tmp_path / "host.yaml"
    path.write_text(HOST_YAML)
    return load_host_config(path)


@pytest.fixture
def in_process() -> Iterator[None]:
    """Run the privsep entry points in this process (the daemon test is below)."""
    context.set_client_mode(False)
    try:
        yield
    finally:
        context.set_client_mode(True)


def test_read_state_sees_bridges_interfaces_and_the_daemon(ovs: PrivateOvs,
                                                           ovs_paths: ovsdb.OvsPaths) -> None:
    ovs.add_netdev_bridge("br-int")
    ovs.add_dummy_port("br-int", "ens1f0_0", 1, {"iface-id": "port-1"})
    ovs.vsctl("set", "Open_vSwitch", ".", "other_config:hw-offload=true")

    state = ovsdb.read_state(ovs_paths)

    bridge = state.bridge("br-int")
    assert bridge is not None and bridge.datapath_type == "netdev"
    rep = bridge.find("ens1f0_0")
    assert rep is not None and rep.neutron_port == "port-1" and rep.type == "dummy"
    assert state.other_config["hw-offload"] == "true"
    assert state.vswitchd is not None and state.vswitchd.pid == ovs.vswitchd_pid
    assert abs(state.vswitchd.started_at - time.time()) < 3600
    # the change was logged in the database file after the daemon started
    assert state.changed_at["hw-offload"] > state.vswitchd.started_at
    assert not_in_effect(state) == ["hw-offload"]


def test_unreachable_ovsdb_refuses_the_ovs_steps(tmp_path: Path, host: Host,
                                                 config: HostConfig) -> None:
    paths = ovsdb.OvsPaths(rundir=str(tmp_path / "nothing-here"))
    with pytest.raises(ovsdb.OvsUnavailable) as raised:
        ovsdb.read_state(paths)
    result = plan(config, host, InUse(), ovs=OvsInput(None, str(raised.value)))
    refused = [s for s in result.steps if s.refused]
    assert [s.kind for s in refused] == [SET_OVS_CONFIG]
    assert "nothing-here/db.sock" in str(refused[0].refused)


def test_plan_orders_switchdev_then_settings_then_restart(ovs: PrivateOvs,
                                                          ovs_paths: ovsdb.OvsPaths,
                                                          tmp_path: Path,
                                                          config: HostConfig) -> None:
    build_scenario(tmp_path / "legacy", "bluefield2")  # NIC mode, legacy eswitch
    legacy = scan(str(tmp_path / "legacy"), ScanOptions())
    yaml_text = HOST_YAML.replace("0000:3b:00.0", "0000:af:00.0").replace(
        "ens1f0", "ens5f0np0")
    (tmp_path / "bf.yaml").write_text(yaml_text)
    state = ovsdb.read_state(ovs_paths)

    result = plan(load_host_config(tmp_path / "bf.yaml"), legacy, InUse(),
                  ovs=OvsInput(state))

    kinds = [(s.kind, s.param) for s in result.steps]
    first_ovs = kinds.index((SET_OVS_CONFIG, "hw-offload"))
    assert (SET_ESWITCH_MODE, None) in kinds[:first_ovs]
    assert kinds[first_ovs:first_ovs + 4] == [
        (SET_OVS_CONFIG, "hw-offload"), (SET_OVS_CONFIG, "tc-policy"),
        (SET_OVS_CONFIG, "max-idle"), (MANUAL, None)]
    restart = result.steps[first_ovs + 3]
    assert restart.target == "ovs-vswitchd" and restart.disruptive
    assert "--restart-ovs" in restart.reason
    with_restart = plan(load_host_config(tmp_path / "bf.yaml"), legacy, InUse(),
                        ovs=OvsInput(state, restart=True))
    assert [s.kind for s in with_restart.actions][-1] == RESTART_OVS


def test_apply_writes_ovsdb_restarts_and_converges(ovs: PrivateOvs, ovs_paths: ovsdb.OvsPaths,
                                                   host: Host, config: HostConfig,
                                                   in_process: None) -> None:
    ovs.add_netdev_bridge("br-phys")
    ovs.add_dummy_port("br-phys", "ens1f0", 1)  # the uplink is there: no manual step
    before = ovs.vswitchd_pid
    previous = ovs_privileged.use_runner(lambda argv: ovs.restart_vswitchd())
    try:
        result = plan(config, host, InUse(), ovs=OvsInput(ovsdb.read_state(ovs_paths),
                                                          restart=True))
        assert [(s.kind, s.param) for s in result.steps] == [
            (SET_OVS_CONFIG, "hw-offload"), (SET_OVS_CONFIG, "tc-policy"),
            (SET_OVS_CONFIG, "max-idle"), (RESTART_OVS, None)]
        executor = Executor("/nonexistent", scan=lambda: host,
                            ovs=OvsRunner(ovs_paths, read=lambda: ovsdb.read_state(ovs_paths)))
        outcome = executor.apply(result)
    finally:
        ovs_privileged.use_runner(previous)
    assert outcome.ok, outcome.error
    assert ovsdb.read_other_config(ovs.connection) == {
        "hw-offload": "true", "tc-policy": "skip_sw", "max-idle": "30000"}
    assert ovs.vswitchd_pid != before
    after = ovsdb.read_state(ovs_paths)
    assert not not_in_effect(after)
    assert plan(config, host, InUse(), ovs=OvsInput(after, restart=True)).steps == ()


def test_failed_restart_rolls_the_settings_back(ovs: PrivateOvs, ovs_paths: ovsdb.OvsPaths,
                                                host: Host, config: HostConfig,
                                                in_process: None) -> None:
    ovs.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=20000")

    def broken(argv: list[str]) -> None:
        raise OSError(5, "systemctl restart openvswitch-switch.service: Job failed")

    previous = ovs_privileged.use_runner(broken)
    try:
        result = plan(config, host, InUse(), ovs=OvsInput(ovsdb.read_state(ovs_paths),
                                                          restart=True))
        outcome = Executor("/nonexistent", scan=lambda: host, ovs=OvsRunner(
            ovs_paths, read=lambda: ovsdb.read_state(ovs_paths))).apply(result)
    finally:
        ovs_privileged.use_runner(previous)
    assert outcome.failed is not None and outcome.failed.kind == RESTART_OVS
    assert "Job failed" in str(outcome.error)
    assert len([o for o in outcome.restored if o.changed]) == 3
    assert ovsdb.read_other_config(ovs.connection) == {"max-idle": "20000"}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("hw-offload", "yes", "not one of"),
    ("max-idle", 10, "outside 500-3600000"),
    ("max-idle", "1e9", "not a whole number"),
    ("other-key", "x", "not one this tool sets"),
    ("pmd-cpu-mask", "0x3", "not one this tool sets"),
])
def test_entry_point_refuses_values_outside_the_closed_set(ovs: PrivateOvs, key: str,
                                                           value: object, message: str,
                                                           in_process: None) -> None:
    with pytest.raises(ValueError, match=message):
        ovs_privileged.ovs_set_other_config(ovs.connection, key, value)  # type: ignore[arg-type]
    assert ovsdb.read_other_config(ovs.connection) == {}


@pytest.mark.parametrize("conn", ["tcp:127.0.0.1:6640", "unix:relative.sock",
                                  "unix:/tmp/../etc/passwd", "unix:/etc/passwd"])
def test_entry_point_refuses_other_connections(conn: str, in_process: None) -> None:
    with pytest.raises(ValueError):
        ovs_privileged.ovs_set_other_config(conn, "hw-offload", "true")


def test_restart_entry_point_only_knows_two_units(in_process: None) -> None:
    with pytest.raises(ValueError, match="not one of"):
        ovs_privileged.ovs_restart_vswitchd("sshd.service")


@pytest.mark.skipif(os.geteuid() != 0, reason="privsep-helper is started without sudo only "
                                              "as root")
def test_cli_apply_through_the_privsep_daemon(ovs: PrivateOvs, tmp_path: Path) -> None:
    """``host apply`` as an operator runs it: the real privsep daemon writes the real OVSDB;
    the restart stays a manual step, so the next plan still lists it."""
    build_scenario(tmp_path / "root", "cx6dx_switchdev")
    (tmp_path / "host.yaml").write_text(HOST_YAML)
    env = {k: v for k, v in os.environ.items() if k != "OS_CLOUD"}
    base = [sys.executable, "-m", "cyborg_smartnic.cli.main", "host"]
    where = ["--sysfs-root", str(tmp_path / "root"), "--ovs-rundir", str(ovs.rundir),
             "--ovs-db-file", str(ovs.db_file)]
    done = subprocess.run([*base, "apply", "--yes", *where, str(tmp_path / "host.yaml")],
                          check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Applied 3 step(s): 3 changed the host" in done.stdout
    assert "manual step left to you: ovs-vswitchd" in done.stdout
    assert ovsdb.read_other_config(ovs.connection) == {
        "hw-offload": "true", "tc-policy": "skip_sw", "max-idle": "30000"}
    again = subprocess.run([*base, "plan", "-f", "json", *where, str(tmp_path / "host.yaml")],
                           check=False, capture_output=True, text=True, env=env,
                          timeout=120)
    assert again.returncode == 0, again.stderr
    assert '"kind": "set_ovs_config"' not in again.stdout
    assert "set after the running daemon started" in again.stdout
