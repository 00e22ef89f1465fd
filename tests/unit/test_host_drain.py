"""The pure drain planner (host.drain): which instances must move, and what Nova 34 allows."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cyborg_smartnic.host import drain
from cyborg_smartnic.host.drain import BLOCKED, MIGRATE, CloudView, Holding, Server, Service
from cyborg_smartnic.host.inuse import InUse, VfUser
from cyborg_smartnic.host.steps import (
    DISRUPTION_DRIVER,
    RELOAD_DRIVER,
    SET_HUGEPAGES,
    SET_NUMVFS,
    Plan,
    Step,
)
from tests.unit.test_host_plan import host, make_pf

PF = "0000:3b:00.0"
OTHER_PF = "0000:5e:00.0"
HOST = host(make_pf(PF, num_vfs=4), make_pf(OTHER_PF, "ice", num_vfs=2, netdev="ens2f0"))
VFS = [str(vf.address) for vf in HOST.physical_functions[0].virtual_functions]
OTHER_VFS = [str(vf.address) for vf in HOST.physical_functions[1].virtual_functions]
ENABLED = Service("s1", "node1", "enabled", "up")
TARGET = Service("s2", "node2", "enabled", "up")
ACCEL = {"accel:device_profile": "xdp.medium"}


def numvfs(pf: str = PF, destroys: tuple[str, ...] = tuple(VFS)) -> Step:
    return Step(SET_NUMVFS, pf, "go through 0", 4, 0, pf=pf, destroys_vfs=destroys,
                  disruptive=True)


def reload_ice() -> Step:
    return Step(RELOAD_DRIVER, "ice", "load the DDP package", param="ice",
                  disruption=DISRUPTION_DRIVER, disturbs_pfs=(OTHER_PF,), disruptive=True)


def hugepages() -> Step:
    return Step(SET_HUGEPAGES, "node0 2048kB", "reserve", 0, 64, numa_node=0, size_kb=2048)


def view(*holdings: Holding, servers: tuple[Server, ...] = (),
         others: tuple[Service, ...] = (TARGET,), service: Service = ENABLED) -> CloudView:
    return CloudView("node1", service, others, {s.id: s for s in servers}, holdings)


def server(uid: str = "i1", status: str = "ACTIVE", *, locked: bool = False,
           specs: dict[str, str] | None = None) -> Server:
    return Server(uid, f"vm-{uid}", status, "node1", locked, "m1.small", specs or {})


def arq(vf: str = VFS[0], instance: str = "i1") -> Holding:
    return Holding(instance, vf, "Cyborg ARQ a1")


def port(vf: str = VFS[0], instance: str = "i1", vnic: str = "direct") -> Holding:
    return Holding(instance, vf, "port p1", vnic)


@pytest.mark.parametrize(("steps", "expected"), [
    ((), []),
    ((hugepages(),), []),
    ((numvfs(),), VFS),
    ((numvfs(destroys=(VFS[1],)),), [VFS[1]]),
    ((reload_ice(),), OTHER_VFS),  # a driver reload takes every VF of every PF it names
    ((numvfs(), reload_ice()), VFS + OTHER_VFS),
])
def test_disturbed_vfs(steps: tuple[Step, ...], expected: list[str]) -> None:
    assert list(drain.disturbed_vfs(Plan(steps), HOST)) == expected


# (what the instance is, the clouds' view of it) -> (action, a phrase the reason must contain)
VERDICTS: list[tuple[str, Server | None, tuple[Holding, ...], tuple[Service, ...], str, str]] = [
    ("accelerator flavor", server(specs=ACCEL), (arq(),), (TARGET,), BLOCKED,
     "ForbiddenWithAccelerators"),
    ("accelerator port", server(), (arq(), port(vnic="accelerator-direct")), (TARGET,),
     BLOCKED, "ForbiddenPortsWithAccelerator"),
    ("accelerator-direct-physical port", server(), (port(vnic="accelerator-direct-physical"),),
     (TARGET,), BLOCKED, "@block_port_accelerators"),
    ("locked", server(locked=True), (port(),), (TARGET,), BLOCKED, "InstanceIsLocked"),
    ("shut off", server(status="SHUTOFF"), (port(),), (TARGET,), BLOCKED,
     "InstanceInvalidState"),
    ("no other compute", server(), (port(),), (), BLOCKED, "NoValidHost"),
    ("other compute disabled", server(), (port(),),
     (Service("s2", "node2", "disabled", "up", "maintenance"),), BLOCKED, "NoValidHost"),
    ("other compute down", server(), (port(),), (Service("s2", "node2", "enabled", "down"),),
     BLOCKED, "NoValidHost"),
    ("unknown to Nova", None, (arq(),), (TARGET,), BLOCKED, "Nova has no server i1"),
    ("SR-IOV direct port", server(), (port(),), (TARGET,), MIGRATE, "_check_can_migrate_pci"),
    ("paused, macvtap port", server(status="PAUSED"), (port(vnic="macvtap"),), (TARGET,),
     MIGRATE, "macvtap"),
    ("flavor PCI alias", server(specs={"pci_passthrough:alias": "a1:1"}), (port(),),
     (TARGET,), MIGRATE, "live_migratable"),
]


@pytest.mark.parametrize("case", VERDICTS, ids=[v[0] for v in VERDICTS])
def test_verdict(case: tuple[str, Server | None, tuple[Holding, ...], tuple[Service, ...],
                             str, str]) -> None:
    _, srv, held, others, action, phrase = case
    got, why = drain.verdict(srv, held, view(*held, others=others), "i1")
    assert (got, phrase in why) == (action, True), why


def test_only_instances_holding_a_disturbed_vf_must_move() -> None:
    cloud = view(arq(VFS[0], "i1"), port(VFS[1], "i1"), port(OTHER_VFS[0], "i2"),
                 servers=(server("i1", specs=ACCEL), server("i2")))
    planned = drain.plan_drain(Plan((numvfs(),)), HOST, cloud)
    assert planned.needed and planned.disables
    assert [(m.instance, m.vfs, m.via, m.action) for m in planned.moves] == [
        ("i1", (VFS[0], VFS[1]), ("Cyborg ARQ a1", "port p1"), BLOCKED)]
    assert planned.blocked == planned.moves and planned.migrations == ()
    assert "ForbiddenWithAccelerators" in drain.summary(planned)


def test_a_reload_moves_the_instances_of_every_pf_it_disturbs() -> None:
    cloud = view(port(OTHER_VFS[1], "i2"), servers=(server("i2"),))
    planned = drain.plan_drain(Plan((reload_ice(),)), HOST, cloud)
    assert [(m.instance, m.action) for m in planned.migrations] == [("i2", MIGRATE)]
    assert planned.to_dict()["instances"][0]["vfs"] == [OTHER_VFS[1]]


def test_no_drain_when_no_step_disturbs_a_vf() -> None:
    planned = drain.plan_drain(Plan((hugepages(),)), HOST,
                               view(arq(), servers=(server(specs=ACCEL),)))
    assert (planned.needed, planned.moves) == (False, ())


@pytest.mark.parametrize(("service", "disables", "ours"), [
    (ENABLED, True, False),
    (Service("s1", "node1", "disabled", "up", drain.reason("host apply of h.yaml")), True, True),
    (Service("s1", "node1", "disabled", "up", "hardware ticket 42"), False, False),
    (Service("s1", "node1", "disabled", "up", None), False, False),
])
def test_whose_disabled_service(service: Service, disables: bool, ours: bool) -> None:
    planned = drain.plan_drain(Plan((numvfs(),)), HOST, view(service=service))
    assert (planned.disables, service.ours) == (disables, ours)


def test_exempt_drops_only_the_witnesses_of_vfs_instances_hold() -> None:
    in_use = InUse((VfUser(VFS[0], "Cyborg ARQ a1"), VfUser(VFS[2], "held by pid 7 (dpdk)")),
                   notes=("n",), blind=None)
    left = drain.exempt(in_use, view(arq(VFS[0])))
    assert left.users == (VfUser(VFS[2], "held by pid 7 (dpdk)"),)
    assert left.notes == ("n",)


def _arq(**kw: Any) -> SimpleNamespace:
    base = {"hostname": "node1", "state": "Bound", "attach_handle_type": "PCI",
            "instance_uuid": "i1", "uuid": "a1",
            "attach_handle_info": {"domain": "0000", "bus": "3b", "device": "02",
                                   "function": "1"}}
    return SimpleNamespace(**{**base, **kw})


def test_arq_holdings_keeps_bound_pci_arqs_of_this_host() -> None:
    arqs = [_arq(), _arq(hostname="node2"), _arq(state="Initial"), _arq(instance_uuid=None),
            _arq(attach_handle_info={"bus": "x"}), _arq(attach_handle_type="TEST_PCI")]
    assert drain.arq_holdings(arqs, "node1") == (
        Holding("i1", "0000:3b:02.1", "Cyborg ARQ a1"),)


def test_port_holdings_reads_the_binding_profiles_pci_slot() -> None:
    def p(**kw: Any) -> SimpleNamespace:
        base = {"id": "p1", "binding_host_id": "node1", "device_id": "i1",
                "binding_vnic_type": "direct", "binding_profile": {"pci_slot": "0000:3B:02.1"}}
        return SimpleNamespace(**{**base, **kw})

    ports = [p(), p(binding_host_id="node2"), p(binding_profile={}), p(device_id="")]
    assert drain.port_holdings(ports, "node1") == (
        Holding("i1", "0000:3b:02.1", "port p1", "direct"),)
