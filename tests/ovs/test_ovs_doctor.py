"""``host doctor``'s offload checks against a real ovsdb-server and ovs-vswitchd.

OVSDB, the daemon's start time, the database file's change log and the datapath's flows are
live; the uplink and representors are dummy ports named like a ConnectX-6 Dx's netdevs, and
their tc filters and ethtool features are recorded answers
(cyborg_smartnic/hostgen/ovs_recorded.py): those need the NIC.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_scenario, ovs_recorded
from deploy.stacklib.private_ovs import PrivateOvs

HOST_YAML = """\
ovs:
  hw_offload: true
  uplinks:
    - netdev: ens1f0
      bridge: br-phys
"""
PACKET = ("in_port({port}),eth(src=fa:16:3e:00:00:0{a},dst=fa:16:3e:00:00:0{b}),"
          "eth_type(0x0800),ipv4(src=10.0.0.{a},dst=10.0.0.{b},proto=17,tos=0,ttl=64,"
          "frag=no),udp(src=4000,dst=5000)")


@pytest.fixture
def wired(ovs: PrivateOvs, tmp_path: Path) -> tuple[list[str], PrivateOvs]:
    root = tmp_path / "root"
    build_scenario(root, "cx6dx_switchdev")
    ovs_recorded.record_datapath(root, healthy=True, dpctl=False)
    (tmp_path / "host.yaml").write_text(HOST_YAML)
    ovs.add_netdev_bridge("br-phys")
    ovs.add_dummy_port("br-phys", "ens1f0", 1)
    ovs.add_netdev_bridge("br-int")
    for n, rep in enumerate(ovs_recorded.REPRESENTORS):
        ovs.add_dummy_port("br-int", rep, n + 1, {"iface-id": f"port-{n}"})
    args = ["host", "doctor", "-f", "json", "--sysfs-root", str(root), "--ovs-rundir",
            str(ovs.rundir), "--ovs-db-file", str(ovs.db_file), str(tmp_path / "host.yaml")]
    return args, ovs


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict]]:
    os.environ.pop("OS_CLOUD", None)
    code = main(args)
    return code, {r["check"]: r for r in json.loads(capsys.readouterr().out)["checks"]}


def test_offload_set_while_running_is_not_in_effect_until_restart(
        wired: tuple[list[str], PrivateOvs], capsys: pytest.CaptureFixture[str]) -> None:
    args, ovs = wired
    ovs.vsctl("set", "Open_vSwitch", ".", "other_config:hw-offload=true")
    code, checks = _run(args, capsys)
    assert code == 1
    check = checks["ovs hw-offload"]
    assert check["status"] == "fail" and "not in effect" in check["detail"]
    assert f"(pid {ovs.vswitchd_pid})" in check["detail"]

    ovs.restart_vswitchd()
    code, checks = _run(args, capsys)
    check = checks["ovs hw-offload"]
    assert check["status"] == "ok", check
    assert f"(pid {ovs.vswitchd_pid})" in check["detail"]
    assert checks["ovs uplink ens1f0"]["status"] == "ok"
    assert checks["ovs representors"]["detail"] == "2 on br-int: ens1f0_0, ens1f0_1"
    assert checks["tc ens1f0_0"]["status"] == "ok"  # recorded answer


def test_flows_of_the_userspace_datapath_are_counted_as_not_offloaded(
        wired: tuple[list[str], PrivateOvs], capsys: pytest.CaptureFixture[str]) -> None:
    args, ovs = wired
    ovs.vsctl("set", "Open_vSwitch", ".", "other_config:hw-offload=true")
    ovs.restart_vswitchd()
    for _ in range(3):
        ovs.send("ens1f0_0", PACKET.format(port=1, a=1, b=2))
    ovs.send("ens1f0_1", PACKET.format(port=2, a=2, b=1))
    live = ovs.appctl("dpctl/dump-flows", "netdev@ovs-netdev", "type=non-offloaded")
    flows = [line for line in live.splitlines() if "packets:" in line]
    assert flows, live

    code, checks = _run(args, capsys)
    check = checks["ovs datapath netdev@ovs-netdev"]
    assert code == 1 and check["status"] == "fail"
    packets = sum(int(line.split("packets:")[1].split(",")[0]) for line in flows)
    assert check["detail"] == (f"0 of {len(flows)} flow(s) offloaded (0%); packets: 0 in "
                               f"hardware, {packets} in software")
    assert "rte_flow" in check["remedy"]


def test_snapshot_of_a_live_host_records_ovsdb_and_the_datapath(
        wired: tuple[list[str], PrivateOvs], tmp_path: Path) -> None:
    from cyborg_smartnic.discovery.scan import ScanOptions, scan
    from cyborg_smartnic.host.ovs import snapshot as ovs_snapshot
    from cyborg_smartnic.host.ovs.ovsdb import OvsPaths
    from cyborg_smartnic.host.ovs.state import state_from_dict

    _, ovs = wired
    ovs.send("ens1f0_0", PACKET.format(port=1, a=1, b=2))
    host = scan(str(tmp_path / "root"), ScanOptions())
    files = ovs_snapshot.answers("/", host, OvsPaths(str(ovs.rundir), str(ovs.db_file)))
    state = state_from_dict(json.loads(files["ovs/ovsdb.json"]), "test")
    bridge = state.bridge("br-int")
    assert bridge is not None and bridge.find("ens1f0_1") is not None
    assert state.vswitchd is not None and state.vswitchd.pid == ovs.vswitchd_pid
    assert files["ovs/dpctl-dump-dps.txt"] == b"netdev@ovs-netdev\n"
    # the injected packet's upcall installed a real datapath flow
    assert b"packets:" in files["ovs/dpctl-dump-flows-netdev_ovs-netdev-non-offloaded.txt"]
    assert "ovs/dpctl-dump-flows-netdev_ovs-netdev-offloaded.txt" in files
