"""A read-only /proc reader bound to one root, the /proc counterpart of ``SysfsReader``.

Every path is derived from the injected root (``/`` on a host, a generated tree in tests), so
tests and recorded trees show in-use detection the same world the host does: processes and
their open files, and the facts that say whether this view of /proc shows every process
(the PID namespace, /proc's mount options, the kernel's own thread count, our credentials).

Answers distinguish "not there (now)" from "not allowed": a process that exits mid-read or an
fd closed meanwhile is ``None``/skipped, while EACCES (or any other failure) raises
``ProcUnreadable`` so the caller can count what it could not see instead of guessing it away.
``hook(op, path)`` runs inside each operation (``op`` is ``read``, ``readlink`` or
``listdir``); an ``OSError`` it raises is handled as the kernel's answer, so tests can deny
access the way the kernel does for a process we may not inspect.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cyborg_smartnic.errors import SmartNicError

# The kernel's "not there (now)" answers for /proc: the process or fd is gone.
_GONE = frozenset({errno.ENOENT, errno.ESRCH})
_MAX_READ = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# /proc/loadavg: "0.08 0.03 0.01 <running>/<threads> <last pid>"
_LOADAVG = re.compile(r"\S+ \S+ \S+ \d+/(?P<threads>\d+) \d+")
CAP_SYS_PTRACE = 19

Hook = Callable[[str, str], None]


class ProcUnreadable(SmartNicError):
    """Something in /proc exists but may not be read (EACCES, EPERM, EIO...)."""

    msg_fmt = "cannot read %(path)s (%(reason)s)"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What ``/proc/self/status`` says about the reading process."""

    uid: int
    groups: frozenset[int]
    capabilities: int  # CapEff bit mask

    def has_capability(self, bit: int) -> bool:
        return bool(self.capabilities >> bit & 1)


@dataclass(frozen=True, slots=True)
class ProcMount:
    """The super-block options of the filesystem mounted on ``/proc`` (from mountinfo)."""

    options: tuple[str, ...]

    def option(self, name: str) -> str | None:
        for option in self.options:
            key, _, value = option.partition("=")
            if key == name:
                return value
        return None


