"""Follow a host's NIC topology through udev events, and say what changed in discovery's terms.

udev (kernel uevents over netlink) announces PCI functions appearing and going (hot plug,
``sriov_numvfs`` changes add/remove VFs and send a ``change`` on the PF), driver ``bind``/
``unbind``, and netdevs added, removed or renamed (``move``). Events arrive in bursts (a VF
count change is dozens of them), so ``watch`` waits until ``debounce`` seconds pass without a
relevant one, rescans once and reports the difference between the exported discover dicts
(``diff_hosts``, pure). A rescan that changes nothing reports nothing.

The event source is a small protocol: ``UdevEventSource`` wraps a pyudev netlink monitor on
the running host; tests feed synthetic events. Nothing here prints: ``watch`` hands each
change line to a callback.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cyborg_smartnic.errors import SmartNicError

LOG = logging.getLogger(__name__)

SUBSYSTEMS = ("pci", "net")
RELEVANT_ACTIONS: Mapping[str, frozenset[str]] = {
    "pci": frozenset({"add", "remove", "bind", "unbind", "change"}),
    "net": frozenset({"add", "remove", "move", "change"}),
}
UDEV_CONTROL = "/run/udev/control"  # exists while systemd-udevd runs
DEFAULT_DEBOUNCE = 1.0
DEFAULT_MAX_DELAY = 30.0

HostDict = dict[str, Any]


class WatchUnavailable(SmartNicError):
    msg_fmt = "discover --watch cannot listen to udev events: %(reason)s"


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """One uevent, reduced to what decides a rescan and what the change line names."""

    action: str
    subsystem: str
    name: str  # PCI address or interface name
    old_name: str | None = None  # net ``move``: the previous interface name

    @property
    def relevant(self) -> bool:
        return self.action in RELEVANT_ACTIONS.get(self.subsystem, frozenset())

    def labels(self) -> list[str]:
        """``pci/0000:3b:00.2``, ``net/ens1f0v2`` (both names for a rename)."""
        names = [self.name] if self.old_name is None else [self.old_name, self.name]
        return [f"{self.subsystem}/{name}" for name in names]


class EventSource(Protocol):
    """Where events come from: ``None`` means nothing (relevant or not) within ``timeout``
    seconds, or a message the source filtered out; ``timeout=None`` blocks."""

    def next_event(self, timeout: float | None) -> DeviceEvent | None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- udev
def _is_live_root(root: str) -> bool:
    return os.path.realpath(root or "/") == "/"


class UdevEventSource:
    """pyudev netlink monitor on ``pci`` and ``net``. Listens to udev's own events while
    systemd-udevd runs (devices are then configured), else to the kernel's directly
    (containers without udevd, where libudev would silently hear nothing)."""

    def __init__(self, monitor: Any, source: str) -> None:
        self._monitor: Any = monitor
        self.source = source

    @classmethod
    def open(cls, root: str) -> UdevEventSource:
        if not _is_live_root(root):
            raise WatchUnavailable(reason=f"events describe the running host, not the tree "
                                          f"under {root}: watch needs the live host "
                                          "(drop --sysfs-root)")
        try:
            import pyudev  # noqa: PLC0415 - only watching needs libudev

            context = pyudev.Context()
        except ImportError as exc:
            raise WatchUnavailable(reason=f"pyudev or libudev is not available ({exc})") \
                from exc
        source = "udev" if os.path.exists(UDEV_CONTROL) else "kernel"
        try:
            monitor = pyudev.Monitor.from_netlink(context, source=source)
            for subsystem in SUBSYSTEMS:
                monitor.filter_by(subsystem)
            monitor.start()
        except OSError as exc:
            raise WatchUnavailable(reason=f"cannot open the netlink socket ({exc})") from exc
        LOG.info("watching %s events for %s", source, ", ".join(SUBSYSTEMS))
        return cls(monitor, source)

    def next_event(self, timeout: float | None) -> DeviceEvent | None:
        device = self._monitor.poll(timeout)
        if device is None:
            return None
        old = device.get("DEVPATH_OLD")
        return DeviceEvent(action=device.action or "", subsystem=device.subsystem or "",
                           name=device.sys_name,
                           old_name=old.rsplit("/", 1)[-1] if old else None)

    def close(self) -> None:
        self._monitor = None  # pyudev closes the socket when the monitor is released


# ---------------------------------------------------------------------------- diff
def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Dotted leaf fields of nested dicts; lists are compared whole."""
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def _functions(host: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Address -> flattened fields, for every PF (without its VF list) and VF."""
    out: dict[str, dict[str, Any]] = {}
    for pf in host.get("physical_functions", ()):
        fields: dict[str, Any] = {}
        _flatten("", {k: v for k, v in pf.items() if k != "virtual_functions"}, fields)
        out[pf["address"]] = fields
        for vf in pf.get("virtual_functions", ()):
            vf_fields: dict[str, Any] = {}
            _flatten("", vf, vf_fields)
            out[vf["address"]] = vf_fields
    return out


def _skipped(host: Mapping[str, Any]) -> dict[str, str]:
    reasons: dict[str, list[str]] = {}
    for row in host.get("skipped", ()):
        reasons.setdefault(row["address"], []).append(row["reason"])
    return {address: "; ".join(sorted(texts)) for address, texts in reasons.items()}


def _pool_key(pool: Mapping[str, Any]) -> str:
    node = pool.get("numa_node")
    return f"{'global' if node is None else f'node{node}'}.{pool.get('size_kb')}kB"


def _host_fields(host: Mapping[str, Any]) -> dict[str, Any]:
    """Host-wide fields; hugepage pools keyed ``node0.2048kB`` / ``global.2048kB``."""
    rest: dict[str, Any] = {}
    for key, value in host.items():
        if key in ("physical_functions", "skipped"):
            continue
        if key == "hugepages" and isinstance(value, list):
            rest[key] = {_pool_key(pool): {k: v for k, v in pool.items()
                                           if k not in ("numa_node", "size_kb")}
                         for pool in value}
        else:
            rest[key] = value
    fields: dict[str, Any] = {}
    _flatten("", rest, fields)
    return fields


def _changes(address: str | None, old: Mapping[str, Any],
             new: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"address": address, "field": field, "old": old.get(field), "new": new.get(field)}
            for field in sorted(set(old) | set(new)) if old.get(field) != new.get(field)]


def diff_hosts(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What changed between two ``host_to_dict`` exports.

    ``added``/``removed``: addresses of PFs and VFs that entered or left the model.
    ``changed``: ``{"address", "field", "old", "new"}`` for each differing field of a PF or
    VF present in both (dotted names such as ``sriov.num_vfs``), for each device whose
    ``skipped`` reason appeared, went or changed, and host-wide fields (``address`` null).
    """
    before, after = _functions(old), _functions(new)
    changed = _changes(None, _host_fields(old), _host_fields(new))
    details: list[dict[str, Any]] = []
    for address in sorted(set(before) & set(after)):
        details += _changes(address, before[address], after[address])
    skipped_old, skipped_new = _skipped(old), _skipped(new)
    for address in sorted(set(skipped_old) | set(skipped_new)):
        details += _changes(address, {"skipped": skipped_old.get(address)},
                            {"skipped": skipped_new.get(address)})
    details.sort(key=lambda c: (c["address"], c["field"]))
    return {"added": sorted(set(after) - set(before)),
            "removed": sorted(set(before) - set(after)),
            "changed": changed + details}


def is_empty(diff: Mapping[str, Any]) -> bool:
    return not (diff["added"] or diff["removed"] or diff["changed"])


def change_line(events: list[DeviceEvent], diff: Mapping[str, Any]) -> dict[str, Any]:
    """``{"event", "devices", "diff"}``: the actions seen in the burst (comma-joined, sorted),
    the devices they named and the diff."""
    return {"event": ",".join(sorted({e.action for e in events})),
            "devices": sorted({label for e in events for label in e.labels()}),
            "diff": dict(diff)}


# ---------------------------------------------------------------------------- loop
@dataclass(frozen=True)
class WatchLimits:
    """``debounce``: quiet seconds that end a burst. ``max_delay``: a never-ending burst is
    still reported after this long. ``watch_for``/``max_changes``: stop after that many
    seconds / change lines (``None``: never)."""

    debounce: float = DEFAULT_DEBOUNCE
    max_delay: float = DEFAULT_MAX_DELAY
    watch_for: float | None = None
    max_changes: int | None = None


class _Clock:
    def __init__(self, now: Callable[[], float], deadline: float | None) -> None:
        self.now = now
        self.deadline = deadline

    def left(self, until: float | None = None) -> float | None:
        """Seconds to the earlier of ``until`` and the deadline (``None``: unbounded)."""
        ends = [t for t in (until, self.deadline) if t is not None]
        return None if not ends else min(ends) - self.now()


def _first_relevant(source: EventSource, clock: _Clock) -> DeviceEvent | None:
    while True:
        left = clock.left()
        if left is not None and left <= 0:
            return None
        event = source.next_event(left)
        if event is not None and event.relevant:
            return event
        if event is not None:
            LOG.debug("ignoring %s %s/%s", event.action, event.subsystem, event.name)


def _burst(source: EventSource, first: DeviceEvent, limits: WatchLimits,
           clock: _Clock) -> list[DeviceEvent]:
    """``first`` and the relevant events that follow it until ``debounce`` quiet seconds
    (or ``max_delay`` in all, or the deadline)."""
    events = [first]
    hard_end = clock.now() + limits.max_delay
    quiet_end = clock.now() + limits.debounce
    while True:
        left = clock.left(min(quiet_end, hard_end))
        if left is None or left <= 0:
            return events
        event = source.next_event(left)
        if event is not None and event.relevant:
            events.append(event)
            quiet_end = clock.now() + limits.debounce


def watch(source: EventSource, rescan: Callable[[], HostDict],
          emit: Callable[[dict[str, Any]], None], limits: WatchLimits = WatchLimits(),
          now: Callable[[], float] = time.monotonic) -> int:
    """Scan once, then rescan after each burst of relevant events and ``emit`` one change
    line when the export changed. Returns the number of lines emitted."""
    clock = _Clock(now, None if limits.watch_for is None else now() + limits.watch_for)
    current = rescan()
    emitted = 0
    while limits.max_changes is None or emitted < limits.max_changes:
        first = _first_relevant(source, clock)
        if first is None:
            break
        events = _burst(source, first, limits, clock)
        LOG.debug("rescanning after %d events", len(events))
        latest = rescan()
        diff = diff_hosts(current, latest)
        current = latest
        if not is_empty(diff):
            emit(change_line(events, diff))
            emitted += 1
    return emitted
