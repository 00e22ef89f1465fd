"""Faults on the report path: Placement failing at every request of a cycle, a restarted
conductor, and the next clean cycles converging without harm.

The fault is injected at the HTTP boundary (``harness.FaultInjector`` around the real
Placement app): the ``n``-th Placement request of the cycle under test answers 500, 503 or
409 without being applied, or is applied and its answer lost (a read timeout). ``n`` runs
over every request the cycle makes, whoever makes it (the driver's reads, the conductor's
reads and writes). The cycle may fail, as it would in cyborg-agent (the periodic task logs
it). Then clean cycles must converge: Cyborg and Placement hold exactly the scanned pools
(no orphaned provider, no stale deployable, every attach handle once), and the ARQ bound on
the other PF still resolves to its VF. The host is then put back, which must converge too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.driver import rp_uuid
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.report import plan_report
from tests.functional.harness import FAULT_KINDS, InProcessCloud
from tests.functional.test_driver_inuse import Bound

RC = "CUSTOM_SMARTNIC_VF"
PF_A = "0000:3b:00.0"  # changes under the faults, unused
PF_B = "0000:5e:00.0"  # holds a bound ARQ, never changes
GROUP_B = {f"resources:{RC}": "1", "trait:CUSTOM_PHYSNET_PHYSNET2": "required"}
MAX_CLEAN_CYCLES = 4


@dataclass
class Cloud:
    stack: InProcessCloud
    tree: SysfsTree
    bound: Bound


def add_pf_a(tree: SysfsTree) -> None:
    tree.add_pf(PF_A, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=4,
        vf_driver="vfio-pci", eswitch="switchdev"))


@pytest.fixture
def cloud(make_inproc: Callable[..., InProcessCloud]) -> Cloud:
    stack = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens1f0,physnet2:ens2f0"})
    tree = SysfsTree(stack.sysfs_root)
    add_pf_a(tree)
    tree.add_pf(PF_B, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", total_vfs=8, num_vfs=2,
        eswitch="legacy"))
    stack.run_agent_cycle()
    stack.create_device_profile("physnet2", [GROUP_B])
    requests = stack.allocation_candidates([GROUP_B])["allocation_requests"]
    instance = "5e1f0000-0000-4000-8000-000000000001"
    stack.claim(instance, requests[0])
    (arq,) = stack.create_arqs("physnet2")
    stack.bind_arq(arq["uuid"], next(iter(requests[0]["allocations"])), instance)
    info = stack.get_arq(arq["uuid"])["attach_handle_info"]
    return Cloud(stack, tree, Bound(instance, arq["uuid"], info))


# -- what "converged" means ----------------------------------------------------------------------
def expected(stack: InProcessCloud) -> dict[str, tuple[int, frozenset[str]]]:
    """``{pool name: (total, attach_infos)}`` the scan asks for."""
    (driver,) = stack.agent._rt.acc_drivers
    devices = plan_report(scan(str(stack.sysfs_root), driver.scan_options),
                          driver.report_config)
    return {dep.name: (dep.num_accelerators, frozenset(dep.attach_infos))
            for dev in devices for dep in dev.deployables}


def actual(stack: InProcessCloud) -> tuple[dict[str, tuple[int, frozenset[str]]],
                                  dict[str, int], list[str]]:
    """(Cyborg's pools with their handles, Placement's totals, duplicate handles)."""
    handles: dict[str, list[str]] = {}
    for ah in stack.attach_handles():
        handles.setdefault(ah["deployable"], []).append(ah["attach_info"])
    cyborg = {d["name"]: (d["num_accelerators"], frozenset(handles.get(d["name"], ())))
              for d in stack.deployables()}
    duplicates = [info for infos in handles.values() for info in infos
                  if infos.count(info) > 1]
    placement = {name: view["inventories"].get(RC, {}).get("total", 0)
                 for name, view in stack.provider_view().items()}
    return cyborg, placement, duplicates


def problems(cloud: Cloud) -> list[str]:
    """Everything that is not as it must be after convergence (empty when converged)."""
    stack = cloud.stack
    found: list[str] = []
    answer = stack.cyborg_api.get(f"/v2/accelerator_requests/{cloud.bound.arq}")
    if answer.status_code != 200:
        found.append(f"bound ARQ answers {answer.status_code}: {answer.text[:200]}")
    elif answer.json()["attach_handle_info"] != cloud.bound.attach_info:
        found.append(f"bound ARQ now points at {answer.json()['attach_handle_info']}")
    want = expected(stack)
    cyborg, placement, duplicates = actual(stack)
    if cyborg != want:
        found.append(f"Cyborg has {summary(cyborg)}, the scan {summary(want)}")
    if placement != {name: total for name, (total, _) in want.items()}:
        found.append(f"Placement has {placement} (orphaned or missing providers?)")
    if duplicates:
        found.append(f"duplicate attach handles {duplicates}")
    return found


def summary(pools: dict[str, tuple[int, frozenset[str]]]) -> dict[str, Any]:
    return {name.rsplit("_", 1)[-1]: (total, sorted(json.loads(i)["function"] + "@"
                                                    + json.loads(i)["bus"] for i in infos))
            for name, (total, infos) in pools.items()}


def run_cycle(stack: InProcessCloud) -> str | None:
    """One agent cycle; its failure is returned, as the periodic task would log it."""
    try:
        stack.run_agent_cycle()
    except Exception as exc:  # the agent's periodic task logs and goes on
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def converge(cloud: Cloud) -> list[str]:
    """Clean cycles until nothing is wrong (at most ``MAX_CLEAN_CYCLES``)."""
    found: list[str] = []
    for _ in range(MAX_CLEAN_CYCLES):
        error = run_cycle(cloud.stack)
        found = problems(cloud)
        if not found and error is None:
            return []
        if error:
            found.append(f"clean cycle failed: {error}")
    return found


# -- the transitions under test -------------------------------------------------------------------
@dataclass(frozen=True)
class Transition:
    """``forward`` changes the host; its report takes ``cycles`` cycles; ``back`` undoes it."""

    forward: Callable[[SysfsTree], None]
    back: Callable[[SysfsTree], None]
    cycles: int = 1


def _nothing(tree: SysfsTree) -> None:
    del tree


def _remove_pf_a(tree: SysfsTree) -> None:
    tree.set_num_vfs(PF_A, 0)
    tree.remove_function(PF_A)


def _vf1_unreadable(tree: SysfsTree) -> None:
    tree.set_attr(tree.vfs(PF_A)[1], "device", "junk\n")


def _vf1_readable(tree: SysfsTree) -> None:
    tree.set_attr(tree.vfs(PF_A)[1], "device", "0x101e\n")


TRANSITIONS = {
    # a new PF: device, deployable, provider, inventory, traits created
    "first-report": Transition(forward=add_pf_a, back=_remove_pf_a),
    # nothing changed: the driver's reads, the conductor's root lookup
    "unchanged": Transition(forward=_nothing, back=_nothing),
    # the newest handles leave: one cycle
    "shrink": Transition(forward=lambda t: t.set_num_vfs(PF_A, 2),
                         back=lambda t: t.set_num_vfs(PF_A, 4)),
    # every VF goes: the pool (deployable and provider) goes, the device stays
    "pool-removed": Transition(forward=lambda t: t.set_num_vfs(PF_A, 0),
                               back=lambda t: t.set_num_vfs(PF_A, 4)),
    # a handle in the middle leaves: the pool is left out, then recreated
    "pool-rebuild": Transition(forward=_vf1_unreadable, back=_vf1_readable, cycles=2),
}


def injection_points(cloud: Cloud, transition: Transition) -> Iterator[tuple[int, int]]:
    """(cycle, request) of every Placement request the transition's cycles make, measured
    on a clean run (which is then undone)."""
    stack = cloud.stack
    counts = []
    transition.forward(cloud.tree)
    for _ in range(transition.cycles):
        mark = stack.placement_log.mark()
        assert run_cycle(stack) is None
        counts.append(len(stack.placement_log.since(mark)))
    assert problems(cloud) == []
    transition.back(cloud.tree)
    assert converge(cloud) == []
    for cycle, count in enumerate(counts):
        for request in range(count):
            yield cycle, request


@pytest.mark.parametrize("name", sorted(TRANSITIONS))
def test_placement_faults_at_every_request_of_a_cycle_heal(cloud: Cloud, name: str) -> None:
    transition = TRANSITIONS[name]
    stack = cloud.stack
    if name == "first-report":  # start without PF A
        _remove_pf_a(cloud.tree)
        assert converge(cloud) == []
    assert problems(cloud) == []
    failures: dict[str, list[str]] = {}
    started = time.monotonic()
    points = list(injection_points(cloud, transition))
    assert len(points) >= 2  # an unchanged cycle: the driver's and the conductor's one read
    for cycle, request in points:
        for kind in FAULT_KINDS:
            transition.forward(cloud.tree)
            for index in range(transition.cycles):
                if index == cycle:
                    stack.placement_faults.fail(request, kind)
                run_cycle(stack)
                stack.placement_faults.clear()
            label = f"{kind} at request {request} of cycle {cycle}"
            if stack.placement_faults.fired:
                _, method, path = stack.placement_faults.fired[-1]
                label += f" ({method} {named(stack, path)})"
            if found := converge(cloud):
                failures[label] = found
            transition.back(cloud.tree)
            if found := converge(cloud):
                failures[label + ", then undoing it"] = found
    fired = {kind for kind, _, _ in stack.placement_faults.fired}
    assert fired == set(FAULT_KINDS)
    report = "\n".join(f"{label}: {found}" for label, found in failures.items())
    assert not failures, (f"{len(failures)} of {len(points) * len(FAULT_KINDS)} faults "
                          f"({time.monotonic() - started:.0f} s) did not heal:\n{report}")


def named(stack: InProcessCloud, path: str) -> str:
    """``path`` with the UUIDs of pool providers replaced by the pools' PF addresses."""
    for name in (*expected(stack), f"{stack.hostname}_{PF_A}"):
        path = path.replace(rp_uuid(name), name.rsplit("_", 1)[-1])
    return path.replace(str(stack.compute_rp_uuid), "<compute>")


