#!/usr/bin/env python3
"""The example host's Open vSwitch offload, against a real (private) Open vSwitch.

    python deploy/ovs_demo.py        # from a source checkout, as root (privsep daemon)

What runs for real: ovsdb-server and ovs-vswitchd (Debian's openvswitch-switch, userspace
datapath, own database, sockets and directory under /tmp, stopped by PID at the end), the
cyborg-smartnic CLI, its privsep daemon writing OVSDB through ovsdbapp, ovs-appctl.
Stand-ins, named as such: the example host is the bundled recorded tree; its uplink and VF
representors are OVS dummy ports named like the ConnectX-6 Dx's netdevs, plugged with the
Neutron port ids os-vif would set; tc filters and ethtool features are recorded answers
(cyborg_smartnic/hostgen/ovs_recorded.py: they need the NIC); "systemctl restart" is a restart
of the private ovs-vswitchd.

Steps: ``host plan`` of deploy/host.example.yaml plus an ``ovs:`` section (the OVS steps come
after the eswitch steps, the restart is flagged), ``host apply`` of the ``ovs:`` section,
``host doctor``'s offload checks before and after the restart, ``host ovs-cost``.
Exit 0 when every step behaved as expected.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cyborg_smartnic.discovery.example import (  # noqa: E402
    example_conf_path,
    unpack_example_host,
)
from cyborg_smartnic.hostgen import ovs_recorded  # noqa: E402
from deploy.stacklib.private_ovs import PrivateOvs, available, private_ovs  # noqa: E402

HOST_EXAMPLE = REPO / "deploy" / "host.example.yaml"
PACKET = ("in_port({port}),eth(src=fa:16:3e:00:00:0{a},dst=fa:16:3e:00:00:0{b}),"
          "eth_type(0x0800),ipv4(src=10.0.0.{a},dst=10.0.0.{b},proto=17,tos=0,ttl=64,"
          "frag=no),udp(src=4000,dst=5000)")
OVS_SECTION = """\
# Open vSwitch hardware offload on the ConnectX-6 Dx (Neutron OVS agent, br-int).
ovs:
  hw_offload: true
  tc_policy: none
  max_idle: 30000
  uplinks:
    - netdev: ens1f0
      bridge: br-phys
"""


def cli(out: TextIO, *args: str, expect: tuple[int, ...] = (0,)) -> str:
    """Run the real CLI as an operator would, echo it, check its exit code."""
    argv = [sys.executable, "-m", "cyborg_smartnic.cli.main", *args]
    shown = " ".join(["cyborg-smartnic", *args])
    print(f"$ {shown}", file=out, flush=True)
    env = {k: v for k, v in os.environ.items() if k != "OS_CLOUD"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    print(done.stdout.rstrip(), file=out)
    for line in done.stderr.splitlines():
        if "error" in line or "FAILED" in line:
            print(line, file=out)
    print(f"[exit {done.returncode}]\n", file=out, flush=True)
    if done.returncode not in expect:
        raise RuntimeError(f"{shown}: exit {done.returncode}: {done.stderr.strip()[-400:]}")
    return done.stdout


def wire_like_neutron(ovs: PrivateOvs) -> None:
    """Stand-in for Neutron's agent and os-vif: bridges, the uplink, two representors."""
    ovs.add_netdev_bridge("br-phys")
    ovs.add_dummy_port("br-phys", ovs_recorded.UPLINK, 1)
    ovs.add_netdev_bridge("br-int")
    for n, rep in enumerate(ovs_recorded.REPRESENTORS):
        ovs.add_dummy_port("br-int", rep, n + 1, {
            "iface-id": f"5f1c0e0{n}-2b1a-4c41-9e7e-0c5b1c7a8d1{n}",
            "attached-mac": f"fa:16:3e:00:00:{n + 1:02x}", "iface-status": "active"})


def run(out: TextIO = sys.stdout) -> int:
    missing = available()
    if missing:
        print(f"ovs demo: skipped: {missing}", file=out)
        return 1
    with tempfile.TemporaryDirectory(prefix="ovs-demo-") as tmp, private_ovs() as ovs:
        root = unpack_example_host(tmp)
        ovs_recorded.record_datapath(root, healthy=False, dpctl=False)
        full = Path(tmp) / "host.yaml"
        full.write_text(HOST_EXAMPLE.read_text() + OVS_SECTION)
        only_ovs = Path(tmp) / "host-ovs.yaml"
        only_ovs.write_text(OVS_SECTION)
        wire_like_neutron(ovs)
        where = ["--sysfs-root", str(root), "--config-file", str(example_conf_path()),
                 "--ovs-rundir", str(ovs.rundir), "--ovs-db-file", str(ovs.db_file)]
        print(f"# a private Open vSwitch runs in {ovs.rundir} (pid {ovs.vswitchd_pid})\n",
              file=out)
        plan = cli(out, "host", "plan", *where, str(full))
        if "set_ovs_config" not in plan or "ovs-vswitchd" not in plan:
            raise RuntimeError("the plan has no OVS steps")
        cli(out, "host", "apply", "--yes", *where, str(only_ovs))
        cli(out, "host", "doctor", *where, str(only_ovs), expect=(1,))
        print("# systemctl restart openvswitch-switch (stand-in: restart the private "
              "ovs-vswitchd)\n", file=out)
        ovs.restart_vswitchd()
        for n in range(3):  # traffic between the two guests' representors
            ovs.send(ovs_recorded.REPRESENTORS[n % 2], PACKET.format(
                port=n % 2 + 1, a=n % 2 + 1, b=2 - n % 2))
        doctor = cli(out, "host", "doctor", *where, str(only_ovs), expect=(1,))
        if "[ ok ] ovs hw-offload" not in doctor:
            raise RuntimeError("hw-offload is not in effect after the restart")
        cli(out, "host", "ovs-cost", "--interval", "1", *where)
    return 0


def main() -> int:
    try:
        return run()
    except RuntimeError as exc:
        print(f"ovs demo: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
