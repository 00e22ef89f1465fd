"""The skeleton every runner of plan steps shares, so each runner holds only its own steps.

``host.apply.Executor`` runs the sysfs and devlink steps itself and hands the others by kind
to a ``StepRunner``: OVS (``host.ovs.apply``) and firmware (``host.firmware_apply``). A
runner dispatches on the step's kind, reads before it writes (answering "already ..."), writes
through privsep and then polls the host until it shows the result or a deadline passes
(``wait_until``); ``undo_for`` gives the steps that put back what a step is about to change.
``StepFailed`` is the one error a step raises, whoever runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host.steps import Step

T = TypeVar("T")

Handler = Callable[[Step, Host], str]


class StepFailed(SmartNicError):
    msg_fmt = "%(target)s: %(reason)s"


class StepRunner:
    """Base of the runners the executor hands steps to. Subclasses (dataclasses) provide
    ``sleep``, ``clock`` and ``poll_interval`` and name their handlers in ``handlers``."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    poll_interval: float

    def handlers(self) -> Mapping[str, Handler]:
        """Step kind -> the method that runs it (with the host as read before the step)."""
        raise NotImplementedError

    def run(self, step: Step, host: Host) -> str:
        handler = self.handlers().get(step.kind)
        if handler is None:
            raise StepFailed(target=step.target, reason=f"cannot run {step.kind} here")
        return handler(step, host)

    def undo_for(self, step: Step) -> list[Step]:
        """The steps that undo ``step``, read before it runs; none by default."""
        return []

    def wait_until(self, step: Step, check: Callable[[], T | None], timeout: float,
                   timed_out: Callable[[], str]) -> T:
        """Poll ``check`` until it answers something, every ``poll_interval`` seconds; after
        ``timeout`` seconds ``StepFailed`` with ``timed_out()`` as the reason."""
        deadline = self.clock() + timeout
        while True:
            found = check()
            if found is not None:
                return found
            if self.clock() >= deadline:
                raise StepFailed(target=step.target, reason=timed_out())
            self.sleep(self.poll_interval)
