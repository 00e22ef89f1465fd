"""Plan the drain of a host through Nova before a step disturbs its VFs (pure).

A step that destroys VFs, reloads a driver, resets firmware or reboots takes the VFs of every
PF it disturbs away from the instances holding them. ``host apply --drain`` first disables
this host's nova-compute (no new instance lands here) and live-migrates the instances that
hold such a VF; an instance Nova will not live-migrate blocks the drain, and the apply stops
before it touches anything. This module decides, from the plan, the host and what the
clouds say (``CloudView``, read by ``host.drain_nova``), which instances must move and
whether Nova allows it, naming the rule of Nova 34 that forbids it when it does not.

Rules read in nova 34.0.0: ``nova/compute/api.py`` ``API.live_migrate`` and its decorators,
``nova/conductor/tasks/live_migrate.py`` ``_check_can_migrate_pci``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.steps import DISRUPTION_NONE, DISRUPTION_VFS, Plan
from cyborg_smartnic.pci import PciAddress

REASON_PREFIX = "cyborg-smartnic drain:"
MIGRATE = "live-migrate"
BLOCKED = "BLOCKED"
MOVABLE_STATES = ("ACTIVE", "PAUSED")
ACCEL_SPEC = "accel:device_profile"
ALIAS_SPEC = "pci_passthrough:alias"
ACCELERATOR_VNIC_TYPES = ("accelerator-direct", "accelerator-direct-physical")
_BOUND_ARQ_STATES = ("Bound", "BindStarted")

# What Nova 34 answers, and where, for each reason it refuses a live migration.
RULE_ACCELERATORS = ("accelerator server (flavor {flavor}, accel:device_profile={profile}): "
                     "Nova 34 refuses its live migration (compute API live_migrate "
                     "@block_accelerators: ForbiddenWithAccelerators)")
RULE_PORT_ACCELERATORS = ("port {port} is {vnic}: Nova 34 refuses its live migration "
                          "(compute API live_migrate @block_port_accelerators: "
                          "ForbiddenPortsWithAccelerator)")
RULE_LOCKED = ("the server is locked: Nova 34 refuses its live migration "
               "(@check_instance_lock: InstanceIsLocked, 409); unlock it first")
RULE_STATE = ("the server is {status}: Nova 34 live-migrates only ACTIVE or PAUSED servers "
              "(@check_instance_state: InstanceInvalidState, 409); start it, or cold-migrate "
              "it yourself")
RULE_NO_TARGET = ("no other nova-compute is enabled and up: Nova's scheduler has nowhere to "
                  "put it (NoValidHost)")
RULE_UNKNOWN = ("Nova has no server {instance} although {via} is bound to it on this host: "
                "clean up that binding first")
RULE_PCI_PORT = ("SR-IOV port(s) ({vnics}): Nova 34 live-migrates them if Neutron has "
                 "binding-extended and both hosts support VIF PCI allocations (conductor "
                 "_check_can_migrate_pci), onto a host with a free VF on the same physnet")
NOTE_ALIAS = ("flavor {flavor} also asks for {alias!r} (pci_passthrough:alias): Nova's "
              "conductor refuses unless that alias is live_migratable "
              "(_check_can_migrate_pci: MigrationPreCheckError)")


@dataclass(frozen=True, slots=True)
class Service:
    """A nova-compute service as the compute API lists it."""

    id: str
    host: str
    status: str  # enabled / disabled
    state: str  # up / down
    disabled_reason: str | None = None

    @property
    def ours(self) -> bool:
        """Disabled by an earlier drain of this tool (which then re-enables it)."""
        return self.status == "disabled" and (self.disabled_reason or "").startswith(
            REASON_PREFIX)


@dataclass(frozen=True, slots=True)
class Server:
    id: str
    name: str
    status: str
    host: str | None
    locked: bool = False
    flavor: str = ""
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Holding:
    """An instance holds a VF of this host: through a bound ARQ or a port binding."""

    instance: str
    vf: str
    via: str  # "Cyborg ARQ <uuid>" / "port <id>"
    vnic_type: str | None = None  # the port's vnic type; None for a flavor's ARQ


@dataclass(frozen=True, slots=True)
class CloudView:
    """What Nova, Cyborg and Neutron say about this host."""

    hostname: str
    service: Service | None
    others: tuple[Service, ...]  # every other nova-compute
    servers: Mapping[str, Server]  # by id: the servers on this host and the ones held VFs name
    holdings: tuple[Holding, ...]

    @property
    def targets(self) -> tuple[Service, ...]:
        """The nova-computes that could receive a live-migrated server."""
        return tuple(s for s in self.others if s.status == "enabled" and s.state == "up")


@dataclass(frozen=True, slots=True)
class Move:
    instance: str
    name: str
    vfs: tuple[str, ...]
    via: tuple[str, ...]
    action: str  # MIGRATE / BLOCKED
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "name": self.name, "vfs": list(self.vfs),
                "via": list(self.via), "action": self.action, "why": self.why}


@dataclass(frozen=True, slots=True)
class DrainPlan:
    """The drain that comes before the steps: the service to disable and who must move."""

    hostname: str
    needed: bool  # some step disturbs VFs (or worse): the drain runs
    service: Service | None
    moves: tuple[Move, ...] = ()
    disturbed_vfs: tuple[str, ...] = ()

    @property
    def blocked(self) -> tuple[Move, ...]:
        return tuple(m for m in self.moves if m.action == BLOCKED)

    @property
    def migrations(self) -> tuple[Move, ...]:
        return tuple(m for m in self.moves if m.action == MIGRATE)

    @property
    def disables(self) -> bool:
        """The drain disables the service (it is enabled, or an earlier drain disabled it)."""
        return self.service is not None and (self.service.status == "enabled"
                                             or self.service.ours)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.hostname, "needed": self.needed,
                "service": None if self.service is None else {
                    "id": self.service.id, "status": self.service.status,
                    "state": self.service.state, "disabled_reason": self.service.disabled_reason},
                "disables_service": self.needed and self.disables,
                "disturbed_vfs": list(self.disturbed_vfs),
                "instances": [m.to_dict() for m in self.moves],
                "blocked": len(self.blocked)}


def reason(what: str) -> str:
    """The disabled reason the drain sets: names the tool, so a later drain recognises it."""
    return f"{REASON_PREFIX} {what}"


def disturbed_vfs(plan: Plan, host: Host) -> tuple[str, ...]:
    """Every VF the plan's actions destroy or take down: the VFs they name, and every VF of
    each PF a driver reload, firmware reset or reboot disturbs."""
    found: dict[str, None] = {}
    pfs = {str(pf.address): pf for pf in host.physical_functions}
    for step in plan.actions:
        found.update(dict.fromkeys(step.destroys_vfs))
        if step.disruption in (DISRUPTION_NONE, DISRUPTION_VFS):
            continue
        for address in (*step.disturbs_pfs, *((step.pf,) if step.pf else ())):
            pf = pfs.get(address)
            if pf is not None:
                found.update(dict.fromkeys(str(vf.address) for vf in pf.virtual_functions))
    return tuple(found)


def arq_holdings(arqs: Iterable[Any], hostname: str) -> tuple[Holding, ...]:
    """The VFs bound ARQs hold on ``hostname`` (openstacksdk ``AcceleratorRequest``s); a
    request with an unreadable handle is left to the guard, which refuses blind."""
    found = []
    for arq in arqs:
        if (getattr(arq, "hostname", None) != hostname
                or getattr(arq, "state", None) not in _BOUND_ARQ_STATES
                or getattr(arq, "attach_handle_type", None) != "PCI"
                or not getattr(arq, "instance_uuid", None)):
            continue
        info = getattr(arq, "attach_handle_info", None) or {}
        try:
            address = PciAddress(int(info["domain"], 16), int(info["bus"], 16),
                                 int(info["device"], 16), int(info["function"], 16))
        except (KeyError, TypeError, ValueError):
            continue
        found.append(Holding(str(arq.instance_uuid), str(address),
                             f"Cyborg ARQ {getattr(arq, 'uuid', '?')}"))
    return tuple(found)


def port_holdings(ports: Iterable[Any], hostname: str) -> tuple[Holding, ...]:
    """The VFs Neutron ports bound on ``hostname`` carry (``binding:profile`` ``pci_slot``,
    written by Nova for SR-IOV and accelerator ports alike)."""
    found = []
    for port in ports:
        profile = getattr(port, "binding_profile", None) or {}
        slot = profile.get("pci_slot") if isinstance(profile, Mapping) else None
        device = getattr(port, "device_id", None)
        if getattr(port, "binding_host_id", None) != hostname or not slot or not device:
            continue
        try:
            address = str(PciAddress.parse(str(slot)))
        except ValueError:
            address = str(slot)
        found.append(Holding(str(device), address, f"port {port.id}",
                             getattr(port, "binding_vnic_type", None) or "normal"))
    return tuple(found)


def held_vfs(view: CloudView) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.vf for h in view.holdings))


def exempt(in_use: InUse, view: CloudView) -> InUse:
    """``in_use`` without the witnesses of VFs that instances hold: the drain moves those
    instances first, so their VFs must not refuse the plan's steps. The executor's guard
    still re-checks every VF with fresh witnesses right before each write."""
    held = set(held_vfs(view))
    return dataclasses.replace(in_use, users=tuple(u for u in in_use.users
                                                   if u.address not in held))


def plan_drain(plan: Plan, host: Host, view: CloudView) -> DrainPlan:
    """Which instances must move before ``plan`` runs, and whether Nova lets them."""
    disturbed = disturbed_vfs(plan, host)
    needed = bool(disturbed) or plan.disruption not in (DISRUPTION_NONE, DISRUPTION_VFS)
    hit = set(disturbed)
    by_instance: dict[str, list[Holding]] = {}
    for holding in view.holdings:
        if holding.vf in hit:
            by_instance.setdefault(holding.instance, []).append(holding)
    moves = tuple(_move(instance, held, view) for instance, held in sorted(by_instance.items()))
    return DrainPlan(view.hostname, needed, view.service, moves, disturbed)


def _move(instance: str, held: list[Holding], view: CloudView) -> Move:
    server = view.servers.get(instance)
    vfs = tuple(sorted(dict.fromkeys(h.vf for h in held)))
    via = tuple(dict.fromkeys(h.via for h in held))
    name = server.name if server is not None else "?"
    action, why = verdict(server, held, view, instance)
    return Move(instance, name, vfs, via, action, why)


def verdict(server: Server | None, held: Iterable[Holding], view: CloudView,
            instance: str = "") -> tuple[str, str]:
    """(MIGRATE or BLOCKED, why), checked in the order Nova's API checks them."""
    held = tuple(held)
    if server is None:
        return BLOCKED, RULE_UNKNOWN.format(instance=instance,
                                            via=", ".join(h.via for h in held))
    profile = server.extra_specs.get(ACCEL_SPEC)
    if profile:
        return BLOCKED, RULE_ACCELERATORS.format(flavor=server.flavor or "?", profile=profile)
    accel_port = next((h for h in held if h.vnic_type in ACCELERATOR_VNIC_TYPES), None)
    if accel_port is not None:
        return BLOCKED, RULE_PORT_ACCELERATORS.format(port=accel_port.via.removeprefix("port "),
                                                      vnic=accel_port.vnic_type)
    if server.locked:
        return BLOCKED, RULE_LOCKED
    if server.status not in MOVABLE_STATES:
        return BLOCKED, RULE_STATE.format(status=server.status)
    if not view.targets:
        return BLOCKED, RULE_NO_TARGET
    vnics = sorted({h.vnic_type for h in held if h.vnic_type})
    why = RULE_PCI_PORT.format(vnics=", ".join(vnics)) if vnics else (
        "no rule of Nova 34 forbids it")
    alias = server.extra_specs.get(ALIAS_SPEC)
    if alias:
        why += "; " + NOTE_ALIAS.format(flavor=server.flavor or "?", alias=alias)
    return MIGRATE, why


def summary(drain: DrainPlan) -> str:
    """One line naming what blocks the drain."""
    return "; ".join(f"{m.instance} ({m.name}): {m.why}" for m in drain.blocked)