@pytest.mark.parametrize("lost", [False, True], ids=["between-cycles", "report-lost"])
def test_a_conductor_restart_during_a_pool_rebuild_heals(cloud: Cloud, lost: bool,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The conductor restarts between the two cycles of a rebuild; or it is down when the
    first one is sent (the agent's RPC times out) and serves it late after its restart,
    as a restarted cyborg-conductor would from its RabbitMQ queue."""
    from cyborg.conf import CONF

    stack = cloud.stack
    _vf1_unreadable(cloud.tree)
    if lost:
        monkeypatch.setattr(CONF, "rpc_response_timeout", 1)
        stack.stop_conductor()
        error = run_cycle(stack)  # the pool is left out: the report is not answered
        assert error is not None and "MessagingTimeout" in error, error
        stack.start_conductor()
        monkeypatch.undo()
        # The restarted conductor serves the queued report in its own thread; let it finish
        # first (two reports at once would share the in-memory Placement database).
        pool = f"{stack.hostname}_{PF_A}"
        deadline = time.monotonic() + 30
        while pool in [d["name"] for d in stack.deployables()] and time.monotonic() < deadline:
            time.sleep(0.2)
    else:
        assert run_cycle(stack) is None  # the pool is left out ...
        (driver,) = stack.agent._rt.acc_drivers
        assert driver.rebuilds == (f"{stack.hostname}_{PF_A}",)
        stack.stop_conductor()  # ... and the conductor restarts before it is put back
        stack.start_conductor()
    assert converge(cloud) == []
    _vf1_readable(cloud.tree)
    assert converge(cloud) == []
