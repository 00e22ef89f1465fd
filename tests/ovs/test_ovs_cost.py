"""``host ovs-cost`` against the real ovs-vswitchd: its real threads in /proc, its real
datapath counters, while packets are injected into it."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_scenario
from deploy.stacklib.private_ovs import PrivateOvs

PACKET = ("in_port(1),eth(src=50:54:00:00:{a:02x}:{b:02x},dst=50:54:00:00:00:02),"
          "eth_type(0x0800),ipv4(src=10.0.0.1,dst=10.0.0.2,proto=6,tos=0,ttl=64,frag=no),"
          "tcp(src=1000,dst=80)")
BURST = 200  # packets per ovs-appctl call, each from a new MAC: a new flow, an upcall


@pytest.fixture
def busy(ovs: PrivateOvs, tmp_path: Path) -> tuple[PrivateOvs, Path]:
    build_scenario(tmp_path / "root", "cx6dx_switchdev")
    ovs.add_netdev_bridge("br-int")
    ovs.add_dummy_port("br-int", "p0", 1)
    ovs.add_dummy_port("br-int", "p1", 2)
    return ovs, tmp_path / "root"


def _traffic(ovs: PrivateOvs, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        ovs.appctl("netdev-dummy/receive", "p0", *(
            PACKET.format(a=(n + i) // 256 % 256, b=(n + i) % 256) for i in range(BURST)))
        n += BURST


def test_ovs_cost_measures_the_real_daemon(busy: tuple[PrivateOvs, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    ovs, root = busy
    stop = threading.Event()
    sender = threading.Thread(target=_traffic, args=(ovs, stop))
    sender.start()
    try:
        code = main(["host", "ovs-cost", "-f", "json", "--interval", "2", "--sysfs-root",
                     str(root), "--ovs-rundir", str(ovs.rundir)])
    finally:
        stop.set()
        sender.join()
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["pid"] == ovs.vswitchd_pid
    # the real daemon's threads: one handler and one revalidator on this 2-core machine
    live = {p.read_text().strip() for p in Path(f"/proc/{ovs.vswitchd_pid}/task").glob(
        "*/comm")}
    assert data["threads"]["handler"] == len([n for n in live if n.startswith("handler")]) >= 1
    assert data["threads"]["revalidator"] >= 1 and data["threads"]["pmd"] == 0
    assert data["total_cores"] > 0, "injecting packets costs the daemon CPU"
    assert data["total_cores"] == pytest.approx(sum(data["cores"].values()), abs=0.01)
    assert data["smartnic_pays"] is False  # the rule of thumb is > 4 cores
    (datapath,) = data["datapaths"]
    assert datapath["name"] == "netdev@ovs-netdev"
    assert datapath["packets_per_second"] > 0
    assert datapath["software_flows"] >= 1 and datapath["offloaded_flows"] == 0


def test_ovs_cost_writes_prometheus_text(busy: tuple[PrivateOvs, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ovs, root = busy
    target = tmp_path / "smartnic.prom"
    code = main(["host", "ovs-cost", "--interval", "0.2", "--sysfs-root", str(root),
                 "--ovs-rundir", str(ovs.rundir), "--prometheus", str(target)])
    assert code == 0
    text = target.read_text()
    assert 'cyborg_smartnic_pf_vfs_total{model="ConnectX-6 Dx",netdev="ens1f0",' \
           'pf="0000:3b:00.0"} 8.0' in text
    assert re.search(r'cyborg_smartnic_ovs_vswitchd_threads\{thread_class="revalidator"\} '
                     r'[1-9][0-9]*\.0', text), text
    assert "a SmartNIC does not pay" in capsys.readouterr().out
    assert oct(os.stat(target).st_mode & 0o777) == "0o644"


def test_ovs_cost_needs_a_running_daemon(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    build_scenario(tmp_path / "root", "cx6dx_switchdev")
    code = main(["host", "ovs-cost", "--sysfs-root", str(tmp_path / "root")])
    assert code == 1
    assert "ovs-cost measures a running ovs-vswitchd" in capsys.readouterr().err
    code = main(["host", "ovs-cost", "--sysfs-root", str(tmp_path / "root"), "--ovs-rundir",
                 str(tmp_path)])
    assert code == 1
    assert "ovs-vswitchd is not running" in capsys.readouterr().err
