"""SIGINT and SIGTERM during ``host apply``: abort while nothing changed, roll back after.

Ctrl-C at a terminal and systemd's stop (or start timeout) must both leave the host as it was.
Before the first write a signal aborts at once (``Interrupted``); once the executor runs it is
only recorded, and the executor stops between two writes and rolls back. Signals during the
rollback are recorded and otherwise ignored, so the rollback finishes. Exit status follows
the shell convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from cyborg_smartnic.errors import SmartNicError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(SmartNicError):
    msg_fmt = "interrupted by %(signal)s; nothing was changed"

    @property
    def exit_code(self) -> int:
        return 128 + int(signal.Signals[self.kwargs["signal"]])


class StopSignals:
    """A context manager that turns SIGINT/SIGTERM into a stop request (main thread only;
    elsewhere, e.g. in a test thread, it installs nothing)."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._deferred = False
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def defer(self) -> None:
        """From now on only record signals: the host is being changed."""
        self._deferred = True

    def requested(self) -> str | None:
        """The name of the first signal received (``SIGTERM``), or None."""
        return None if self.received is None else self.received.name

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received) if self.received is not None else 1

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signal.Signals(number)
        if not self._deferred:
            raise Interrupted(signal=signal.Signals(number).name)
