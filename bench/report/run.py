"""Report-cycle benchmark: a 2048-VF host through the real agent, conductor and Placement.

Builds ``cyborg_smartnic/hostgen/large.py:large()`` (16 PFs x 128 VFs by default) in a temporary
directory, starts the in-process cloud of ``tests/functional/harness.py`` on it and times
``AgentManager.update_available_resource`` (driver scan + report + conductor diff + Placement)
for: the first report, an unchanged host, the audit cycle (one PF in full every
``[smartnic] audit_interval`` cycles), an allocation on one pool, one PF losing and regaining
VFs, and drift healing (a trait removed from one pool in Placement behind the driver's back:
cycles until Placement shows it again). The same scenario runs a second time, in a fresh
cloud, with the driver of ``--old REV`` (``git show REV:cyborg_smartnic/driver.py``, loaded as
its own module; the rest of the package is this tree's, the names it imported from report.py
are served from report.py and conductor_guards.py), so both columns come from one run.
Placement requests are counted per method by the harness's WSGI hook. Prints a Markdown table
(the bench/README.md "Report cycle" section) and exits 1 if a target of this tree's driver is
missed: an unchanged cycle must make 2 Placement requests (the driver's one and the
conductor's one) and no write, the drift must heal, and the host must have one resource
provider per pool.

    .venv/bin/python bench/report/run.py [--pfs 16] [--vfs 128] [--repeat 3] [--old REV]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import oldrev
from cyborg_smartnic.hostgen import large
from tests.functional.harness import InProcessCloud

# The driver before the steady state (33 requests a cycle, a full report every 10th).
DEFAULT_OLD = "b637fa9"
RC = "CUSTOM_SMARTNIC_VF"
DRIFT_CYCLES = 11


@dataclass(frozen=True)
class Cycle:
    wall: float
    cpu: float
    methods: dict[str, int]
    writes: int
    cycles: int = 1
    note: str = ""

    @property
    def requests(self) -> int:
        return sum(self.methods.values())

    def cell(self) -> str:
        split = ", ".join(f"{m} {n}" for m, n in self.methods.items()) or "none"
        extra = f"; {self.note}" if self.note else ""
        return (f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU, {self.requests} requests "
                f"({split}), {self.writes} writes{extra}")


def timed(inproc: InProcessCloud, cycles: int = 1,
          done: Callable[[], bool] | None = None) -> Cycle:
    """Run ``cycles`` agent cycles (or until ``done()``), summed."""
    mark = inproc.placement_log.mark()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ran = 0
    for _ in range(cycles):
        inproc.run_agent_cycle()
        ran += 1
        if done is not None and done():
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    note = "" if done is None else (f"healed after {ran} cycle(s)" if done()
                                    else f"NOT healed after {ran} cycles")
    return Cycle(wall, cpu, inproc.placement_log.by_method(mark),
                 len(inproc.placement_log.writes(mark)), ran, note)


def load_old(rev: str, into: Path) -> ModuleType:
    """``cyborg_smartnic/driver.py`` of ``rev`` as module ``bench_old_driver``."""
    source = oldrev.git_show(rev, "cyborg_smartnic/driver.py")
    # report.py's Cyborg workarounds have their own module since: the old driver's imports
    # from report.py are served from both
    combined = ModuleType("bench_old_report")
    for home in ("cyborg_smartnic.report", "cyborg_smartnic.conductor_guards"):
        if importlib.util.find_spec(home) is not None:
            combined.__dict__.update(vars(importlib.import_module(home)))
    sys.modules["bench_old_report"] = combined
    source = source.replace("from cyborg_smartnic.report import", "from bench_old_report import")
    path = into / "bench_old_driver.py"
    path.write_text(source)
    return oldrev.load_file("bench_old_driver", path)


def use_driver(inproc: InProcessCloud, old: ModuleType | None) -> Any:
    """The agent's smartnic driver: this tree's, or ``old``'s in its place."""
    agent = inproc.start_agent()
    if old is not None:
        for driver in agent._rt.acc_drivers:
            driver.close()  # lets go of the state file
        agent._rt.acc_drivers = [old.SmartNicDriver()]
    (driver,) = agent._rt.acc_drivers
    return driver


