"""ovs-cost's arithmetic on a generated /proc (threads with known tick counts)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.procfs import ProcReader
from cyborg_smartnic.host.ovs import cost, state

HZ = os.sysconf("SC_CLK_TCK")
DPCTL_SHOW = """\
system@ovs-system:
  lookups: hit:{hit} missed:{missed} lost:0
  flows: 12
  masks: hit:1200 total:3 hit/pkt:1.00
  port 0: ovs-system (internal)
"""


def _write(proc: Path, pid: int, threads: dict[int, tuple[str, int]]) -> None:
    for tid, (name, ticks) in threads.items():
        task = proc / str(pid) / "task" / str(tid)
        task.mkdir(parents=True, exist_ok=True)
        (task / "comm").write_text(name + "\n")
        utime, stime = ticks - ticks // 4, ticks // 4
        (task / "stat").write_text(
            f"{tid} ({name}) S 1 {pid} {pid} 0 -1 4194624 1 0 0 0 {utime} {stime} 0 0 20 0 "
            f"9 0 100 1000 10 18446744073709551615\n")


def test_classify_thread_names() -> None:
    assert [cost.classify(n) for n in ("pmd-c03/id:8", "handler12", "revalidator7",
                                       "ovs-vswitchd", "urcu3", "ct_clean2")] == [
        "pmd", "handler", "revalidator", "main", "other", "other"]


def test_measure_counts_cores_per_class_and_gives_the_verdict(tmp_path: Path) -> None:
    pid, proc_dir = 4242, tmp_path / "proc"
    start = {pid: ("ovs-vswitchd", 100), 4243: ("handler5", 0), 4244: ("revalidator4", 0),
             4245: ("pmd-c02/id:7", 1000), 4246: ("pmd-c03/id:8", 1000), 4247: ("urcu3", 0)}
    _write(proc_dir, pid, start)
    shows = iter([DPCTL_SHOW.format(hit=1000, missed=10), DPCTL_SHOW.format(hit=2001000,
                                                                             missed=10)])
    clock = iter([0.0, 2.0])

    def advance(seconds: float) -> None:  # what the threads did during the interval
        assert seconds == 2.0
        _write(proc_dir, pid, {pid: ("ovs-vswitchd", 100 + HZ // 5),  # 0.1 core
                               4243: ("handler5", HZ // 2), 4244: ("revalidator4", HZ),
                               4245: ("pmd-c02/id:7", 1000 + 2 * HZ),  # busy polling:
                               4246: ("pmd-c03/id:8", 1000 + 2 * HZ),  # 1 core each
                               4247: ("urcu3", 0)})

    result = cost.measure(pid, 2.0, proc=ProcReader(tmp_path), dpctl_show=lambda: next(shows),
                          offloaded=lambda dp: (9, 3), sleep=advance,
                          clock=lambda: next(clock))

    assert result.threads == {"pmd": 2, "handler": 1, "revalidator": 1, "main": 1,
                              "other": 1}
    assert round(result.cores["pmd"], 2) == 2.0
    assert round(result.cores["handler"], 2) == 0.25
    assert round(result.cores["revalidator"], 2) == 0.5
    assert round(result.cores["main"], 2) == 0.1
    assert round(result.total, 2) == 2.85
    assert not result.pays and round(result.given_back, 2) == 2.0
    (load,) = result.datapaths
    assert (load.name, load.flows, load.packets_per_second) == ("system@ovs-system", 12,
                                                                1_000_000.0)
    assert load.offloaded_share == 0.75
    data = result.to_dict()
    assert data["smartnic_pays"] is False and data["total_cores"] == 2.85


def test_more_than_four_cores_pays() -> None:
    busy = cost.Cost(interval=5.0, pid=1, cores={"pmd": 4.0, "handler": 0.6,
                                                 "revalidator": 0.3},
                     threads={"pmd": 4, "handler": 2, "revalidator": 1})
    assert busy.pays
    assert busy.verdict().startswith("a SmartNIC pays on this host: ovs-vswitchd uses 4.90")
    assert "give back about 4.00" in busy.verdict()


def test_a_vanished_process_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ProcessLookupError):
        cost.sample_threads(999999, ProcReader(tmp_path))


def test_a_thread_that_may_not_be_read_is_skipped_not_fatal(tmp_path: Path) -> None:
    """/proc answers EACCES for one thread (as for a process we may not inspect): the
    others are still counted, through the same reader in-use detection uses."""
    _write(tmp_path / "proc", 7, {7: ("ovs-vswitchd", 40), 8: ("handler1", 80)})

    def deny(op: str, path: str) -> None:
        if path.endswith("/task/8/stat"):
            raise PermissionError(errno.EACCES, "denied")

    found = cost.sample_threads(7, ProcReader(tmp_path, hook=deny))
    assert {tid: (t.name, t.ticks) for tid, t in found.items()} == {7: ("ovs-vswitchd", 40)}


def test_process_start_is_boot_time_plus_starttime(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(proc, 42, {42: ("ovs-vswitchd", 0)})
    fields = (proc / "42/task/42/stat").read_text().split()
    fields[21] = str(300 * HZ)  # starttime: 300 s after boot
    (proc / "42/stat").write_text(" ".join(fields) + "\n")
    (proc / "uptime").write_text("1000.00 1900.00\n")
    started = state.process_start(42, ProcReader(tmp_path))
    assert started is not None and abs(started - (time.time() - 700)) < 5
    (proc / "uptime").write_text("garbage\n")
    assert state.process_start(42, ProcReader(tmp_path)) is None
    assert state.process_start(43, ProcReader(tmp_path)) is None  # no such process
