"""Drift behind the driver's back heals without a periodic full report.

Placement is changed directly (a trait removed, an inventory total changed, a provider
deleted) or a row is deleted from Cyborg's database; the real agent, conductor and
Placement (``harness.InProcessCloud``) must then hold exactly what the host has again, as
docs/driver.md ("Drift") says: Placement-side drift is seen in the next cycle (its
provider's generation moved) and the pool is rebuilt the cycle after; Cyborg-side loss is
healed by the audit (one PF in full every ``[smartnic] audit_interval`` cycles).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cyborg_smartnic.driver import SmartNicDriver
from cyborg_smartnic.hostgen import large
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
PF = "0000:12:00.0"  # large()'s second PF


def driver_of(inproc: InProcessCloud) -> SmartNicDriver:
    (driver,) = inproc.agent._rt.acc_drivers
    assert isinstance(driver, SmartNicDriver)
    return driver


@pytest.fixture
def host(make_inproc: Callable[..., InProcessCloud]) -> InProcessCloud:
    inproc = make_inproc(smartnic={"audit_interval": 0})
    large(inproc.sysfs_root, pfs=3, vfs=4, noise=0)
    for _ in range(3):
        inproc.run_agent_cycle()
    return inproc


def everything(inproc: InProcessCloud) -> dict[str, Any]:
    """Placement's and Cyborg's view of the host (generations and ids left out)."""
    view = inproc.provider_view()
    for rp in view.values():
        del rp["uuid"]
    return {"placement": view,
            "deployables": [(d["name"], d["num_accelerators"], d["rp_uuid"])
                            for d in inproc.deployables()],
            "handles": [(h["deployable"], h["attach_info"]) for h in inproc.attach_handles()]}


def provider(inproc: InProcessCloud, pf: str = PF) -> dict[str, Any]:
    name = f"{inproc.hostname}_{pf}"
    (rp,) = [rp for rp in inproc.resource_providers() if rp["name"] == name]
    return rp


def heals(inproc: InProcessCloud, before: dict[str, Any], name: str) -> None:
    """The next cycle sees the drift and leaves the pool out; the one after recreates it."""
    inproc.run_agent_cycle()
    driver = driver_of(inproc)
    assert driver.rebuilds == (name,)
    inproc.run_agent_cycle()
    assert everything(inproc) == before
    inproc.run_agent_cycle()  # and it stays healed, back to one request a cycle
    mark = inproc.placement_log.mark()
    inproc.run_agent_cycle()
    assert len(inproc.placement_log.since(mark)) == 2
    assert driver.unchanged == ("0000:10:00.0", PF, "0000:14:00.0")


def test_a_trait_removed_in_placement_is_restored(host: InProcessCloud) -> None:
    before = everything(host)
    rp = provider(host)
    base = f"/resource_providers/{rp['uuid']}/traits"
    traits = host.placement.get(base, expect=200).json()["traits"]
    assert "CUSTOM_SMARTNIC_ESWITCH_LEGACY" in traits or traits
    victim = sorted(t for t in traits if t != "OWNER_CYBORG")[0]
    host.placement.put(base, {"traits": [t for t in traits if t != victim],
                              "resource_provider_generation": rp["generation"]}, expect=200)
    assert victim not in host.provider_view()[rp["name"]]["traits"]
    heals(host, before, rp["name"])


def test_an_inventory_total_changed_in_placement_is_restored(host: InProcessCloud) -> None:
    before = everything(host)
    rp = provider(host)
    host.placement.put(f"/resource_providers/{rp['uuid']}/inventories/{RC}", {
        "total": 64, "max_unit": 64, "resource_provider_generation": rp["generation"]},
        expect=200)
    assert host.provider_view()[rp["name"]]["inventories"][RC]["total"] == 64
    heals(host, before, rp["name"])


def test_a_provider_deleted_from_placement_is_recreated(host: InProcessCloud) -> None:
    before = everything(host)
    rp = provider(host)
    host.placement.delete(f"/resource_providers/{rp['uuid']}", expect=204)
    assert rp["name"] not in host.provider_view()
    heals(host, before, rp["name"])


def test_drift_on_a_pool_in_use_waits_until_it_is_free(host: InProcessCloud) -> None:
    """A pool with allocations is not rebuilt (that would delete its handles): its PF is a
    stub, left exactly as Cyborg has it, until the allocations go; then it is rebuilt."""
    before = everything(host)
    rp = provider(host)
    consumer = "d81f0000-0000-4000-8000-000000000001"
    host.claim(consumer, {"allocations": {rp["uuid"]: {"resources": {RC: 1}}}})
    rp = provider(host)
    host.placement.put(f"/resource_providers/{rp['uuid']}/inventories/{RC}", {
        "total": 64, "max_unit": 64, "resource_provider_generation": rp["generation"]},
        expect=200)
    driver = driver_of(host)
    for _ in range(2):
        host.run_agent_cycle()
        assert driver.stubs == (PF,) and driver.rebuilds == ()
    host.release(consumer)
    host.run_agent_cycle()
    assert driver.stubs == () and driver.rebuilds == (rp["name"],)
    host.run_agent_cycle()
    after = everything(host)
    assert after == before


def test_an_attach_handle_deleted_from_cyborg_is_recreated_by_the_audit(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    from cyborg import context
    from cyborg.objects.attach_handle import AttachHandle
    from cyborg.objects.deployable import Deployable
    from cyborg.objects.driver_objects.driver_device import DriverDevice

    inproc = make_inproc(smartnic={"audit_interval": 2})
    large(inproc.sysfs_root, pfs=3, vfs=4, noise=0)
    for _ in range(3):
        inproc.run_agent_cycle()
    before = everything(inproc)
    ctx = context.get_admin_context()
    (dep,) = [d for d in Deployable.list(ctx) if d.name == f"{inproc.hostname}_{PF}"]
    handles = [ah for ah in AttachHandle.list(ctx) if ah.deployable_id == dep.id]
    handles[1].destroy(ctx)
    # and a whole deployable of another PF, with its rows (as the conductor deletes one)
    (other,) = [
        d for dev in DriverDevice.list(ctx, inproc.hostname)
        if dev.controlpath_id.cpid_info == "0000:14:00.0" for d in dev.deployable_list]
    (row,) = [d for d in Deployable.list(ctx) if d.name == other.name]
    other.destroy(ctx, row.device_id)
    assert everything(inproc) != before
    driver = driver_of(inproc)
    audited = []
    for _ in range(2 * 3):
        inproc.run_agent_cycle()
        audited.append(driver.audited)
        assert driver.rebuilds == ()  # Placement did not change: nothing is rebuilt
    assert {PF, "0000:14:00.0"} <= set(audited)
    assert everything(inproc) == before


def test_without_the_audit_cyborg_side_loss_stays(host: InProcessCloud) -> None:
    """The documented limit: with ``audit_interval = 0`` nothing shows the driver that
    Cyborg lost a row (Placement did not change), so it is not recreated."""
    from cyborg import context
    from cyborg.objects.attach_handle import AttachHandle

    before = everything(host)
    ctx = context.get_admin_context()
    AttachHandle.list(ctx)[0].destroy(ctx)
    for _ in range(3):
        host.run_agent_cycle()
    assert len(everything(host)["handles"]) == len(before["handles"]) - 1
