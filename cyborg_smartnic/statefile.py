"""The driver's ``[smartnic] state_file``: what it last reported, kept across agent restarts.

The file is only a cache of what Cyborg holds: losing it must never cost a running instance
its VF. So reading it never raises (a file that is missing, unreadable, not a regular file,
too large, not JSON, or JSON of the wrong shape gives ``None`` and one logged line; the driver
then rebuilds its view from Placement, see ``conductor_guards.plan_recovery``), and writing it
is atomic (temporary file in the same directory, fsync, rename, fsync of the directory), so a
crash or a full disk leaves the previous file or the new one, never a mix. A file that could
not be replaced is removed, because a stale report is worse than none (it would make the
driver believe Cyborg lacks handles it has).

The file names the host it describes; a file written for another host is ignored. One agent
at a time may use a file: ``StateLock`` takes an exclusive ``flock`` on ``<file>.lock`` for
the driver's lifetime and a second driver on the same file refuses to start.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from oslo_log import log as logging

from cyborg_smartnic.errors import InvalidPciAddress, SmartNicError
from cyborg_smartnic.report import DeviceSpec, dicts_to_specs, specs_to_dicts

LOG = logging.getLogger(__name__)

STATE_VERSION = 3
# version 1 had no "host" and no "unknown", version 2 no "generations"
READABLE_VERSIONS = (1, 2, 3)
MAX_STATE_BYTES = 64 * 1024 * 1024  # a 2048-VF host's state is well under 1 MiB

_PCI = r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$"
_STR = {"type": "string"}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["version", "report", "ledger"],
    "properties": {
        "version": {"enum": list(READABLE_VERSIONS)},
        "host": _STR,
        "unknown": {"type": "array", "items": {"type": "string", "pattern": _PCI}},
        "generations": {"type": "object", "additionalProperties": {"type": "integer",
                                                                   "minimum": 0}},
        "ledger": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "array", "items": _STR}}},
        "report": {"type": "array", "items": {
            "type": "object",
            "required": ["vendor", "model", "std_board_info", "controlpath_id",
                         "deployable_list"],
            "properties": {
                "vendor": _STR, "model": _STR, "std_board_info": _STR,
                "controlpath_id": {"type": "object", "required": ["cpid_info"],
                                   "properties": {"cpid_info": {"type": "string",
                                                                "pattern": _PCI}}},
                "deployable_list": {"type": "array", "items": {
                    "type": "object",
                    "required": ["name", "num_accelerators", "attribute_list",
                                 "attach_handle_list"],
                    "properties": {
                        "name": _STR,
                        "num_accelerators": {"type": "integer", "minimum": 0},
                        "attribute_list": {"type": "array", "items": {
                            "type": "object", "required": ["key", "value"],
                            "properties": {"key": _STR, "value": _STR}}},
                        "attach_handle_list": {"type": "array", "items": {
                            "type": "object", "required": ["attach_info"],
                            "properties": {"attach_info": _STR}}},
                    }}},
            }}},
    },
}


class StateFileInUse(SmartNicError):
    """Another driver (another cyborg-agent) holds the state file: this one must not start."""

    msg_fmt = ("[smartnic] state_file: %(path)s is in use by another cyborg-agent on this "
               "host (lock %(lock)s is held); each agent needs its own state file")


@dataclass(frozen=True)
class State:
    """What this driver believes Cyborg has: the last report and its handles' row order.

    ``unknown`` lists PFs (addresses) whose Cyborg content the driver does not know (state
    lost while a pool of that PF had allocations); they are sent as stubs, which Cyborg
    leaves untouched, until Placement shows them free. ``generations`` holds, per pool, the
    Placement generation of its provider when Placement was last seen to show the pool as
    ``report`` has it: while it has not moved, the pool needs no other Placement read.
    """

    report: tuple[DeviceSpec, ...] = ()
    ledger: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    unknown: frozenset[str] = frozenset()
    generations: Mapping[str, int] = field(default_factory=dict)


class _Unusable(Exception):
    """Why a state file cannot be used (a message, never shown as a traceback)."""


def _reject_constant(name: str) -> Any:
    raise _Unusable(f"{name} is not a number JSON allows")


def _read_bytes(path: str) -> bytes:
    """The file's bytes; only a regular file is read, without blocking on a FIFO."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("not a regular file")
        if info.st_size > MAX_STATE_BYTES:
            raise _Unusable(f"{info.st_size} bytes, more than {MAX_STATE_BYTES}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _parse(raw: bytes, host: str | None) -> State:
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise _Unusable("JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Unusable(f"not JSON: {exc}") from None
    try:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(_SCHEMA).iter_errors(data))
    except RecursionError:
        raise _Unusable("JSON nested too deeply") from None
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "top level"
        raise _Unusable(f"{where}: {error.message[:200]}")
    if host is not None and data.get("host", host) != host:
        raise _Unusable(f"written for host {data['host']!r}, not {host!r}")
    try:
        report = dicts_to_specs(data["report"])
    except (ValueError, KeyError, TypeError, AttributeError, InvalidPciAddress) as exc:
        raise _Unusable(f"report: bad attach_info: {exc!r}"[:300]) from None
    ledger = {name: tuple(tuple(batch) for batch in batches)
              for name, batches in data["ledger"].items()}
    return State(report, ledger, frozenset(data.get("unknown", ())),
                 dict(data.get("generations", {})))


def load_state(path: str | None, host: str | None = None) -> State | None:
    """The state a previous agent run saved; None when there is none or it is unusable.

    Never raises: an unusable file is logged (one line) and treated like a missing one.
    """
    if not path:
        return None
    try:
        return _parse(_read_bytes(path), host)
    except FileNotFoundError:
        LOG.info("smartnic state file %s does not exist yet", path)
        return None
    except (OSError, _Unusable) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        LOG.warning("smartnic state file %s is unusable (%s): ignoring it; pools with "
                    "allocations are not shrunk or rebuilt until Placement has been re-read",
                    path, reason)
        return None


def state_to_json(state: State, host: str | None = None) -> str:
    data: dict[str, Any] = {
        "version": STATE_VERSION,
        "report": specs_to_dicts(state.report),
        "ledger": {name: [list(batch) for batch in batches]
                   for name, batches in sorted(state.ledger.items())},
        "unknown": sorted(state.unknown),
        "generations": dict(sorted(state.generations.items())),
    }
    if host is not None:
        data["host"] = host
    return json.dumps(data, sort_keys=True)


def save_state(path: str | None, state: State, host: str | None = None, *,
               log: bool = True) -> str | None:
    """Replace the file atomically and durably; on failure the reason (logged if ``log``).

    When the file cannot be replaced the old one is removed (if it can be): it no longer
    describes what Cyborg has, and a stale state is more dangerous than a missing one.
    """
    if not path:
        return None
    target = Path(path)
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                         dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(state_to_json(state, host))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        temporary = None
        directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return None
    except OSError as exc:
        reason = f"Could not save smartnic state file {path}: {exc}"
        if log:
            LOG.warning("%s", reason)
        if temporary is not None:
            _unlink(Path(temporary))
        _unlink(target)
        return reason


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        LOG.warning("Could not remove %s (it may be stale): %s", path, exc)


class StateLock:
    """An exclusive, non-blocking ``flock`` on ``<state file>.lock`` held while a driver lives.

    A second driver on the same file (a second cyborg-agent, or two hosts sharing a state
    directory) gets ``StateFileInUse``. A lock file that cannot be created (read-only or
    missing directory) is only logged: then the state file cannot be written either, and the
    driver works from memory and Placement.
    """

    def __init__(self, path: str | None) -> None:
        self.path = f"{path}.lock" if path else None
        self._fd: int | None = None
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            LOG.warning("Could not open smartnic state lock %s: %s", self.path, exc)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateFileInUse(path=path, lock=self.path) from None
            LOG.warning("Could not lock smartnic state lock %s: %s", self.path, exc)
            return
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()