class ProcReader:
    """Reads ``<root>/proc``; nothing here writes."""

    __slots__ = ("_hook", "proc", "root")

    def __init__(self, root: Path | str, hook: Hook | None = None) -> None:
        text = os.fspath(root).rstrip("/")
        self.root = text  # "" for "/"
        self.proc = text + "/proc"
        self._hook = hook

    def shown(self, path: str) -> str:
        """``path`` as the host spells it (without the root prefix), for messages."""
        return path[len(self.root):] if self.root and path.startswith(self.root) else path

    def _failed(self, path: str, exc: OSError) -> ProcUnreadable:
        return ProcUnreadable(path=self.shown(path), reason=os.strerror(exc.errno or 0))

    # ------------------------------------------------------------------ primitives
    def read(self, path: str) -> str | None:
        """A /proc file's text, or ``None`` when it (or its process) is gone.

        Below another root (a tree anyone may have made) anything but a regular file is
        refused before opening it, and nothing is opened blocking: a FIFO planted at
        ``proc/loadavg`` cannot hang the command. The running host's /proc needs no check."""
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "replace")

    def read_bytes(self, path: str) -> bytes | None:
        """``read`` without decoding (``/proc/config.gz``); at most 1 MiB."""
        chunks: list[bytes] = []
        try:
            if self._hook is not None:
                self._hook("read", path)
            if self.root and not stat.S_ISREG(os.stat(path).st_mode):
                raise ProcUnreadable(path=self.shown(path), reason="not a regular file")
            fd = os.open(path, _OPEN_FLAGS)
            try:
                size = 0
                while size < _MAX_READ and (chunk := os.read(fd, _MAX_READ - size)):
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise self._failed(path, exc) from exc
        return b"".join(chunks)

    def readlink(self, path: str) -> str | None:
        """A link's target as the kernel spells it (``/dev/vfio/45 (deleted)``,
        ``pid:[4026531836]``), or ``None`` when it is gone."""
        try:
            if self._hook is not None:
                self._hook("readlink", path)
            return os.readlink(path)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise self._failed(path, exc) from exc

    def listdir(self, path: str) -> list[str] | None:
        """Entry names, or ``None`` when the directory (or its process) is gone."""
        try:
            if self._hook is not None:
                self._hook("listdir", path)
            return os.listdir(path)
        except OSError as exc:
            if exc.errno in _GONE:
                return None
            raise self._failed(path, exc) from exc

    # ------------------------------------------------------------------ processes
    def pids(self) -> list[int]:
        """Every process this view of /proc lists (raises when /proc cannot be listed)."""
        names = self.listdir(self.proc)
        if names is None:
            raise ProcUnreadable(path=self.shown(self.proc), reason="not there")
        return sorted(int(name) for name in names if name.isdigit())

    def open_files(self, pid: int) -> list[str] | None:
        """What each open fd of ``pid`` points at; ``None`` when the process is gone.

        Raises ``ProcUnreadable`` when the fd directory or any one link may not be read
        (another user's process, or one ``ptrace_may_access`` refuses even to root)."""
        fd_dir = f"{self.proc}/{pid}/fd"
        fds = self.listdir(fd_dir)
        if fds is None:
            return None
        targets = []
        for fd in fds:
            target = self.readlink(f"{fd_dir}/{fd}")
            if target is not None:  # closed meanwhile
                targets.append(target)
        return targets

    def comm(self, pid: int) -> str:
        try:
            text = self.read(f"{self.proc}/{pid}/comm")
        except ProcUnreadable:
            text = None
        return text.strip() if text else "?"

    def threads(self, pid: int) -> int:
        """Threads of ``pid`` this view shows (``task/`` entries; at least the process)."""
        try:
            tasks = self.listdir(f"{self.proc}/{pid}/task")
        except ProcUnreadable:
            tasks = None
        return max(1, len(tasks or ()))

    def tasks(self, pid: int) -> list[int] | None:
        """The thread ids of ``pid`` (``task/``), or ``None`` when the process is gone."""
        names = self.listdir(f"{self.proc}/{pid}/task")
        return None if names is None else sorted(int(n) for n in names if n.isdigit())

    def stat_fields(self, pid: int, tid: int | None = None) -> list[str] | None:
        """``/proc/<pid>/stat`` (or thread ``tid``'s ``task/<tid>/stat``) split after the
        command name, which may hold spaces and parentheses: item ``n - 3`` is the
        proc(5) field ``n`` (``[0]`` the state, ``[19]`` starttime). ``None`` when gone."""
        path = f"{self.proc}/{pid}/stat" if tid is None else f"{self.proc}/{pid}/task/{tid}/stat"
        text = self.read(path)
        return None if text is None else text.rsplit(")", 1)[-1].split()

    def task_comm(self, pid: int, tid: int) -> str | None:
        """A thread's name (``task/<tid>/comm``), or ``None`` when the thread is gone."""
        text = self.read(f"{self.proc}/{pid}/task/{tid}/comm")
        return None if text is None else text.strip()

    # ------------------------------------------------------------------ the host
    def uptime(self) -> float | None:
        """Seconds since boot (``/proc/uptime``); ``None`` when absent or malformed."""
        text = self.read(f"{self.proc}/uptime")
        try:
            return float((text or "").split()[0])
        except (IndexError, ValueError):
            return None

    def os_release(self) -> str | None:
        """The running kernel's release (``/proc/sys/kernel/osrelease``), or ``None`` when
        it cannot be read: callers treat an unknown release as "cannot tell"."""
        try:
            text = self.read(f"{self.proc}/sys/kernel/osrelease")
        except ProcUnreadable:
            return None
        return (text or "").strip() or None

    # ------------------------------------------------------------------ our own view
    def pid_namespace(self) -> str:
        """``/proc/self/ns/pid``, e.g. ``pid:[4026531836]`` (raises when unreadable)."""
        path = f"{self.proc}/self/ns/pid"
        link = self.readlink(path)
        if link is None:
            raise ProcUnreadable(path=self.shown(path), reason="not there")
        return link

    def proc_mount(self) -> ProcMount | None:
        """The options /proc is mounted with, from ``/proc/self/mountinfo`` (the last mount
        on ``/proc`` wins, as it hides the ones below); ``None`` when nothing is mounted
        there. Raises when mountinfo cannot be read."""
        path = f"{self.proc}/self/mountinfo"
        text = self.read(path)
        if text is None:
            raise ProcUnreadable(path=self.shown(path), reason="not there")
        found = None
        for line in text.splitlines():
            head, sep, tail = line.partition(" - ")
            fields, rest = head.split(), tail.split()
            if sep and len(fields) >= 5 and fields[4] == "/proc" and len(rest) >= 3 \
                    and rest[0] == "proc":
                found = ProcMount(tuple(rest[2].split(",")))
        return found

    def credentials(self) -> Credentials:
        """Effective uid, groups and capabilities from ``/proc/self/status``."""
        path = f"{self.proc}/self/status"
        text = self.read(path)
        fields = dict(line.split(":", 1) for line in (text or "").splitlines() if ":" in line)
        try:
            return Credentials(uid=int(fields["Uid"].split()[1]),
                               groups=frozenset(int(g) for g in fields["Groups"].split()),
                               capabilities=int(fields["CapEff"].strip(), 16))
        except (KeyError, IndexError, ValueError) as exc:
            raise ProcUnreadable(path=self.shown(path),
                                 reason="no Uid/Groups/CapEff lines") from exc

    def kernel_threads(self) -> int:
        """Every thread on the host, as the kernel counts them (``/proc/loadavg``'s total is
        global: a PID namespace or ``hidepid`` hides processes, not this number)."""
        path = f"{self.proc}/loadavg"
        text = self.read(path)
        match = _LOADAVG.match(text or "")
        if match is None:
            raise ProcUnreadable(path=self.shown(path),
                                 reason="not there" if text is None else "unexpected format")
        return int(match["threads"])
