"""Process bookkeeping for the local stack: spawn detached, remember, wait for, stop by PID.

Every service runs in its own session so that the `start` command can exit and leave it
running; a PID is only ever signalled when its recorded start time still matches, so a
recycled PID of an unrelated process is never killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from cyborg_smartnic.discovery.procfs import ProcReader, ProcUnreadable


class StackError(Exception):
    """A step of the stack failed; the message is one paragraph for the operator."""


@dataclass(frozen=True)
class Proc:
    """One process the stack started."""

    name: str
    pid: int
    start_ticks: int
    log: str
    argv: tuple[str, ...]


def free_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1 (tiny race, fine for a local stack)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PROC = ProcReader("/")


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (``[0]`` state, ``[19]`` starttime),
    through the project's /proc reader; None when the process is gone or unreadable."""
    try:
        return _PROC.stat_fields(pid)
    except ProcUnreadable:
        return None


def start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot, None when it does not exist."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(proc: Proc) -> bool:
    """True while the recorded process runs (a zombie or a recycled PID counts as gone)."""
    fields = _stat_fields(proc.pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return int(fields[19]) == proc.start_ticks


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path,
          cwd: Path | None = None, *, append: bool = False) -> Proc:
    """Start one service detached, its stdout and stderr in log_dir/NAME.log (truncated,
    unless append: a restarted service keeps its earlier log)."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab" if append else "wb") as log, open(os.devnull, "rb") as devnull:
        try:
            child = subprocess.Popen(
                list(argv), stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                env=dict(env), cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise StackError(f"{name}: cannot run {argv[0]}: {exc.strerror}") from exc
    ticks = start_ticks(child.pid)
    return Proc(name=name, pid=child.pid, start_ticks=ticks or 0, log=str(log_path),
                argv=tuple(argv))


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


@dataclass(frozen=True)
class Job:
    """A one-shot command running in the background while the stack starts (a schema
    migration, a nova-manage step), its output in a log of its own."""

    what: str  # how messages name it: "cyborg-dbsync upgrade"
    child: subprocess.Popen[bytes]
    log: Path


def start_job(what: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> Job:
    with open(log, "wb") as out:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=dict(env))
    return Job(what, child, log)


def job_failure(job: Job, timeout: float, tail: int = 25) -> str | None:
    """Wait for ``job`` (killed after ``timeout`` seconds): ``None`` when it exited 0, else
    one paragraph saying so with the last lines of its log."""
    try:
        code = job.child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.child.kill()
        code = job.child.wait()
    if code == 0:
        return None
    return f"{job.what} failed (exit {code}); last lines of {job.log}:\n{log_tail(job.log, tail)}"


def finish_job(job: Job, timeout: float) -> None:
    """``job_failure`` as a ``StackError``."""
    failed = job_failure(job, timeout)
    if failed is not None:
        raise StackError(failed)


def died_error(proc: Proc, what: str) -> StackError:
    return StackError(
        f"{proc.name} exited while {what}; last lines of {proc.log}:\n{log_tail(proc.log)}")


def wait_until(check: Callable[[], bool], proc: Proc | None, what: str, timeout: float,
               interval: float = 0.3) -> None:
    """Poll check() until true; fail early with the log tail when proc dies meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and not is_alive(proc):
            raise died_error(proc, what)
        if time.monotonic() > deadline:
            tail = f"; last lines of {proc.log}:\n{log_tail(proc.log)}" if proc else ""
            raise StackError(f"timed out after {timeout:.0f} s {what}{tail}")
        time.sleep(interval)


def http_status(url: str, headers: Mapping[str, str] | None = None,
                timeout: float = 3.0) -> int | None:
    """Status code of a GET, None when nothing answers."""
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return None


def wait_http_ok(url: str, proc: Proc, timeout: float) -> None:
    wait_until(lambda: http_status(url) == 200, proc, f"waiting for {url}", timeout)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    return [pid for pid in _PROC.pids()
            if (fields := _stat_fields(pid)) and fields[0] not in ("Z", "X")
            and int(fields[2]) == pgid]


def stop(proc: Proc, grace: float = 15.0) -> str:
    """TERM, wait up to grace seconds, then KILL; also reaps leftovers of its process group.

    Returns what happened, for the operator.
    """
    return stop_many([proc], grace)[0]


def stop_many(records: Sequence[Proc], grace: float = 15.0) -> list[str]:
    """stop() for several processes at once: TERM them all, then wait for them together."""
    outcomes = []
    for proc in records:
        if is_alive(proc):
            os.kill(proc.pid, signal.SIGTERM)
            outcomes.append("stopped")
        else:
            outcomes.append("not running")
    deadline = time.monotonic() + grace
    while any(is_alive(p) for p in records) and time.monotonic() < deadline:
        time.sleep(0.1)
    for index, proc in enumerate(records):
        if is_alive(proc):
            os.kill(proc.pid, signal.SIGKILL)
            outcomes[index] = f"killed after {grace:.0f} s"
    _wait_gone(lambda: not any(is_alive(p) for p in records))
    return [outcome + _reap_group(proc) for proc, outcome in zip(records, outcomes, strict=True)]


def _reap_group(proc: Proc) -> str:
    """KILL what is left in the service's process group (it ran as its session's leader:
    gunicorn workers or erl_child_setup still carry that group id)."""
    current = start_ticks(proc.pid)
    if current is not None and current != proc.start_ticks:
        return ""  # the PID now belongs to someone else, and so may the group id
    deadline = time.monotonic() + 2.0
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not group_members(proc.pid):
        return ""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return ""
    _wait_gone(lambda: not group_members(proc.pid))
    return " (leftovers of its process group killed)"


def _wait_gone(done: Callable[[], bool], timeout: float = 5.0) -> None:
    """SIGKILL is not instant: wait (bounded) until the kernel has taken the processes down."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def save(procs: Sequence[Proc], path: Path) -> None:
    """Write the PID records atomically (the file is what a later `stop` trusts)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([asdict(p) for p in procs], indent=2) + "\n")
    tmp.replace(path)


def load(path: Path) -> list[Proc]:
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise StackError(f"{path}: unreadable PID records: {exc}") from exc
    return [Proc(name=r["name"], pid=int(r["pid"]), start_ticks=int(r["start_ticks"]),
                 log=r["log"], argv=tuple(r["argv"])) for r in rows]
