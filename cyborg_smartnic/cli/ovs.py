"""Open vSwitch options of the host commands and ``host ovs-cost``.

``host plan|apply|doctor`` read the running OVS live when they read the running host (root
``/``) or when ``--ovs-rundir`` names a daemon's run directory; for a recorded tree they read
what the snapshot recorded (``ovs/``). ``host ovs-cost`` measures what ovs-vswitchd costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.errors import SmartNicError
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
    """``host doctor``'s offload checks (when OVS is configured or offloading) and XDP
    checks (when a profile given with --profiles asks for XDP)."""
    return [*offload_checks(args, root, config, host), *xdp_checks(args, root, host)]


def offload_checks(args: argparse.Namespace, root: str, config: HostConfig | None,
                   host: Host) -> list[Check]:
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


def xdp_checks(args: argparse.Namespace, root: str, host: Host) -> list[Check]:
    paths = getattr(args, "profiles", None) or []
    if not paths:
        return []
    from cyborg_smartnic.host.ovs import xdp  # noqa: PLC0415
    from cyborg_smartnic.profiles.compiler import compile_all  # noqa: PLC0415
    from cyborg_smartnic.profiles.loader import load_profiles  # noqa: PLC0415

    requirements = [c.host for c in compile_all(load_profiles(paths))]
    if not any(g.xdp for r in requirements for g in r.groups):
        return []
    return [xdp.kernel_check(root, wanted=True), *xdp.driver_checks(requirements, host)]


# --------------------------------------------------------------------------- ovs-cost
class OvsCostError(SmartNicError):
    msg_fmt = "%(reason)s"


def register(subparsers: Any) -> None:
    """``host ovs-cost``: registered by cli/host.py next to plan/apply/doctor."""
    parser = subparsers.add_parser(
        "ovs-cost", help="measure the CPU cores ovs-vswitchd uses and whether a SmartNIC pays",
        description="Sample ovs-vswitchd's threads (/proc) and datapaths (ovs-appctl) over "
                    "an interval: cores per thread class (PMD, handler, revalidator, main), "
                    "flows, packets per second and the offloaded share; then the verdict by "
                    "the rule of thumb (more than 4 cores for OVS: a SmartNIC pays).")
    common.add_host_arguments(parser, example_host=True)
    common.add_format_argument(parser, choices=("table", "json"))
    add_ovs_arguments(parser)
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="how long to measure (default 5)")
    parser.add_argument("--prometheus", metavar="FILE",
                        help="also write Prometheus text format (per-PF/VF capacity and use, "
                             "offload counters, OVS cores) to FILE ('-': stdout instead of "
                             "the report), e.g. for node_exporter's textfile collector")
    parser.set_defaults(func=common.with_example_host(ovs_cost_command))


def ovs_cost_command(args: argparse.Namespace) -> int:
    from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf  # noqa: PLC0415
    from cyborg_smartnic.host import inuse  # noqa: PLC0415
    from cyborg_smartnic.host.ovs import cost as ovs_cost  # noqa: PLC0415
    from cyborg_smartnic.host.ovs import metrics  # noqa: PLC0415

    if not 0.1 <= args.interval <= 3600:
        raise OvsCostError(reason=f"--interval {args.interval} is outside 0.1-3600 seconds")
    conf = common.load_config(args)
    root = str(conf.smartnic.sysfs_root)
    paths = ovs_paths(args, root)
    if paths is None:
        raise OvsCostError(reason="ovs-cost measures a running ovs-vswitchd: run it on the "
                                  "host, or name the daemon's run directory with --ovs-rundir")
    proc = st.vswitchd_from_pidfile(paths.vswitchd_pidfile)
    if proc is None:
        raise OvsCostError(reason=f"ovs-vswitchd is not running (no live process in "
                                  f"{paths.vswitchd_pidfile})")
    live = dp.LiveDatapath(paths.vswitchd_ctl(proc.pid))

    def split(datapath: str) -> tuple[int, int] | None:
        counts = [live.dump_flows(datapath, kind) for kind in dp.FLOW_TYPES]
        if any(text is None for text in counts):
            return None
        hw, sw = (dp.parse_flows(text or "") for text in counts)
        return hw.flows, sw.flows

    try:
        result = ovs_cost.measure(proc.pid, args.interval, dpctl_show=live.show,
                                  offloaded=split)
    except ProcessLookupError as exc:
        raise OvsCostError(reason=f"ovs-vswitchd (pid {proc.pid}) exited while measuring"
                           ) from exc
    if args.prometheus:
        host = scan(root, scan_options_from_conf(conf))
        state, _ = read_ovs(args, root)
        devices = ovs_doctor.devices(None, state, host)
        readings = dp.read(live, netdev_source(root), devices)
        text = metrics.render(host, inuse.detect(root, host), result, readings)
        if args.prometheus == "-":
            sys.stdout.write(text.decode())
            return 0
        _write_atomically(args.prometheus, text)
    common.show(args, result.to_dict(), lambda: cost_table(result))
    return 0


def cost_table(result: Any) -> str:
    rows = [[kind, result.threads.get(kind, 0), f"{result.cores.get(kind, 0.0):.2f}"]
            for kind in ("pmd", "handler", "revalidator", "main", "other")]
    text = common.render_table(("threads", "count", "cores"), rows)
    text += f"\ntotal: {result.total:.2f} core(s) over {result.interval:.1f} s (pid {result.pid})"
    if result.datapaths:
        text += "\n" + common.render_table(
            ("datapath", "flows", "packets/s", "offloaded flows", "software flows"),
            [[d.name, d.flows, f"{d.packets_per_second:.1f}",
              "?" if d.offloaded_flows is None else d.offloaded_flows,
              "?" if d.software_flows is None else d.software_flows]
             for d in result.datapaths])
    return text + f"\n{result.verdict()}"


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".prom-", delete=False) as out:
            out.write(data)
        os.chmod(out.name, 0o644)
        os.replace(out.name, path)
    except OSError as exc:
        raise OvsCostError(reason=f"{path}: {exc.strerror or exc}") from exc
