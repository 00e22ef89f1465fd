"""Run a drain: disable nova-compute, look again, live-migrate, wait; re-enable at the end.

The order is what keeps a host from going back into service half-done: the service is
disabled first (no instance lands here meanwhile), the instances are read again after that
(one may have landed before), and any instance that cannot move stops everything before the
host is touched. Only ``finish`` re-enables the service, and only when this drain (or an
earlier one of this tool, by its reason) disabled it; every way out before that leaves it
disabled, with ``stays_disabled`` saying what to do next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import drain
from cyborg_smartnic.host.drain_nova import Clouds


class DrainStopped(SmartNicError):
    msg_fmt = "%(reason)s"


@dataclass
class Drainer:
    clouds: Clouds
    why: str  # what the disabled reason says after the tool's prefix
    progress: Callable[[str], None] = lambda line: None
    timeout: float = 600.0  # for all live migrations together
    poll_interval: float = 2.0
    note_every: float = 10.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    service: drain.Service | None = field(default=None, init=False)
    reenable: bool = field(default=False, init=False)  # finish() enables the service

    @property
    def host(self) -> str:
        return self.clouds.hostname

    def adopt(self, planned: drain.DrainPlan) -> None:
        """No drain needed: only a service an earlier drain left disabled is re-enabled."""
        self.service = planned.service
        self.reenable = planned.service is not None and planned.service.ours

    def start(self, planned: drain.DrainPlan,
              replan: Callable[[drain.CloudView], drain.DrainPlan]) -> None:
        """Disable the service, then move every instance the steps would hit, or stop."""
        service = planned.service
        if not planned.needed or service is None:
            self.adopt(planned)
            return
        self.service = service
        if service.status == "enabled":
            self.clouds.disable(service, drain.reason(self.why))
            self.progress(f"drain: disabled nova-compute on {self.host} (reason: "
                          f"{drain.reason(self.why)})")
            self.reenable = True
        elif service.ours:
            self.progress(f"drain: nova-compute on {self.host} is still disabled by an earlier "
                          f"drain ({service.disabled_reason}); it is re-enabled when done")
            self.reenable = True
        else:
            self.progress(f"drain: nova-compute on {self.host} was already disabled by someone "
                          f"else ({service.disabled_reason or 'no reason given'}); it stays "
                          f"disabled afterwards")
        now = replan(self.clouds.view())  # an instance may have landed before the disable
        if now.blocked:
            raise DrainStopped(reason=f"drain blocked by {len(now.blocked)} instance(s): "
                                      f"{drain.summary(now)}. Nothing on the host was "
                                      f"changed; {self.stays_disabled()}")
        for move in now.migrations:
            self.progress(f"drain: live-migrating {move.instance} ({move.name}), holding "
                          f"{', '.join(move.vfs)}")
            self.clouds.live_migrate(move.instance)
        self._wait({m.instance: m.name for m in now.migrations})
        if now.migrations:
            self.progress(f"drain: {len(now.migrations)} instance(s) moved off {self.host}")

    def _wait(self, moving: dict[str, str]) -> None:
        start = self.clock()
        next_note = start + self.note_every
        while moving:
            for instance in list(moving):
                server = self.clouds.server(instance)
                if server is None or (server.host != self.host
                                      and server.status in drain.MOVABLE_STATES):
                    where = "deleted meanwhile" if server is None else f"now on {server.host}"
                    self.progress(f"drain: {instance} ({moving.pop(instance)}) {where}")
                    continue
                if server.status == "ERROR":
                    self._fail(f"{instance} ({server.name}) went to ERROR while live-migrating")
                if server.status != "MIGRATING":
                    fault = self.clouds.migration_fault(instance)
                    if fault is not None:
                        self._fail(f"Nova did not live-migrate {instance} ({server.name}): "
                                   f"{fault}; see nova-conductor's log")
            if not moving:
                return
            now = self.clock()
            if now - start >= self.timeout:
                self._fail(f"{len(moving)} instance(s) still on {self.host} after "
                           f"{self.timeout:.0f}s: {', '.join(sorted(moving))}")
            if now >= next_note:
                self.progress(f"drain: waiting for {len(moving)} live migration(s) "
                              f"({now - start:.0f}s of {self.timeout:.0f}s)")
                next_note = now + self.note_every
            self.sleep(self.poll_interval)

    def _fail(self, what: str) -> None:
        raise DrainStopped(reason=f"drain failed: {what}. Nothing on the host was changed; "
                                  f"{self.stays_disabled()}")

    def stays_disabled(self) -> str:
        """The one line said on every way out before ``finish``."""
        if not self.reenable:
            return f"nova-compute on {self.host} stays disabled, as it was before"
        return (f"nova-compute on {self.host} stays DISABLED: fix that and run `host apply "
                f"--drain` again (it re-enables the service when done), or put the host back "
                f"in service as it is with `openstack compute service set --enable "
                f"{self.host} nova-compute`")

    def finish(self) -> None:
        """The host matches host.yaml: put it back in service if this tool took it out."""
        if self.service is None or not self.reenable:
            return
        self.clouds.enable(self.service)
        self.progress(f"drain: re-enabled nova-compute on {self.host}")
        self.reenable = False
