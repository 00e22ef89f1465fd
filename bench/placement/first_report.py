"""Who sends the Placement requests of a 2048-VF host's first report, and where its time goes.

The in-process stack of ``tests/functional/harness.py`` (real Placement, Cyborg conductor
and agent with ``smartnic_driver``) on ``large()`` (16 PFs x 128 VFs, 2000 other functions,
PFs alternating between two physnets). One first report (``update_available_resource`` on
a fresh host and an empty state file). Requests are split by sender: those made while the
driver's ``discover()`` runs are the driver's, the rest come from the conductor's
``report_data``; each is classified by method, path pattern and status. Time is split into
the driver's ``discover()``, the conductor's Placement calls (its ``PlacementClient``
methods) and the rest of ``report_data`` (Cyborg's database), each the median of
``--rounds`` fresh stacks.

    .venv/bin/python bench/placement/first_report.py [--pfs 16] [--vfs 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cyborg_smartnic.hostgen import large
from tests.functional.harness import InProcessCloud

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NAMED = re.compile(r"/(traits|resource_classes)/[A-Z0-9_]+")


def kind(method: str, path: str, status: int) -> str:
    """``GET /resource_providers/{uuid} 404`` style, names and UUIDs folded."""
    path = _UUID.sub("{uuid}", path)
    path = _NAMED.sub(lambda m: f"/{m.group(1)}/{{name}}", path)
    path = re.sub(r"(name|in_tree)=[^&]+", r"\1={x}", path)
    return f"{method} {path or '/'} {status}"


@dataclass
class Timer:
    """Seconds spent inside the wrapped callables."""

    seconds: float = 0.0

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def _timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return _timed


@dataclass(frozen=True)
class Round:
    wall: float
    discover: float
    report_data: float
    conductor_placement: float
    driver: Counter[str]
    conductor: Counter[str]


@contextmanager
def _instrumented(inproc: InProcessCloud) -> Iterator[dict[str, Timer]]:
    timers = {name: Timer() for name in ("discover", "report_data", "placement")}
    (driver,) = inproc.agent._rt.acc_drivers
    driver.discover = timers["discover"].wrap(driver.discover)
    inproc.conductor.report_data = timers["report_data"].wrap(inproc.conductor.report_data)
    client = inproc.conductor.placement_client
    for method in ("get", "post", "put", "delete"):
        setattr(client, method, timers["placement"].wrap(getattr(client, method)))
    yield timers


def one_round(work: Path, pfs: int, vfs: int) -> Round:
    netdevs = [f"enp{0x10 + 2 * i}s0f0" for i in range(pfs)]  # large()'s netdev names
    mappings = [f"physnet{1 + i % 2}:{n}" for i, n in enumerate(netdevs)]
    with InProcessCloud(work, smartnic={"physical_device_mappings": mappings}) as inproc:
        large(inproc.sysfs_root, pfs=pfs, vfs=vfs)
        with _instrumented(inproc) as timers:
            start = time.perf_counter()
            driver_requests, other_requests = inproc.run_agent_cycle_split()
            wall = time.perf_counter() - start
        ours = Counter(kind(*e) for e in driver_requests)
        theirs = Counter(kind(*e) for e in other_requests)
        return Round(wall, timers["discover"].seconds, timers["report_data"].seconds,
                     timers["placement"].seconds, ours, theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pfs", type=int, default=16)
    parser.add_argument("--vfs", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    rounds = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-first-", dir=shm) as tmp:
            rounds.append(one_round(Path(tmp), args.pfs, args.vfs))
    last = rounds[-1]
    print(f"{args.pfs} PFs x {args.vfs} VFs; medians of {args.rounds} first reports\n")
    print("| sender | request | count |")
    print("|---|---|---:|")
    for sender, counts in (("driver", last.driver), ("conductor", last.conductor)):
        for request, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"| {sender} | `{request}` | {count} |")
    print(f"\nrequests: driver {sum(last.driver.values())}, conductor "
          f"{sum(last.conductor.values())}")

    def median(field: str) -> float:
        return statistics.median(getattr(r, field) for r in rounds)

    print("\n| part | seconds (median) |")
    print("|---|---:|")
    print(f"| whole cycle (wall) | {median('wall'):.2f} |")
    print(f"| driver `discover()` | {median('discover'):.2f} |")
    print(f"| conductor `report_data` | {median('report_data'):.2f} |")
    print(f"| ... of which Placement calls | {median('conductor_placement'):.2f} |")
    print(f"| ... of which the rest (Cyborg DB) | "
          f"{median('report_data') - median('conductor_placement'):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