def scenario(work: Path, args: argparse.Namespace, old: ModuleType | None
             ) -> tuple[dict[str, Cycle], int, int]:
    rows: dict[str, Cycle] = {}
    with InProcessCloud(work, smartnic={"audit_interval": args.audit_interval}) as inproc:
        from cyborg.conf import CONF

        # a busy 2-core machine can take more than the harness's 60 s for a full report
        CONF.set_override("rpc_response_timeout", 900)
        tree = large(inproc.sysfs_root, pfs=args.pfs, vfs=args.vfs, noise=args.noise)
        driver = use_driver(inproc, old)
        rows["first report"] = timed(inproc)
        timed(inproc)  # the cycle that confirms it; the Placement client discovers versions
        unchanged = [timed(inproc) for _ in range(args.repeat)]
        rows[f"unchanged (best of {args.repeat})"] = min(unchanged, key=lambda r: r.wall)
        if old is None:
            driver._cycles = args.audit_interval - 1  # the next cycle is an audit cycle
        else:
            driver._cycles_since_full = None  # the next cycle is its full report
        rows["every 10th cycle (old: full report; new: audit, one PF in full)"] = timed(inproc)
        timed(inproc)
        first_pf = "0000:10:00.0"  # large() puts its first PF there
        pool = f"{inproc.hostname}_{first_pf}"
        (rp,) = [p for p in inproc.resource_providers() if p["name"] == pool]
        consumer = "be4c0000-0000-4000-8000-000000000001"
        inproc.claim(consumer, {"allocations": {rp["uuid"]: {"resources": {RC: 1}}}})
        rows["an allocation on one pool"] = timed(inproc)
        inproc.release(consumer)
        timed(inproc)
        assert len(tree.vfs(first_pf)) == args.vfs
        tree.set_num_vfs(first_pf, args.vfs - 8)
        rows["one PF loses its 8 highest VFs"] = timed(inproc)
        rows["... the cycle after (the change is checked)"] = timed(inproc)
        tree.set_num_vfs(first_pf, args.vfs)
        rows["... and gets them back"] = timed(inproc)
        timed(inproc)
        timed(inproc)
        (rp,) = [p for p in inproc.resource_providers() if p["name"] == pool]
        base = f"/resource_providers/{rp['uuid']}/traits"
        traits = inproc.placement.get(base, expect=200).json()["traits"]
        victim = sorted(t for t in traits if t != "OWNER_CYBORG")[0]
        inproc.placement.put(base, {"traits": [t for t in traits if t != victim],
                                    "resource_provider_generation": rp["generation"]},
                             expect=200)

        def restored() -> bool:
            return victim in inproc.placement.get(
                f"/resource_providers/{inproc_uuid(inproc, pool)}/traits",
                expect=(200, 404)).json().get("traits", [])

        rows[f"drift: a trait removed in Placement (up to {DRIFT_CYCLES} cycles)"] = timed(
            inproc, DRIFT_CYCLES, restored)
        providers = len(inproc.resource_providers())
        handles = len(inproc.attach_handles())
    return rows, providers, handles


def inproc_uuid(inproc: InProcessCloud, name: str) -> str:
    found = [p["uuid"] for p in inproc.resource_providers() if p["name"] == name]
    return found[0] if found else "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pfs", type=int, default=16)
    parser.add_argument("--vfs", type=int, default=128)
    parser.add_argument("--noise", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="unchanged cycles to time")
    parser.add_argument("--audit-interval", type=int, default=10)
    parser.add_argument("--old", default=DEFAULT_OLD, metavar="REV",
                        help="git revision whose driver.py is the 'previous' column "
                             f"(default {DEFAULT_OLD}); 'none' to skip it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-report-", dir=_tmpfs()) as tmp:
        old = None if args.old == "none" else load_old(args.old, Path(tmp))
        new_rows, providers, handles = scenario(Path(tmp) / "new", args, None)
        old_rows = scenario(Path(tmp) / "old", args, old)[0] if old is not None else {}
    print(f"{args.pfs} PFs x {args.vfs} VFs = {args.pfs * args.vfs} VFs, {args.noise} other "
          f"PCI functions; {providers} resource providers, {handles} attach handles; "
          f"audit_interval {args.audit_interval}\n")
    print(f"| cycle | previous driver ({args.old}) | this driver |")
    print("|---|---|---|")
    for label, new in new_rows.items():
        before = old_rows[label].cell() if label in old_rows else "-"
        print(f"| {label} | {before} | {new.cell()} |")
    unchanged = next(r for label, r in new_rows.items() if label.startswith("unchanged"))
    drift = next(r for label, r in new_rows.items() if label.startswith("drift"))
    ok = (unchanged.requests == 2 and unchanged.writes == 0 and "NOT" not in drift.note
          and providers == args.pfs)
    print(f"\ntargets: unchanged cycle {unchanged.requests} Placement requests, "
          f"{unchanged.writes} writes (2 and 0 wanted); drift {drift.note}; resource providers "
          f"{providers} for {args.pfs} pools: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def _tmpfs() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


if __name__ == "__main__":
    raise SystemExit(main())
