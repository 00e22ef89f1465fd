"""Open vSwitch options of the host commands and ``host ovs-cost``.

``host plan|apply|doctor`` read the running OVS live when they read the running host (root
``/``) or when ``--ovs-rundir`` names a daemon's run directory; for a recorded tree they read
what the snapshot recorded (``ovs/``). ``host ovs-cost`` measures what ovs-vswitchd costs.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host.config import HostConfig
from cyborg_smartnic.host.doctor import Check
from cyborg_smartnic.host.ovs import datapath as dp
from cyborg_smartnic.host.ovs import doctor as ovs_doctor
from cyborg_smartnic.host.ovs import ovsdb
from cyborg_smartnic.host.ovs import state as st
from cyborg_smartnic.host.ovs.plan import OvsInput

if TYPE_CHECKING:  # importing it starts oslo.privsep's eventlet import: only when applying
    from cyborg_smartnic.host.ovs.apply import OvsRunner


def add_ovs_arguments(parser: argparse.ArgumentParser, *, restart: bool = False) -> None:
    group = parser.add_argument_group("Open vSwitch")
    group.add_argument("--ovs-rundir", metavar="DIR",
                       help="run directory of the Open vSwitch to use live (db.sock, "
                            f"ovs-vswitchd.pid; default {ovsdb.DEFAULT_RUNDIR} when reading "
                            f"this host, the recorded ovs/ answers for --sysfs-root)")
    group.add_argument("--ovs-db-file", metavar="FILE", default=None,
                       help="OVSDB database file, read for when settings changed (default "
                            f"{ovsdb.DEFAULT_DB_FILE})")
    if restart:
        group.add_argument("--restart-ovs", action="store_true",
                           help="restart ovs-vswitchd when a setting needs it (disruptive: "
                                "the datapath is flushed); otherwise left to you")


def ovs_paths(args: argparse.Namespace, root: str) -> ovsdb.OvsPaths | None:
    """The live OVS to use, or ``None`` to read recorded answers under ``root``."""
    rundir = getattr(args, "ovs_rundir", None)
    if rundir is None and root.rstrip("/") != "":
        return None
    return ovsdb.OvsPaths(rundir=rundir or ovsdb.DEFAULT_RUNDIR,
                          db_file=getattr(args, "ovs_db_file", None) or ovsdb.DEFAULT_DB_FILE)


def read_ovs(args: argparse.Namespace, root: str) -> tuple[st.OvsState | None, str | None]:
    """(state, None), or (None, why it could not be read)."""
    paths = ovs_paths(args, root)
    if paths is None:
        state = st.read_recorded(root)
        return (state, None) if state is not None else (
            None, f"no Open vSwitch recorded under {root} ({st.RECORDED_FILE})")
    try:
        return ovsdb.read_state(paths), None
    except ovsdb.OvsUnavailable as exc:
        return None, str(exc)


def ovs_input(args: argparse.Namespace, root: str, config: HostConfig | None
              ) -> OvsInput | None:
    """What ``host plan`` needs about OVS, only when host.yaml has an ``ovs:`` section."""
    if config is None or config.ovs is None:
        return None
    state, why = read_ovs(args, root)
    return OvsInput(state, why, restart=bool(getattr(args, "restart_ovs", False)))


def ovs_runner(args: argparse.Namespace, root: str) -> OvsRunner | None:
    """The executor's OVS runner: live only (a recorded host is never written)."""
    from cyborg_smartnic.host.ovs.apply import OvsRunner  # noqa: PLC0415

    paths = ovs_paths(args, root)
    if paths is None:
        return None
    live = paths
    return OvsRunner(live, read=lambda: ovsdb.read_state(live))



def netdev_source(root: str) -> dp.NetdevSource:
    """tc and ethtool: live for the running host, else what the tree recorded."""
    return dp.LiveNetdevs() if root.rstrip("/") == "" else dp.Recorded(root)


def datapath_source(args: argparse.Namespace, root: str,
                    state: st.OvsState | None) -> dp.DatapathSource | None:
    """ovs-appctl: live against the daemon OVSDB came from, else the recorded answers."""
    paths = ovs_paths(args, root)
    if paths is None:
        return dp.Recorded(root)
    if state is None or state.vswitchd is None:
        return None
    return dp.LiveDatapath(paths.vswitchd_ctl(state.vswitchd.pid))


def doctor_checks(args: argparse.Namespace, root: str, config: HostConfig | None,
                  host: Host) -> list[Check]:
    """The offload checks for ``host doctor`` (none when OVS is neither configured nor
    offloading)."""
    ovs_config = config.ovs if config else None
    if ovs_config is None and ovs_paths(args, root) is None and not os.path.exists(
            os.path.join(root, st.RECORDED_FILE)):
        return []
    state, why = read_ovs(args, root)
    if not ovs_doctor.wants_checks(ovs_config, state):
        return []
    devices = ovs_doctor.devices(ovs_config, state, host)
    readings = dp.read(datapath_source(args, root, state), netdev_source(root), devices)
    return ovs_doctor.checks(ovs_config, state, why, host, readings)
