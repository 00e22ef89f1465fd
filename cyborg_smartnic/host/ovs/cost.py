"""What ovs-vswitchd costs this host in CPU cores, and whether a SmartNIC would pay.

Two samples of ``/proc/<pid>/task/*/stat`` (utime + stime, in clock ticks) an interval apart
give each thread's cores in use; threads are grouped by name (``comm``): ``pmd-*`` (DPDK
poll-mode datapath threads, each a busy core), ``handler*`` (upcalls: first packets of new
flows), ``revalidator*`` (dump, age and update datapath flows), ``ovs-vswitchd`` (the main
thread: OVSDB, OpenFlow) and the rest. Datapath lookups (``dpctl/show``) over the same
interval give packets per second, and the flow dumps the offloaded share.

The verdict follows the rule of thumb this project started from: more than 4 cores for OVS
on a compute node is where moving the datapath to a SmartNIC pays. What offload gives back
is the datapath's own cost: the PMD cores (userspace datapath) and, for the kernel datapath,
the softirq time that is not in ovs-vswitchd's threads at all (not measured here). Handlers
and revalidators stay: they also set up and age offloaded flows.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic.discovery.procfs import ProcReader, ProcUnreadable

PMD = "pmd"
HANDLER = "handler"
REVALIDATOR = "revalidator"
MAIN = "main"
OTHER = "other"
CLASSES = (PMD, HANDLER, REVALIDATOR, MAIN, OTHER)
RULE_OF_THUMB_CORES = 4.0
_LOOKUPS = re.compile(r"lookups: hit:(\d+) missed:(\d+) lost:(\d+)")
_FLOWS = re.compile(r"^\s*flows: (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ThreadTicks:
    tid: int
    name: str
    ticks: int  # utime + stime


def classify(name: str) -> str:
    if name.startswith("pmd"):
        return PMD
    if name.startswith("handler"):
        return HANDLER
    if name.startswith("revalidator"):
        return REVALIDATOR
    if name == "ovs-vswitchd":
        return MAIN
    return OTHER


def _ticks(fields: list[str]) -> int | None:
    try:
        return int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    except (IndexError, ValueError):
        return None


def sample_threads(pid: int, proc: ProcReader | None = None) -> dict[int, ThreadTicks]:
    """Every thread of ``pid`` with its CPU ticks so far; threads that exit meanwhile (or
    may not be read) are skipped. Raises ``ProcessLookupError`` when the process is gone.
    ``proc``: the host's /proc (default: this machine's)."""
    proc = proc or ProcReader("/")
    tids = proc.tasks(pid)
    if tids is None:
        raise ProcessLookupError(pid)
    out: dict[int, ThreadTicks] = {}
    for tid in tids:
        try:
            fields = proc.stat_fields(pid, tid)
            name = proc.task_comm(pid, tid)
        except ProcUnreadable:
            continue
        ticks = None if fields is None or name is None else _ticks(fields)
        if ticks is not None and name is not None:
            out[tid] = ThreadTicks(tid, name, ticks)
    return out


@dataclass(frozen=True, slots=True)
class DatapathLoad:
    name: str
    flows: int
    packets_per_second: float
    offloaded_flows: int | None = None
    software_flows: int | None = None

    @property
    def offloaded_share(self) -> float | None:
        if self.offloaded_flows is None or self.software_flows is None:
            return None
        total = self.offloaded_flows + self.software_flows
        return self.offloaded_flows / total if total else None


@dataclass(frozen=True, slots=True)
class Cost:
    interval: float
    pid: int
    cores: Mapping[str, float]  # thread class -> cores in use
    threads: Mapping[str, int]  # thread class -> thread count
    datapaths: tuple[DatapathLoad, ...] = ()

    @property
    def total(self) -> float:
        return sum(self.cores.values())

    @property
    def pays(self) -> bool:
        return self.total > RULE_OF_THUMB_CORES

    @property
    def given_back(self) -> float:
        """Cores offload would free: the datapath's PMD cores (see the module docstring)."""
        return self.cores.get(PMD, 0.0)

    def verdict(self) -> str:
        total = f"ovs-vswitchd uses {self.total:.2f} core(s)"
        back = (f"; offload would give back about {self.given_back:.2f} (its PMD cores)"
                if self.given_back else "; its threads run no PMD datapath: offload gives "
                "back the kernel datapath's softirq time, which is not in these threads")
        if self.pays:
            return (f"a SmartNIC pays on this host: {total}, more than the rule of thumb's "
                    f"{RULE_OF_THUMB_CORES:.0f}{back}")
        return (f"a SmartNIC does not pay for OVS alone on this host: {total}, not more than "
                f"the rule of thumb's {RULE_OF_THUMB_CORES:.0f}{back}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid, "interval_s": self.interval,
            "cores": {k: round(self.cores.get(k, 0.0), 3) for k in CLASSES},
            "threads": {k: self.threads.get(k, 0) for k in CLASSES},
            "total_cores": round(self.total, 3),
            "rule_of_thumb_cores": RULE_OF_THUMB_CORES,
            "smartnic_pays": self.pays,
            "offload_gives_back_cores": round(self.given_back, 3),
            "verdict": self.verdict(),
            "datapaths": [{"name": d.name, "flows": d.flows,
                           "packets_per_second": round(d.packets_per_second, 1),
                           "offloaded_flows": d.offloaded_flows,
                           "software_flows": d.software_flows,
                           "offloaded_share": None if d.offloaded_share is None
                           else round(d.offloaded_share, 3)} for d in self.datapaths],
        }


