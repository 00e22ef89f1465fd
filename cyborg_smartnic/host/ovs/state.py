"""What Open vSwitch is running with: the model, its JSON form and where it comes from.

The model holds what the plan and the doctor need from OVSDB (``Open_vSwitch`` other_config,
bridges with their interfaces) plus two facts OVSDB does not hold: when ovs-vswitchd started
and when each other_config key last changed. The second comes from the database file, which
is a log of transactions each stamped with ``_date`` (ms since the epoch); a key that changed
after the daemon started is not in effect for settings OVS reads once (hw-offload, tc-policy).

A snapshot records the model as ``ovs/ovsdb.json`` (``state_to_dict``); ``read_recorded``
reads it back, so every command gives the same answer on a recorded host.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cyborg_smartnic.discovery.procfs import ProcReader, ProcUnreadable
from cyborg_smartnic.discovery.sysfs import open_regular

LOG = logging.getLogger(__name__)

RECORDED_FILE = "ovs/ovsdb.json"
DB_LOG_LIMIT = 64 << 20  # a conf.db larger than this is not read for change times
OFFLOAD_KEYS = ("hw-offload", "tc-policy", "max-idle")


@dataclass(frozen=True, slots=True)
class OvsInterface:
    name: str
    type: str = ""  # "" is a system netdev (a representor, an uplink); internal, patch...
    external_ids: Mapping[str, str] = field(default_factory=dict)
    ofport: int | None = None
    error: str | None = None

    @property
    def neutron_port(self) -> str | None:
        """The Neutron port id Nova/os-vif/OVN wrote (``iface-id``), if any."""
        return self.external_ids.get("iface-id")


@dataclass(frozen=True, slots=True)
class OvsBridge:
    name: str
    datapath_type: str = ""  # "" or "system": kernel datapath; "netdev": userspace
    interfaces: tuple[OvsInterface, ...] = ()

    def find(self, name: str) -> OvsInterface | None:
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True, slots=True)
class Vswitchd:
    """The running ovs-vswitchd: its PID and when it started (Unix time, seconds)."""

    pid: int
    started_at: float


@dataclass(frozen=True, slots=True)
class OvsState:
    other_config: Mapping[str, str] = field(default_factory=dict)
    bridges: tuple[OvsBridge, ...] = ()
    ovs_version: str | None = None
    vswitchd: Vswitchd | None = None
    changed_at: Mapping[str, float] = field(default_factory=dict)  # other_config key -> time
    source: str = ""  # "unix:/run/openvswitch/db.sock" or "recorded: <file>"

    def bridge(self, name: str) -> OvsBridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def bridge_of(self, interface: str) -> OvsBridge | None:
        return next((b for b in self.bridges if b.find(interface) is not None), None)


# ---------------------------------------------------------------------------- JSON form
def state_to_dict(state: OvsState) -> dict[str, Any]:
    return {
        "source": state.source,
        "ovs_version": state.ovs_version,
        "other_config": dict(sorted(state.other_config.items())),
        "changed_at": dict(sorted(state.changed_at.items())),
        "vswitchd": None if state.vswitchd is None else {
            "pid": state.vswitchd.pid, "started_at": state.vswitchd.started_at},
        "bridges": [{
            "name": b.name, "datapath_type": b.datapath_type,
            "interfaces": [{"name": i.name, "type": i.type,
                            "external_ids": dict(sorted(i.external_ids.items())),
                            "ofport": i.ofport, "error": i.error} for i in b.interfaces],
        } for b in state.bridges],
    }


def _strings(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): str(v) for k, v in raw.items() if isinstance(v, str | int | float)}


def state_from_dict(data: Mapping[str, Any], source: str) -> OvsState:
    """The inverse of ``state_to_dict``; tolerant: junk fields read as absent."""
    bridges = []
    for raw in data.get("bridges") or ():
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            continue
        interfaces = tuple(
            OvsInterface(name=i["name"], type=str(i.get("type") or ""),
                         external_ids=_strings(i.get("external_ids")),
                         ofport=i.get("ofport") if isinstance(i.get("ofport"), int) else None,
                         error=i.get("error") if isinstance(i.get("error"), str) else None)
            for i in raw.get("interfaces") or () if isinstance(i, dict)
            and isinstance(i.get("name"), str))
        bridges.append(OvsBridge(raw["name"], str(raw.get("datapath_type") or ""),
                                 tuple(sorted(interfaces, key=lambda i: i.name))))
    proc = data.get("vswitchd")
    vswitchd = None
    if isinstance(proc, dict) and isinstance(proc.get("pid"), int) and isinstance(
            proc.get("started_at"), int | float):
        vswitchd = Vswitchd(proc["pid"], float(proc["started_at"]))
    changed = data.get("changed_at")
    version = data.get("ovs_version")
    return OvsState(
        other_config=_strings(data.get("other_config")),
        bridges=tuple(sorted(bridges, key=lambda b: b.name)),
        ovs_version=version if isinstance(version, str) else None,
        vswitchd=vswitchd,
        changed_at={str(k): float(v) for k, v in changed.items()
                    if isinstance(v, int | float)} if isinstance(changed, dict) else {},
        source=source)


def read_recorded(root: str) -> OvsState | None:
    """``<root>/ovs/ovsdb.json``, or ``None`` when the host has no OVS recorded."""
    path = os.path.join(root, RECORDED_FILE)
    try:
        with open_regular(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        LOG.warning("ignoring recorded OVS state %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        LOG.warning("ignoring recorded OVS state %s: not a JSON object", path)
        return None
    return state_from_dict(data, f"recorded: {RECORDED_FILE}")


# ---------------------------------------------------------------------------- db log
def _records(data: bytes) -> Iterable[dict[str, Any]]:
    """The JSON records of an OVSDB standalone database file (``OVSDB JSON <len> <sha1>``
    header lines, each followed by ``len`` bytes of JSON). Stops at the first torn record."""
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:
            return
        header = data[offset:end].split()
        if len(header) != 4 or not header[2].isdigit():
            return
        length = int(header[2])
        body = data[end + 1:end + 1 + length]
        offset = end + 1 + length
        while offset < len(data) and data[offset:offset + 1] == b"\n":
            offset += 1
        try:
            record = json.loads(body)
        except ValueError:
            return
        if isinstance(record, dict):
            yield record


def change_times(data: bytes, keys: Iterable[str] = OFFLOAD_KEYS) -> dict[str, float]:
    """When each of ``keys`` of ``Open_vSwitch:other_config`` last changed (seconds).

    A transaction touching ``other_config`` carries the changed keys (a diff, or the whole
    map in an older or compacted file); a key present there changed at the record's
    ``_date``. After compaction the first record holds the whole map: its date is the
    compaction time, an upper bound, which is what "did the daemon start after it?" needs.
    """
    wanted = set(keys)
    found: dict[str, float] = {}
    for record in _records(data):
        date = record.get("_date")
        rows = record.get("Open_vSwitch")
        if not isinstance(date, int | float) or not isinstance(rows, dict):
            continue
        for row in rows.values():
            value = row.get("other_config") if isinstance(row, dict) else None
            if not (isinstance(value, list) and len(value) == 2 and value[0] == "map"):
                continue
            for pair in value[1]:
                if isinstance(pair, list) and pair and pair[0] in wanted:
                    found[pair[0]] = date / 1000.0
    return found


def read_change_times(db_file: str) -> dict[str, float]:
    """``change_times`` of a database file; empty (logged) when it cannot be read."""
    try:
        if os.path.getsize(db_file) > DB_LOG_LIMIT:
            LOG.warning("%s is larger than %d bytes: not reading change times", db_file,
                        DB_LOG_LIMIT)
            return {}
        with open(db_file, "rb") as stream:
            return change_times(stream.read())
    except OSError as exc:
        LOG.info("cannot read when OVS settings changed from %s: %s", db_file, exc)
        return {}


# ---------------------------------------------------------------------------- process
def process_start(pid: int, proc: ProcReader | None = None) -> float | None:
    """Unix time a process started, to the clock tick: ``starttime`` (ticks since boot,
    field 22 of ``/proc/<pid>/stat``) plus the boot time, taken as now minus
    ``/proc/uptime`` (``btime`` in ``/proc/stat`` is whole seconds: too coarse to tell a
    restart from a setting changed in the same second). ``None`` when either cannot be
    read. ``proc``: the host's /proc (default: this machine's)."""
    proc = proc or ProcReader("/")
    try:
        fields = proc.stat_fields(pid)
        uptime = proc.uptime()
    except ProcUnreadable:
        return None
    if fields is None or uptime is None:
        return None
    boot = time.time() - uptime
    try:
        ticks = int(fields[19])  # field 22 overall; the first two precede ")"
    except (IndexError, ValueError):
        return None
    return round(boot + ticks / os.sysconf("SC_CLK_TCK"), 2)


def read_pidfile(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as stream:
            text = stream.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def vswitchd_from_pidfile(pidfile: str, proc: ProcReader | None = None) -> Vswitchd | None:
    """The daemon named by its pidfile, if that process is alive."""
    pid = read_pidfile(pidfile)
    if pid is None:
        return None
    started = process_start(pid, proc)
    return None if started is None else Vswitchd(pid, started)
