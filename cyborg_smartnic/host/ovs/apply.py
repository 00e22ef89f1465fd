"""Run the OVS steps of a plan for ``host.apply.Executor``: write, verify, undo.

Each ``set_ovs_config`` step reads the key before writing (for its undo and to skip a write
that is already done) and reads it back after; ``restart_ovs`` waits for a new ovs-vswitchd
(another PID or start time) and fails when none appears in time. All writes go through the
privsep entry points in ``privileged``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.procfs import ProcReader
from cyborg_smartnic.host.ovs import privileged as ovs_privileged
from cyborg_smartnic.host.ovs.ovsdb import OvsPaths
from cyborg_smartnic.host.ovs.state import OvsState, Vswitchd, vswitchd_from_pidfile
from cyborg_smartnic.host.runner import Handler, StepFailed, StepRunner
from cyborg_smartnic.host.steps import RESTART_OVS, SET_OVS_CONFIG, Step


@dataclass
class OvsRunner(StepRunner):
    """Runs ``set_ovs_config`` and ``restart_ovs``; ``read`` asks OVSDB for its state."""

    paths: OvsPaths
    read: Callable[[], OvsState]
    unit: str = "openvswitch-switch.service"
    restart_timeout: float = 60.0
    poll_interval: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    proc: ProcReader = field(default_factory=lambda: ProcReader("/"))

    def handlers(self) -> Mapping[str, Handler]:
        return {SET_OVS_CONFIG: self._set, RESTART_OVS: self._restart}

    def undo_for(self, step: Step) -> list[Step]:
        if step.kind != SET_OVS_CONFIG:
            return []  # a restart cannot be undone; the keys' undo restores the settings
        before = self.read().other_config.get(str(step.param))
        return [replace(step, reason=f"rollback of: {step.param}", from_value=None,
                        to_value=before)]

    def _set(self, step: Step, _host: Host) -> str:
        key = str(step.param)
        want = None if step.to_value is None else str(step.to_value)
        have = self.read().other_config.get(key)
        if have == want:
            return f"already {key}={want}" if want is not None else f"already no {key}"
        ovs_privileged.ovs_set_other_config(self.paths.connection, key, want)
        now = self.read().other_config.get(key)
        if now != want:
            raise StepFailed(target=step.target,
                             reason=f"other_config:{key} reads {now!r} after writing {want!r}")
        return f"other_config:{key}={want}" if want is not None else f"removed {key}"

    def _restart(self, step: Step, _host: Host) -> str:
        old = vswitchd_from_pidfile(self.paths.vswitchd_pidfile, self.proc)
        ovs_privileged.ovs_restart_vswitchd(self.unit)

        def restarted() -> Vswitchd | None:
            new = vswitchd_from_pidfile(self.paths.vswitchd_pidfile, self.proc)
            return new if new is not None and new != old else None

        new = self.wait_until(step, restarted, self.restart_timeout, lambda: (
            f"no new ovs-vswitchd within {self.restart_timeout:.0f}s (pidfile "
            f"{self.paths.vswitchd_pidfile})"))
        return f"ovs-vswitchd restarted (pid {new.pid})"
