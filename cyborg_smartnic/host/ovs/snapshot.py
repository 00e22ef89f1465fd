"""The Open vSwitch answers a snapshot records, so ``host plan|doctor`` work on it.

On the running host: OVSDB's state as ``ovs/ovsdb.json`` (when Open vSwitch runs), the
datapath dumps, and ``tc``/``ethtool`` answers for every PF netdev and representor, in the
layout ``datapath.RECORDED`` reads back. On a recorded tree: the recorded answers it holds
are copied as they are.
"""

from __future__ import annotations

import json
import logging
import os

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host.ovs import datapath as dp
from cyborg_smartnic.host.ovs import ovsdb
from cyborg_smartnic.host.ovs import state as st

LOG = logging.getLogger(__name__)

RECORDED_DIRS = ("ovs", "tc", "ethtool")
MAX_BYTES = 4 << 20


def netdevs(host: Host) -> tuple[str, ...]:
    """PF netdevs (uplinks in switchdev mode) and their representors."""
    names: list[str] = []
    for pf in host.physical_functions:
        names += [pf.netdev] if pf.netdev else []
        names += list(pf.representors)
    return tuple(dict.fromkeys(names))


def answers(root: str, host: Host, paths: ovsdb.OvsPaths | None = None) -> dict[str, bytes]:
    """Relative path -> content, for ``discovery.snapshot.take(extra=...)``."""
    if root.rstrip("/") != "":
        return _copy_recorded(root)
    live = paths or ovsdb.OvsPaths()
    out: dict[str, bytes] = {}
    datapath: dp.DatapathSource | None = None
    try:
        state = ovsdb.read_state(live)
    except ovsdb.OvsUnavailable as exc:
        LOG.info("snapshot: no Open vSwitch recorded: %s", exc)
        state = None
    if state is not None:
        out[st.RECORDED_FILE] = (json.dumps(st.state_to_dict(state), indent=2) + "\n").encode()
        if state.vswitchd is not None:
            datapath = dp.LiveDatapath(live.vswitchd_ctl(state.vswitchd.pid))
    out.update(dp.recorded_answers(datapath, dp.LiveNetdevs(), netdevs(host)))
    return out


def _copy_recorded(root: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for top in RECORDED_DIRS:
        base = os.path.join(root, top)
        try:
            names = sorted(os.listdir(base))
        except OSError:
            continue
        for name in names:
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                if os.path.getsize(path) > MAX_BYTES:
                    LOG.warning("snapshot: leaving out %s: larger than %d bytes", path,
                                MAX_BYTES)
                    continue
                with open(path, "rb") as stream:
                    out[f"{top}/{name}"] = stream.read()
            except OSError as exc:
                LOG.warning("snapshot: leaving out %s: %s", path, exc)
    return out
