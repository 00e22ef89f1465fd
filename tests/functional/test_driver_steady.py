"""The steady state: an unchanged host costs the driver one Placement request per cycle.

The real agent, conductor and Placement in one process (``harness.InProcessCloud``); its
``RequestLog`` counts every Placement request, the driver's and the conductor's. The
conductor always makes one (``GET /resource_providers?name=<compute node>``); the driver
one more (``GET /resource_providers?in_tree=<compute node uuid>``), whatever the number of
pools, and reads a pool's inventory and traits only when its provider's generation moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cyborg_smartnic.driver import SmartNicDriver
from cyborg_smartnic.hostgen import large
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"


def driver_of(inproc: InProcessCloud) -> SmartNicDriver:
    (driver,) = inproc.agent._rt.acc_drivers
    assert isinstance(driver, SmartNicDriver)
    return driver


def spy_reports(inproc: InProcessCloud, monkeypatch: pytest.MonkeyPatch) -> list[list[Any]]:
    """What the conductor receives: one device list per report."""
    received: list[list[Any]] = []
    real = inproc.conductor.report_data

    def report_data(context: Any, hostname: str, driver_device_list: list[Any]) -> Any:
        received.append(list(driver_device_list))
        return real(context, hostname, driver_device_list)

    monkeypatch.setattr(inproc.conductor, "report_data", report_data)
    return received


def settled(inproc: InProcessCloud) -> None:
    """First report, then the cycle that confirms it against Placement."""
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()


def kinds(entries: list[tuple[str, str, int]], inproc: InProcessCloud) -> list[str]:
    """``METHOD path`` with the compute node's UUID and the pools' UUIDs made readable."""
    names = {rp["uuid"]: rp["name"].rsplit("_", 1)[-1] for rp in inproc.resource_providers()}
    names[str(inproc.compute_rp_uuid)] = "<compute>"
    out = []
    for method, raw, _status in entries:
        path = raw
        for rp, name in names.items():
            path = path.replace(rp, name)
        out.append(f"{method} {path}")
    return out


@pytest.mark.parametrize("pfs", [16, 1])
def test_an_unchanged_cycle_is_one_driver_request_and_only_stubs(
        make_inproc: Callable[..., InProcessCloud], monkeypatch: pytest.MonkeyPatch,
        pfs: int) -> None:
    inproc = make_inproc(smartnic={"audit_interval": 0})
    large(inproc.sysfs_root, pfs=pfs, vfs=4, noise=0)
    settled(inproc)
    assert len(inproc.resource_providers()) == pfs
    before = inproc.provider_view()
    received = spy_reports(inproc, monkeypatch)
    for _ in range(3):
        mark = inproc.placement_log.mark()
        inproc.run_agent_cycle()
        assert kinds(inproc.placement_log.since(mark), inproc) == [
            "GET /resource_providers?in_tree=<compute>",  # the driver: every generation
            f"GET /resource_providers?name={inproc.hostname}",  # the conductor's own
        ]
        assert driver_of(inproc).checked == ()
    assert len(received) == 3
    assert all(len(devices) == pfs and all(d.stub and d.deployable_list == [] for d in devices)
               for devices in received)
    assert inproc.provider_view() == before


def test_an_allocation_costs_two_reads_of_its_pool_and_no_full_report(
        make_inproc: Callable[..., InProcessCloud], monkeypatch: pytest.MonkeyPatch) -> None:
    inproc = make_inproc(smartnic={"audit_interval": 0})
    large(inproc.sysfs_root, pfs=4, vfs=4, noise=0)
    settled(inproc)
    inproc.run_agent_cycle()
    received = spy_reports(inproc, monkeypatch)
    pool = inproc.resource_providers()[2]
    consumer = "a110ca7e-0000-4000-8000-000000000001"
    inproc.claim(consumer, {"allocations": {pool["uuid"]: {"resources": {RC: 2}}}})
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    pf = pool["name"].rsplit("_", 1)[-1]
    assert kinds(inproc.placement_log.since(mark), inproc) == [
        "GET /resource_providers?in_tree=<compute>",
        f"GET /resource_providers/{pf}/inventories",  # its generation moved: compared ...
        f"GET /resource_providers/{pf}/traits",  # ... and found as reported
        f"GET /resource_providers?name={inproc.hostname}",
    ]
    assert driver_of(inproc).checked == (pool["name"],)
    assert all(d.stub for d in received[-1])  # no device went in full
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()  # the new generation is remembered: steady again
    assert len(inproc.placement_log.since(mark)) == 2
    generation = {rp["name"]: rp["generation"] for rp in inproc.resource_providers()}
    inproc.release(consumer)
    # Placement 16 moves a provider's generation when allocations are written, not when
    # they are deleted: nothing to compare after a release
    assert {rp["name"]: rp["generation"] for rp in inproc.resource_providers()} == generation
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert len(inproc.placement_log.since(mark)) == 2
    assert inproc.placement_log.writes(mark) == []
    assert all(d.stub for devices in received for d in devices)


def test_a_restart_with_a_state_file_costs_the_compute_node_lookup_only(
        make_inproc: Callable[..., InProcessCloud], monkeypatch: pytest.MonkeyPatch) -> None:
    inproc = make_inproc(smartnic={"audit_interval": 0})
    large(inproc.sysfs_root, pfs=4, vfs=4, noise=0)
    settled(inproc)
    inproc.run_agent_cycle()
    inproc.restart_agent()
    received = spy_reports(inproc, monkeypatch)
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert kinds(inproc.placement_log.since(mark), inproc) == [
        "GET ", "GET ",  # the new agent's Placement client: version discovery (401, 200)
        f"GET /resource_providers?name={inproc.hostname}",  # the compute node's UUID, once
        "GET /resource_providers?in_tree=<compute>",
        f"GET /resource_providers?name={inproc.hostname}",
    ]
    assert all(d.stub for d in received[-1]) and len(received[-1]) == 4
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert len(inproc.placement_log.since(mark)) == 2


def test_a_changed_pf_goes_in_full_and_the_others_stay_stubs(
        make_inproc: Callable[..., InProcessCloud], monkeypatch: pytest.MonkeyPatch) -> None:
    inproc = make_inproc(smartnic={"audit_interval": 0})
    tree = large(inproc.sysfs_root, pfs=4, vfs=4, noise=0)
    settled(inproc)
    received = spy_reports(inproc, monkeypatch)
    pf = "0000:12:00.0"  # large()'s second PF
    tree.set_num_vfs(pf, 2)
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()  # the change is checked and sent in full once more
    inproc.run_agent_cycle()
    full = [[d.controlpath_id.cpid_info for d in devices if not d.stub] for devices in received]
    assert full == [[pf], [pf], []]
    name = f"{inproc.hostname}_{pf}"
    assert inproc.provider_view()[name]["inventories"][RC]["total"] == 2
    assert len([h for h in inproc.attach_handles() if h["deployable"] == name]) == 2
