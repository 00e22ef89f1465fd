"""The drain's sequence (host.drain_run) on scripted Nova answers.

A STAND-IN, named as such: the shared stack has one nova-compute, so a real live migration
cannot happen there (tests/stack/test_drain.py covers the blocked path, the failure path and
the re-enable against the real Nova). Here ``ScriptedClouds`` answers what Nova's API shows
of a live migration (the server MIGRATING on this host, then ACTIVE on another; or back
ACTIVE here with a migration record in state ``error``), to test the wait, the progress
lines, the timeout, and that the service is re-enabled only by ``finish``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from cyborg_smartnic.host import drain
from cyborg_smartnic.host.drain import CloudView, Holding, Server, Service
from cyborg_smartnic.host.drain_run import Drainer, DrainStopped
from cyborg_smartnic.host.steps import Plan
from tests.fixtures.clock import Clock
from tests.unit.test_host_drain import HOST, TARGET, VFS, numvfs

ENABLED = Service("s1", "node1", "enabled", "up")


@dataclass
class ScriptedClouds:
    """Answers in the order a scripted Nova gives them; records every write."""

    views: list[CloudView]
    answers: dict[str, Iterator[Server | None]] = field(default_factory=dict)
    fault: str | None = None
    hostname: str = "node1"
    calls: list[str] = field(default_factory=list)

    def view(self) -> CloudView:
        return self.views.pop(0) if len(self.views) > 1 else self.views[0]

    def disable(self, service: Service, why: str) -> None:
        self.calls.append(f"disable {service.id}: {why}")

    def enable(self, service: Service) -> None:
        self.calls.append(f"enable {service.id}")

    def live_migrate(self, server_id: str) -> None:
        self.calls.append(f"live-migrate {server_id}")

    def server(self, server_id: str) -> Server | None:
        return next(self.answers[server_id])

    def migration_fault(self, server_id: str) -> str | None:
        return self.fault


def server(status: str, host: str, uid: str = "i1") -> Server:
    return Server(uid, f"vm-{uid}", status, host)


def movable(service: Service = ENABLED) -> CloudView:
    return CloudView("node1", service, (TARGET,), {"i1": server("ACTIVE", "node1")},
                     (Holding("i1", VFS[0], "port p1", "direct"),))


def blocked() -> CloudView:
    return CloudView("node1", ENABLED, (TARGET,), {"i9": Server(
        "i9", "vm-i9", "ACTIVE", "node1", extra_specs={"accel:device_profile": "x"})},
        (Holding("i9", VFS[1], "Cyborg ARQ a9"),))



def drainer(clouds: ScriptedClouds, lines: list[str], timeout: float = 60.0) -> Drainer:
    clock = Clock()
    return Drainer(clouds, "host apply of h.yaml", lines.append,  # type: ignore[arg-type]
                   timeout=timeout, poll_interval=2.0, note_every=10.0, sleep=clock.sleep,
                   clock=clock)


def start(run: Drainer, cloud: CloudView) -> None:
    plan = Plan((numvfs(),))
    run.start(drain.plan_drain(plan, HOST, cloud), lambda v: drain.plan_drain(plan, HOST, v))


def test_a_live_migration_is_awaited_and_the_service_re_enabled_at_the_end() -> None:
    clouds = ScriptedClouds([movable()], {"i1": iter(
        [server("MIGRATING", "node1")] * 8 + [server("ACTIVE", "node2")])})
    lines: list[str] = []
    run = drainer(clouds, lines)
    start(run, movable())
    assert clouds.calls == ["disable s1: cyborg-smartnic drain: host apply of h.yaml",
                            "live-migrate i1"]
    assert "drain: i1 (vm-i1) now on node2" in lines
    assert any(line.startswith("drain: waiting for 1 live migration(s) (10s of 60s)")
               for line in lines)
    run.finish()
    assert clouds.calls[-1] == "enable s1"


def test_a_migration_nova_gave_up_stops_the_drain_and_keeps_the_service_disabled() -> None:
    clouds = ScriptedClouds([movable()], {"i1": iter(
        [server("MIGRATING", "node1"), server("ACTIVE", "node1")])},
        fault="migration 7 to node2 ended error")
    run = drainer(clouds, [])
    with pytest.raises(DrainStopped) as stopped:
        start(run, movable())
    assert "Nova did not live-migrate i1 (vm-i1): migration 7 to node2 ended error" in str(
        stopped.value)
    assert "nova-compute on node1 stays DISABLED" in str(stopped.value)
    assert "enable s1" not in clouds.calls


def test_a_migration_that_never_ends_times_out() -> None:
    clouds = ScriptedClouds([movable()], {"i1": iter([server("MIGRATING", "node1")] * 100)})
    run = drainer(clouds, [], timeout=30.0)
    with pytest.raises(DrainStopped, match=r"1 instance\(s\) still on node1 after 30s: i1"):
        start(run, movable())


def test_an_instance_that_landed_before_the_disable_blocks() -> None:
    nothing = CloudView("node1", ENABLED, (TARGET,), {}, ())
    clouds = ScriptedClouds([blocked()])
    run = drainer(clouds, [])
    with pytest.raises(DrainStopped, match=r"drain blocked by 1 instance\(s\): i9 \(vm-i9\): "
                                           r"accelerator server"):
        start(run, nothing)
    assert clouds.calls == ["disable s1: cyborg-smartnic drain: host apply of h.yaml"]


@pytest.mark.parametrize(("service", "disabled", "enabled"), [
    (ENABLED, True, True),
    (Service("s1", "node1", "disabled", "up", drain.reason("earlier")), False, True),
    (Service("s1", "node1", "disabled", "up", "hardware ticket 42"), False, False),
])
def test_who_disables_and_who_re_enables(service: Service, disabled: bool,
                                         enabled: bool) -> None:
    clouds = ScriptedClouds([movable(service)], {"i1": iter([server("ACTIVE", "node2")])})
    run = drainer(clouds, [])
    start(run, movable(service))
    run.finish()
    assert (any(c.startswith("disable") for c in clouds.calls), "enable s1" in clouds.calls
            ) == (disabled, enabled)
