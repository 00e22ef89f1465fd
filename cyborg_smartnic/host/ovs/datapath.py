"""What the datapath, tc and ethtool say about offload: live commands or recorded answers.

Live, each question is one read-only command with a fixed argv (no shell):
``ovs-appctl -t <ctl> dpctl/dump-dps``, ``... dpctl/dump-flows <dp> type=offloaded`` (and
``type=non-offloaded``), ``tc -j filter show dev <netdev> ingress`` and ``ethtool -k
<netdev>`` (sysfs has no file for ``hw-tc-offload``). Recorded, the same output is read from
files under the host's root, in the layout ``cyborg-smartnic snapshot`` writes
(``RECORDED``). The parsers are pure functions shared by both. A command that is missing,
fails or prints junk gives ``None``: the doctor says "cannot tell", never guesses.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cyborg_smartnic.discovery.devlink import run_tool
from cyborg_smartnic.discovery.sysfs import open_regular

LOG = logging.getLogger(__name__)

OFFLOADED = "offloaded"
NON_OFFLOADED = "non-offloaded"
FLOW_TYPES = (OFFLOADED, NON_OFFLOADED)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NETDEV = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
_PACKETS = re.compile(r"(?:^|[ ,])packets:(\d+)")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("._") or "_"


class RECORDED:
    """Where each answer is recorded, relative to the host's root."""

    @staticmethod
    def dump_dps() -> str:
        return "ovs/dpctl-dump-dps.txt"

    @staticmethod
    def dump_flows(datapath: str, kind: str) -> str:
        return f"ovs/dpctl-dump-flows-{_safe(datapath)}-{kind}.txt"

    @staticmethod
    def tc_filters(netdev: str) -> str:
        return f"tc/filter-show-{_safe(netdev)}-ingress.json"

    @staticmethod
    def features(netdev: str) -> str:
        return f"ethtool/features-{_safe(netdev)}.txt"


# ---------------------------------------------------------------------------- parsers
@dataclass(frozen=True, slots=True)
class FlowCount:
    flows: int
    packets: int


@dataclass(frozen=True, slots=True)
class TcCount:
    """Flower filters on a netdev's ingress: in hardware, refused by it, and how many were
    inserted with ``skip_sw`` (hardware only)."""

    in_hw: int
    not_in_hw: int
    skip_sw: int

    @property
    def total(self) -> int:
        return self.in_hw + self.not_in_hw


def parse_dps(text: str) -> tuple[str, ...]:
    """``dpctl/dump-dps``: one ``type@name`` per line."""
    return tuple(line.strip() for line in text.splitlines()
                 if re.fullmatch(r"[a-z]+@[A-Za-z0-9_.-]+", line.strip()))


def parse_flows(text: str) -> FlowCount:
    """``dpctl/dump-flows``: flows are the lines with ``packets:``; "flow-dump from ..."
    headers (one per PMD or the main thread) are not flows."""
    flows = packets = 0
    for line in text.splitlines():
        match = _PACKETS.search(line)
        if match and not line.startswith("flow-dump from"):
            flows += 1
            packets += int(match[1])
    return FlowCount(flows, packets)


def parse_tc(text: str) -> TcCount | None:
    """``tc -j filter show dev X ingress``: count flower filters by their hardware flags."""
    try:
        data = json.loads(text) if text.strip() else []
    except ValueError:
        LOG.warning("ignoring tc output: not JSON")
        return None
    if not isinstance(data, list):
        return None
    in_hw = not_in_hw = skip_sw = 0
    for entry in data:
        options = entry.get("options") if isinstance(entry, dict) else None
        if not isinstance(options, dict):
            continue  # the per-chain/pref header entries carry no options
        if options.get("in_hw") is True or options.get("in_hw_count", 0):
            in_hw += 1
        elif options.get("not_in_hw") is True:
            not_in_hw += 1
        else:
            continue
        if options.get("skip_sw") is True:
            skip_sw += 1
    return TcCount(in_hw, not_in_hw, skip_sw)


def parse_features(text: str) -> dict[str, bool]:
    """``ethtool -k X``: ``feature: on|off [fixed]`` -> {feature: on}."""
    found: dict[str, bool] = {}
    for line in text.splitlines():
        name, sep, rest = line.strip().partition(":")
        words = rest.split()
        if sep and words and words[0] in ("on", "off"):
            found[name.strip()] = words[0] == "on"
    return found


# ---------------------------------------------------------------------------- sources
class DatapathSource(Protocol):
    def dump_dps(self) -> str | None: ...

    def dump_flows(self, datapath: str, kind: str) -> str | None: ...


class NetdevSource(Protocol):
    def tc_filters(self, netdev: str) -> str | None: ...

    def features(self, netdev: str) -> str | None: ...


Runner = Callable[[list[str]], str | None]


