"""One ``host apply`` per host at a time, and what the driver reads while one runs.

``hold`` takes an exclusive ``flock`` on a file under /run for the whole plan-then-apply, so a
second apply can neither interleave with the first nor be silently reverted by its rollback.
The holder writes which PFs it is changing into the file; ``apply_in_progress`` (called by
the Cyborg driver every cycle) reads them while the lock is held, so the driver can keep
reporting those PFs as it last did instead of shrinking and growing pools mid-apply. The
kernel drops a flock when its holder dies, so a crashed apply never leaves the host locked.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cyborg_smartnic.errors import SmartNicError

if TYPE_CHECKING:
    from cyborg_smartnic.report import DeviceSpec

LOG = logging.getLogger(__name__)

LOCK_NAME = os.path.join("run", "cyborg-smartnic", "host-apply.lock")
GRACE = 1.0  # readers hold a shared lock for microseconds: retry at least this long
POLL = 0.2


class LockBusy(SmartNicError):
    msg_fmt = ("another host apply (%(holder)s) holds %(path)s; nothing was done "
               "(waited %(waited)ss; --wait SECONDS to wait longer)")


class LockUnavailable(SmartNicError):
    msg_fmt = "cannot take the host apply lock %(path)s: %(reason)s"


def lock_path(configured: str | None, sysfs_root: str) -> str:
    """``[smartnic] apply_lock_file``, else ``run/cyborg-smartnic/host-apply.lock`` under
    the sysfs root: /run/... on a real host, inside the tree for a recorded one."""
    return configured or os.path.join(sysfs_root, LOCK_NAME)


@dataclass(frozen=True, slots=True)
class HostLock:
    """The held lock; ``changing`` tells readers which PFs this apply is about to change."""

    path: str
    fd: int

    def changing(self, pfs: Iterable[str]) -> None:
        _write(self.fd, {"pid": os.getpid(), "started": time.time(), "pfs": sorted(set(pfs))})


@contextmanager
def hold(path: str, wait: float, progress: Callable[[str], None] = lambda line: None,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Iterator[HostLock]:
    """Hold the exclusive lock at ``path``; wait up to ``wait`` seconds for another holder
    (saying so once), then raise ``LockBusy`` naming it."""
    fd = _open(path)
    start = clock()
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = clock() - start
                if waited >= max(wait, GRACE):
                    raise LockBusy(holder=_holder(fd), path=path,
                                   waited=f"{waited:.0f}") from None
                if not told and wait > 0:
                    progress(f"waiting up to {wait:.0f}s for another host apply "
                             f"({_holder(fd)}) to finish")
                    told = True
                sleep(POLL)
    except BaseException:
        os.close(fd)
        raise
    try:
        _write(fd, {"pid": os.getpid(), "started": time.time(), "pfs": []})
        yield HostLock(path, fd)
    finally:
        try:
            os.ftruncate(fd, 0)  # a reader that opens it after we go reads "nothing"
        finally:
            os.close(fd)  # closing drops the flock


def apply_in_progress(path: str) -> frozenset[str]:
    """The PF addresses a running ``host apply`` is changing; empty when none runs.

    Never raises: an unreadable lock file is logged and read as "no apply".
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        LOG.warning("cannot read the host apply lock %s: %s", path, exc)
        return frozenset()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # an apply holds it: read what it is changing
        else:
            return frozenset()  # nobody holds it (closing below drops our shared lock)
        data = _read(fd)
        pfs = data.get("pfs", []) if isinstance(data, dict) else []
        return frozenset(str(pf) for pf in pfs) if isinstance(pfs, list) else frozenset()
    except OSError as exc:
        LOG.warning("cannot read the host apply lock %s: %s", path, exc)
        return frozenset()
    finally:
        os.close(fd)


def as_last_reported(current: Sequence[DeviceSpec], last: Sequence[DeviceSpec],
                     pfs: frozenset[str]) -> tuple[DeviceSpec, ...]:
    """``current`` with the devices of ``pfs`` exactly as ``last`` reported them (a PF
    ``last`` did not report stays out until the apply is over)."""
    before = {dev.address: dev for dev in last}
    kept = [dev for dev in current if dev.address not in pfs]
    kept += [before[address] for address in pfs if address in before]
    return tuple(sorted(kept, key=lambda dev: dev.address))


def _open(path: str) -> int:
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o664)
    except OSError as exc:
        hint = (" (run as root, or create it writable for this user, e.g. with the "
                "tmpfiles.d line in deploy/systemd)"
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "")
        raise LockUnavailable(path=path, reason=f"{exc.strerror}{hint}") from exc


def _write(fd: int, data: dict[str, object]) -> None:
    body = json.dumps(data, sort_keys=True).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, body, 0)


def _read(fd: int) -> object:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
        if offset > 1 << 20:
            break
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except (ValueError, RecursionError):
        return {}


def _holder(fd: int) -> str:
    data = _read(fd)
    pid = data.get("pid") if isinstance(data, dict) else None
    return f"pid {pid}" if isinstance(pid, int) else "another process"