def usage(before: Mapping[int, ThreadTicks], after: Mapping[int, ThreadTicks],
          seconds: float, hz: int) -> tuple[dict[str, float], dict[str, int]]:
    """Cores per thread class between two samples (threads present in both)."""
    cores = dict.fromkeys(CLASSES, 0.0)
    counts = dict.fromkeys(CLASSES, 0)
    for tid, thread in after.items():
        kind = classify(thread.name)
        counts[kind] += 1
        start = before.get(tid)
        if start is not None and seconds > 0:
            cores[kind] += max(0, thread.ticks - start.ticks) / hz / seconds
    return cores, counts


def parse_dpctl_show(text: str) -> dict[str, tuple[int, int]]:
    """``dpctl/show``: datapath -> (lookups hit+missed so far, flows)."""
    out: dict[str, tuple[int, int]] = {}
    blocks = re.split(r"^(?=[a-z]+@\S+:\s*$)", text, flags=re.MULTILINE)
    for block in blocks:
        head = block.split("\n", 1)[0].strip().rstrip(":")
        lookups = _LOOKUPS.search(block)
        flows = _FLOWS.search(block)
        if "@" in head and lookups and flows:
            out[head] = (int(lookups[1]) + int(lookups[2]), int(flows[1]))
    return out


def measure(pid: int, interval: float, *, proc: ProcReader | None = None,
            dpctl_show: Callable[[], str | None] = lambda: None,
            offloaded: Callable[[str], tuple[int, int] | None] = lambda dp: None,
            sleep: Callable[[float], None] = time.sleep,
            clock: Callable[[], float] = time.monotonic) -> Cost:
    """Sample, wait ``interval`` seconds, sample again. ``offloaded(dp)`` gives
    (offloaded flows, software flows) of a datapath, from the flow dumps."""
    hz = os.sysconf("SC_CLK_TCK")
    first_dp = parse_dpctl_show(dpctl_show() or "")
    start = clock()
    before = sample_threads(pid, proc)
    sleep(interval)
    after = sample_threads(pid, proc)
    seconds = clock() - start
    second_dp = parse_dpctl_show(dpctl_show() or "")
    cores, counts = usage(before, after, seconds, hz)
    loads = []
    for name, (lookups, flows) in sorted(second_dp.items()):
        earlier = first_dp.get(name, (lookups, flows))[0]
        split = offloaded(name)
        loads.append(DatapathLoad(name, flows, max(0, lookups - earlier) / seconds,
                                  split[0] if split else None, split[1] if split else None))
    return Cost(round(seconds, 3), pid, cores, counts, tuple(loads))