class Recorded:
    """Answers recorded under ``root`` (a snapshot or a generated tree)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _text(self, relative: str) -> str | None:
        try:
            with open_regular(os.path.join(self.root, relative), encoding="utf-8",
                              errors="replace") as stream:
                return stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            LOG.warning("ignoring recorded answer %s: %s", relative, exc)
            return None

    def dump_dps(self) -> str | None:
        return self._text(RECORDED.dump_dps())

    def dump_flows(self, datapath: str, kind: str) -> str | None:
        return self._text(RECORDED.dump_flows(datapath, kind))

    def tc_filters(self, netdev: str) -> str | None:
        return self._text(RECORDED.tc_filters(netdev))

    def features(self, netdev: str) -> str | None:
        return self._text(RECORDED.features(netdev))


class LiveDatapath:
    """``ovs-appctl`` against one ovs-vswitchd's control socket."""

    def __init__(self, ctl: str, appctl: str | None = None, run: Runner = run_tool) -> None:
        self.ctl = ctl
        self.appctl = appctl or shutil.which("ovs-appctl")
        self.run = run

    def _ask(self, *args: str) -> str | None:
        if self.appctl is None:
            return None
        return self.run([self.appctl, "-t", self.ctl, *args])

    def dump_dps(self) -> str | None:
        return self._ask("dpctl/dump-dps")

    def show(self) -> str | None:
        """``dpctl/show``: lookups and flow counts of every datapath (ovs-cost)."""
        return self._ask("dpctl/show")

    def dump_flows(self, datapath: str, kind: str) -> str | None:
        if kind not in FLOW_TYPES or not re.fullmatch(r"[a-z]+@[A-Za-z0-9_.-]+", datapath):
            return None
        return self._ask("dpctl/dump-flows", datapath, f"type={kind}")


class LiveNetdevs:
    """``tc`` and ``ethtool`` of the running host (read-only queries)."""

    def __init__(self, run: Runner = run_tool) -> None:
        self.tc = shutil.which("tc")
        self.ethtool = shutil.which("ethtool")
        self.run = run

    def tc_filters(self, netdev: str) -> str | None:
        if self.tc is None or not _NETDEV.fullmatch(netdev):
            return None
        return self.run([self.tc, "-j", "filter", "show", "dev", netdev, "ingress"])

    def features(self, netdev: str) -> str | None:
        if self.ethtool is None or not _NETDEV.fullmatch(netdev):
            return None
        return self.run([self.ethtool, "-k", netdev])


# ---------------------------------------------------------------------------- readings
@dataclass(frozen=True, slots=True)
class Readings:
    """Everything the offload checks read besides OVSDB, already parsed."""

    flows: Mapping[str, Mapping[str, FlowCount | None]]  # datapath -> type -> count
    tc: Mapping[str, TcCount | None]  # netdev -> filters
    features: Mapping[str, Mapping[str, bool] | None]  # netdev -> ethtool features
    datapaths_known: bool = True  # dump-dps answered


def read(datapath: DatapathSource | None, netdevs: NetdevSource,
         devices: tuple[str, ...]) -> Readings:
    """Ask every question once: flows per datapath and type, tc and features per device."""
    flows: dict[str, dict[str, FlowCount | None]] = {}
    listing = None
    if datapath is not None:
        listing = datapath.dump_dps()
        for dp in parse_dps(listing or ""):
            per_type: dict[str, FlowCount | None] = {}
            for kind in FLOW_TYPES:
                text = datapath.dump_flows(dp, kind)
                per_type[kind] = None if text is None else parse_flows(text)
            flows[dp] = per_type
    tc: dict[str, TcCount | None] = {}
    features: dict[str, Mapping[str, bool] | None] = {}
    for device in devices:
        text = netdevs.tc_filters(device)
        tc[device] = None if text is None else parse_tc(text)
        text = netdevs.features(device)
        features[device] = None if text is None else parse_features(text)
    return Readings(flows, tc, features, datapaths_known=listing is not None)


def recorded_answers(datapath: DatapathSource | None, netdevs: NetdevSource,
                     devices: tuple[str, ...]) -> dict[str, bytes]:
    """The raw answers in the recorded layout (what a snapshot stores)."""
    out: dict[str, bytes] = {}
    listing = datapath.dump_dps() if datapath is not None else None
    if listing is not None and datapath is not None:
        out[RECORDED.dump_dps()] = listing.encode()
        for dp in parse_dps(listing):
            for kind in FLOW_TYPES:
                text = datapath.dump_flows(dp, kind)
                if text is not None:
                    out[RECORDED.dump_flows(dp, kind)] = text.encode()
    for device in devices:
        for rel, text in ((RECORDED.tc_filters(device), netdevs.tc_filters(device)),
                          (RECORDED.features(device), netdevs.features(device))):
            if text is not None:
                out[rel] = text.encode()
    return out


def as_dict(readings: Readings) -> dict[str, Any]:
    return {
        "flows": {dp: {k: None if c is None else {"flows": c.flows, "packets": c.packets}
                       for k, c in types.items()} for dp, types in readings.flows.items()},
        "tc": {d: None if c is None else {"in_hw": c.in_hw, "not_in_hw": c.not_in_hw,
                                          "skip_sw": c.skip_sw}
               for d, c in readings.tc.items()},
    }
