"""The discovery model plus configuration, mapped to what the driver reports to Cyborg (pure).

One ``DriverDevice`` per physical function; one pooled ``DriverDeployable`` (= one Placement
resource provider) per VF pool on that PF, with one ``PCI`` attach handle per VF. Everything
is sorted and every attribute key is derived from its value (``trait_<NAME>``), so an unchanged
host gives a byte-identical report and a change gives the conductor a minimal diff: the
conductor diffs devices by ``cpid_info``, deployables by ``name``, attributes by ``key`` and
attach handles by ``attach_info`` (cyborg/conductor/manager.py).

The work happens on frozen ``*Spec`` values (``plan_report``); ``to_driver_devices`` turns
them into Cyborg's versioned objects at the edge and ``report_to_dicts`` into plain data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic import traits as names
from cyborg_smartnic.discovery.model import Host, PhysicalFunction, VirtualFunction
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.pools import PoolSpec, ReportConfig

DEVICE_TYPE = "NIC"
CPID_TYPE = "PCI"
ATTACH_TYPE = "PCI"
DRIVER_NAME = "smartnic"
RC_KEY = "rc"
TRAIT_KEY_PREFIX = "trait_"
MAX_RP_NAME = 200  # Placement's limit on resource-provider names (Cyborg's column allows 255)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


@dataclass(frozen=True, slots=True)
class DeployableSpec:
    """One VF pool on one PF: a Cyborg deployable and a Placement resource provider."""

    name: str
    pool: str | None  # None for the PF's default pool
    resource_class: str
    traits: tuple[str, ...]  # sorted
    physnet: str | None
    vf_addresses: tuple[str, ...]  # sorted
    attach_infos: tuple[str, ...]  # sorted, one per VF
    num_accelerators: int

    @property
    def attributes(self) -> tuple[tuple[str, str], ...]:
        """``rc`` plus one ``trait_<NAME>`` per trait: keys never renumber on a change."""
        return ((RC_KEY, self.resource_class),
                *((TRAIT_KEY_PREFIX + trait, trait) for trait in self.traits))


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One PF: a Cyborg device keyed by its PCI address (``cpid_info``)."""

    address: str
    vendor: str  # PCI vendor id, 4-digit lowercase hex
    model: str
    std_board_info: str
    deployables: tuple[DeployableSpec, ...]  # sorted by name


def deployable_name(hostname: str, pf_address: str, pool: str | None = None) -> str:
    """``<host>_<pf-address>[_<pool>]``, safe for Placement and unique cloud-wide.

    Characters outside ``[A-Za-z0-9_.:-]`` become ``_``; a name that had to be changed that
    way, or is longer than Placement's 200 characters, ends in ``_`` + 8 hex digits of a hash
    of the unchanged name, so two different inputs can never meet in one name.
    """
    raw = "_".join(part for part in (hostname, pf_address, pool) if part)
    name = _NAME_UNSAFE.sub("_", raw)
    if name != raw or len(name) > MAX_RP_NAME:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        name = name[: MAX_RP_NAME - len(digest) - 1] + "_" + digest
    return name


def attach_info(vf_address: str, physnet: str | None) -> str:
    """Byte for byte ``cyborg.accelerator.common.utils.pci_str_to_json(address, physnet)``:
    the PCI fields (plus ``physical_network`` when known) as JSON with sorted keys. The
    conductor matches attach handles by this exact string; Nova reads the physnet from it."""
    fields = PciAddress.parse(vf_address).attach_fields()
    if physnet:
        fields["physical_network"] = physnet
    return json.dumps(fields, sort_keys=True)


def board_info(pf: PhysicalFunction) -> str:
    """Stable identity of the board as JSON with sorted keys (``std_board_info``)."""
    info: dict[str, Any] = {
        "vendor_id": pf.vendor_id,
        "device_id": pf.device_id,
        "subsystem_vendor_id": pf.subsystem_vendor_id,
        "subsystem_device_id": pf.subsystem_device_id,
        "vendor": pf.vendor,
        "model": pf.model,
        "model_key": pf.model_key,
        "numa_node": pf.numa_node,
        "serial": pf.serial,
        "firmware_version": pf.firmware.version,
        "total_vfs": pf.total_vfs,
    }
    return json.dumps(info, sort_keys=True)


def pool_traits(pf: PhysicalFunction, physnet: str | None, vfs: Sequence[VirtualFunction],
                extra: Iterable[str]) -> tuple[str, ...]:
    """The traits of one pool (docs/architecture.md, "The Placement model"), sorted."""
    found = {names.OWNER_CYBORG, names.vendor_trait(pf.vendor), names.model_trait(pf.model_key)}
    if physnet:
        found.add(names.physnet_trait(physnet))
    if pf.eswitch_mode:
        found.add(names.eswitch_trait(pf.eswitch_mode))
    if pf.firmware.mode:
        found.add(names.firmware_trait(pf.firmware.mode))
    drivers = {vf.driver for vf in vfs}
    shared = drivers.pop() if len(drivers) == 1 else None
    if shared:
        found.add(names.vf_driver_trait(shared))
    found.update(extra)
    return tuple(sorted(found))


def _claims(pf: PhysicalFunction, pools: Sequence[PoolSpec]) -> dict[str, frozenset[int]]:
    """VF indexes of ``pf`` per explicit pool; a VF in two pools is a configuration error."""
    present = frozenset(vf.index for vf in pf.virtual_functions)
    claims: dict[str, frozenset[int]] = {}
    owner: dict[int, str] = {}
    for pool in pools:
        indexes = pool.claims(pf) & present
        for index in sorted(indexes):
            if index in owner:
                raise ConfigError(
                    option=f"[smartnic_pool:{pool.name}] devices",
                    reason=f"VF {index} of {pf.address} ({pf.netdev or 'no netdev'}) is "
                           f"already in pool {owner[index]!r}; a VF can be in one pool only")
            owner[index] = pool.name
        if indexes:
            claims[pool.name] = indexes
    return claims


def _deployable(config: ReportConfig, pf: PhysicalFunction, pool: PoolSpec | None,
                vfs: Sequence[VirtualFunction]) -> DeployableSpec:
    physnet = (pool.physnet if pool and pool.physnet else None) or pf.physnet
    extra = (*config.extra_traits, *(pool.traits if pool else ()))
    addresses = tuple(str(vf.address) for vf in sorted(vfs, key=lambda vf: vf.address))
    return DeployableSpec(
        name=deployable_name(config.hostname, str(pf.address), pool.name if pool else None),
        pool=pool.name if pool else None,
        resource_class=(pool.resource_class if pool and pool.resource_class
                        else config.resource_class),
        traits=pool_traits(pf, physnet, vfs, extra),
        physnet=physnet,
        vf_addresses=addresses,
        attach_infos=tuple(sorted(attach_info(address, physnet) for address in addresses)),
        num_accelerators=len(addresses),
    )


def plan_device(pf: PhysicalFunction, config: ReportConfig) -> DeviceSpec:
    """One PF's device with its pools. Empty pools are left out: Placement refuses an
    inventory whose total is 0, and a pool that lost all its VFs must disappear."""
    by_name = {pool.name: pool for pool in config.pools}
    claims = _claims(pf, config.pools)
    claimed = frozenset().union(*claims.values()) if claims else frozenset()
    deployables = []
    default_vfs = [vf for vf in pf.virtual_functions if vf.index not in claimed]
    if default_vfs:
        deployables.append(_deployable(config, pf, None, default_vfs))
    for pool_name, indexes in claims.items():
        vfs = [vf for vf in pf.virtual_functions if vf.index in indexes]
        deployables.append(_deployable(config, pf, by_name[pool_name], vfs))
    return DeviceSpec(
        address=str(pf.address), vendor=pf.vendor_id, model=pf.model,
        std_board_info=board_info(pf),
        deployables=tuple(sorted(deployables, key=lambda d: d.name)))


def plan_report(host: Host, config: ReportConfig) -> tuple[DeviceSpec, ...]:
    """Every PF of ``host`` as a ``DeviceSpec``, sorted by PCI address; checks name clashes."""
    devices = tuple(plan_device(pf, config)
                    for pf in sorted(host.physical_functions, key=lambda pf: pf.address))
    seen: dict[str, str] = {}
    for device in devices:
        for deployable in device.deployables:
            if deployable.name in seen:  # only reachable through hash-truncated names
                raise ConfigError(option="[smartnic] pools",
                                  reason=f"deployable name {deployable.name!r} is used twice")
            seen[deployable.name] = device.address
    return devices


# -- Never drop what an instance is using ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hold:
    """A pool kept reporting attach handles of VFs that vanished, because it is in use."""

    deployable: str
    vanished: tuple[str, ...]  # attach_info of each kept handle whose VF is gone
    used: int | None  # Placement usage of the pool's RP; None when it could not be read
    frozen_total: int  # num_accelerators reported while held


def vanished_handles(previous: Iterable[DeviceSpec],
                     current: Iterable[DeviceSpec]) -> dict[str, tuple[str, ...]]:
    """Per deployable of ``previous``: the attach handles ``current`` no longer has."""
    now = {dep.name: set(dep.attach_infos) for dev in current for dep in dev.deployables}
    lost = {}
    for dev in previous:
        for dep in dev.deployables:
            gone = tuple(info for info in dep.attach_infos if info not in now.get(dep.name, ()))
            if gone:
                lost[dep.name] = gone
    return lost


def hold_in_use(previous: Sequence[DeviceSpec], current: Sequence[DeviceSpec],
                usage: Mapping[str, int | None]) -> tuple[tuple[DeviceSpec, ...], tuple[Hold, ...]]:
    """``current``, amended so no attach handle an instance may hold is deleted.

    Cyborg's conductor deletes an attach handle that leaves the report even when it is in use,
    after which every read of the bound ARQ fails (``Attach Handle ... not found``), and it
    deletes a deployable's DB row before Placement refuses to delete a provider that still has
    allocations. So for each pool of ``previous`` that lost handles (``vanished_handles``),
    ``usage[name]`` (its resource provider's Placement usage) decides:

    * ``0``: nothing is allocated; the pool shrinks or goes, as discovered.
    * ``> 0``: the pool keeps the vanished handles and reports ``num_accelerators = usage``,
      which leaves no free capacity, so nothing new lands on it (the conductor binds any free
      handle, possibly a vanished one) until its allocations are released; handles it keeps
      are withheld from any other pool meanwhile.
    * ``None`` (usage unknown): the pool is reported exactly as it was last time.
    """
    lost = vanished_handles(previous, current)
    prev_deps = {dep.name: (dev, dep) for dev in previous for dep in dev.deployables}
    cur_deps = {dep.name: dep for dev in current for dep in dev.deployables}
    replaced: dict[str, DeployableSpec] = {}
    holds = []
    for name, gone in sorted(lost.items()):
        used = usage.get(name)
        if used == 0:
            continue
        prev_dep = prev_deps[name][1]
        if used is None:
            held = prev_dep
        else:
            base = cur_deps.get(name, prev_dep)
            infos = tuple(sorted({*base.attach_infos, *gone}))
            held = DeployableSpec(
                name=name, pool=base.pool, resource_class=base.resource_class,
                traits=base.traits, physnet=base.physnet,
                vf_addresses=tuple(sorted({*base.vf_addresses, *map(_address_of, gone)})),
                attach_infos=infos, num_accelerators=min(used, len(infos)))
        replaced[name] = held
        holds.append(Hold(deployable=name, vanished=gone, used=used,
                          frozen_total=held.num_accelerators))
    if not replaced:
        return tuple(current), ()
    kept = {info for dep in replaced.values() for info in dep.attach_infos}
    devices = {dev.address: dev for dev in current}
    for name, held in replaced.items():
        prev_dev = prev_deps[name][0]
        dev = devices.get(prev_dev.address, DeviceSpec(
            address=prev_dev.address, vendor=prev_dev.vendor, model=prev_dev.model,
            std_board_info=prev_dev.std_board_info, deployables=()))
        others = tuple(d for d in dev.deployables if d.name != name)
        devices[dev.address] = DeviceSpec(
            address=dev.address, vendor=dev.vendor, model=dev.model,
            std_board_info=dev.std_board_info,
            deployables=tuple(sorted((*others, held), key=lambda d: d.name)))
    amended = []
    for address in sorted(devices, key=PciAddress.parse):
        dev = devices[address]
        deployables = []
        for dep in dev.deployables:
            trimmed = dep if dep.name in replaced else _without(dep, kept)
            if trimmed is not None:
                deployables.append(trimmed)
        amended.append(DeviceSpec(address=dev.address, vendor=dev.vendor, model=dev.model,
                                  std_board_info=dev.std_board_info,
                                  deployables=tuple(deployables)))
    return tuple(amended), tuple(holds)


def _without(dep: DeployableSpec, withheld: set[str]) -> DeployableSpec | None:
    """``dep`` minus the attach handles another pool is holding (None when nothing is left)."""
    infos = tuple(info for info in dep.attach_infos if info not in withheld)
    if len(infos) == len(dep.attach_infos):
        return dep
    if not infos:
        return None
    addresses = tuple(sorted(_address_of(info) for info in infos))
    return DeployableSpec(name=dep.name, pool=dep.pool, resource_class=dep.resource_class,
                          traits=dep.traits, physnet=dep.physnet, vf_addresses=addresses,
                          attach_infos=infos, num_accelerators=len(infos))


# -- Removing attach handles the way the conductor can ---------------------------------------
# Cyborg 17.0.0's conductor removes an attach handle with AttachHandle.get_ah_by_depid_attachinfo,
# whose DB filter ignores attach_info: it deletes the deployable's newest handle row instead of
# the one that left the report. So a report may only take away the newest rows. The driver
# keeps a ledger of the order in which the conductor created each deployable's rows: a
# deployable created with its handles (in report order) gives one row at a time; handles added
# to an existing deployable arrive as one batch in set order (unknown within the batch).
Ledger = Mapping[str, tuple[tuple[str, ...], ...]]  # name -> row batches, oldest first


def removal_is_safe(batches: Sequence[Sequence[str]] | None, removed: Iterable[str]) -> bool:
    """True when the rows holding ``removed`` are exactly the newest ``len(removed)`` rows."""
    remaining = set(removed)
    if not remaining:
        return True
    if batches is None:
        return False
    for batch in reversed(batches):
        if not remaining:
            break
        if not set(batch) <= remaining:
            return False
        remaining -= set(batch)
    return not remaining


def unsafe_removals(previous: Iterable[DeviceSpec], current: Iterable[DeviceSpec],
                    ledger: Ledger) -> tuple[str, ...]:
    """Deployables in both reports whose lost handles the conductor would remove wrongly."""
    before = {dep.name: dep for dev in previous for dep in dev.deployables}
    unsafe = []
    for dev in current:
        for dep in dev.deployables:
            old = before.get(dep.name)
            if old is None:
                continue
            removed = set(old.attach_infos) - set(dep.attach_infos)
            if not removal_is_safe(ledger.get(dep.name), removed):
                unsafe.append(dep.name)
    return tuple(sorted(unsafe))


def without_deployables(devices: Iterable[DeviceSpec], names: Iterable[str]
                        ) -> tuple[DeviceSpec, ...]:
    """``devices`` minus the named deployables (their devices stay)."""
    drop = set(names)
    return tuple(DeviceSpec(address=dev.address, vendor=dev.vendor, model=dev.model,
                            std_board_info=dev.std_board_info,
                            deployables=tuple(d for d in dev.deployables if d.name not in drop))
                 for dev in devices)


def next_ledger(ledger: Ledger, previous: Iterable[DeviceSpec],
                sent: Iterable[DeviceSpec]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """The row order Cyborg's DB has after the conductor applied ``sent`` over ``previous``."""
    before = {dep.name: dep for dev in previous for dep in dev.deployables}
    result: dict[str, tuple[tuple[str, ...], ...]] = {}
    for dev in sent:
        for dep in dev.deployables:
            old = before.get(dep.name)
            if old is None:  # created whole: one row per handle, in report order
                result[dep.name] = tuple((info,) for info in dep.attach_infos)
                continue
            batches = list(ledger.get(dep.name, ()))
            removed = set(old.attach_infos) - set(dep.attach_infos)
            while removed and batches:
                removed -= set(batches.pop())
            added = tuple(sorted(set(dep.attach_infos) - set(old.attach_infos)))
            if added:
                batches.append(added)
            known = {info for batch in batches for info in batch}
            if dep.name in ledger and known == set(dep.attach_infos):
                result[dep.name] = tuple(batches)
            # else: the order is unknown; a later removal will rebuild the pool
    return result


# -- Rebuilding the driver's view from Placement -------------------------------------------------
# When the driver does not know what it last reported (no state file, an unusable one, or a
# report that may not have been applied), it cannot tell which attach handles Cyborg holds nor
# in which row order: sending the scan as it is could make the conductor delete a bound
# handle (it deletes the newest rows, see above). Placement still knows which of this host's
# pools exist, what they offer and whether anything is allocated from them; that decides.
_PCI_PREFIX = re.compile(r"([0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])(?:_|$)")


def name_prefix(hostname: str) -> str:
    """How every deployable name of ``hostname`` starts (``deployable_name``)."""
    return _NAME_UNSAFE.sub("_", hostname) + "_"


def pf_of_name(hostname: str, name: str) -> str | None:
    """The PF address in a deployable name of ``hostname`` (``deployable_name``), or None
    when ``name`` is not one of this host's or was shortened past the address."""
    prefix = name_prefix(hostname)
    if not name.startswith(prefix):
        return None
    match = _PCI_PREFIX.match(name, len(prefix))
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class Found:
    """One of this host's pool providers as Placement shows it."""

    pf: str | None  # the PF address its name carries (None: cannot tell)
    usage: int | None  # total allocated; None when Placement could not say
    agrees: bool  # inventory total and traits equal the pool of that name in the scan


@dataclass(frozen=True, slots=True)
class Recovery:
    """What to send while the driver's view is rebuilt (``plan_recovery``)."""

    trusted: tuple[DeviceSpec, ...]  # what Cyborg is taken to hold: scanned pools it has
    stubs: tuple[str, ...]  # PFs to send as stubs: in use and not known to match
    rebuilds: tuple[str, ...]  # unused pools that differ: left out once, then recreated
    blocked: tuple[str, ...]  # providers with allocations that no PF address can be tied to


def plan_recovery(current: Sequence[DeviceSpec], found: Mapping[str, Found]) -> Recovery:
    """Decide, per pool provider Placement shows, how the scan may be sent without harm.

    * no allocations: safe to change. A pool that differs from the scan (total or traits) is
      rebuilt, since its handle rows are unknown; one that matches is taken as it is.
    * allocations, and the scan has the pool exactly as Placement shows it: taken as it is
      (the pool did not change, so the report changes none of its rows).
    * allocations (or usage unknown) and the pool differs or is gone from the scan: its PF
      is sent as a stub, which the conductor leaves untouched, until the allocations go.
    """
    owner = {dep.name: dev.address for dev in current for dep in dev.deployables}
    stubs: set[str] = set()
    rebuilds: set[str] = set()
    blocked: list[str] = []
    for name, pool in sorted(found.items()):
        if pool.usage == 0:
            if name in owner and not pool.agrees:
                rebuilds.add(name)
            continue
        if name in owner and pool.agrees and pool.usage is not None:
            continue
        pf = owner.get(name, pool.pf)
        if pf is None:
            blocked.append(name)
        else:
            stubs.add(pf)
    rebuilds = {name for name in rebuilds if owner[name] not in stubs}
    # Pools Placement lacks are new to Cyborg too: the conductor creates them whole, so they
    # are left out of what Cyborg is believed to hold (their row order is then known).
    # A device none of whose pools Placement has may be new to Cyborg as well: not trusted.
    trusted = tuple(DeviceSpec(address=dev.address, vendor=dev.vendor, model=dev.model,
                               std_board_info=dev.std_board_info,
                               deployables=tuple(d for d in dev.deployables if d.name in found))
                    for dev in current if dev.address not in stubs
                    and any(d.name in found for d in dev.deployables))
    return Recovery(trusted=trusted, stubs=tuple(sorted(stubs, key=PciAddress.parse)),
                    rebuilds=tuple(sorted(rebuilds)), blocked=tuple(blocked))


# -- Cyborg's objects and plain data ------------------------------------------------------------
def to_driver_devices(devices: Iterable[DeviceSpec],
                      unchanged: Iterable[str] = ()) -> list[Any]:
    """``cyborg.objects.driver_objects.DriverDevice`` objects for the agent to send.

    Devices whose address is in ``unchanged`` are sent as ``stub`` devices without
    deployables: the conductor leaves a stub device exactly as it is (it is neither added,
    diffed nor deleted), which spares it one DB query and one update per attach handle.
    """
    # Imported here: cyborg's object modules pull in oslo.service (and eventlet), which the
    # CLI and the pure functions above do not need.
    from cyborg.objects.driver_objects.driver_attach_handle import (  # noqa: PLC0415
        DriverAttachHandle,
    )
    from cyborg.objects.driver_objects.driver_attribute import (  # noqa: PLC0415
        DriverAttribute,
    )
    from cyborg.objects.driver_objects.driver_controlpath_id import (  # noqa: PLC0415
        DriverControlPathID,
    )
    from cyborg.objects.driver_objects.driver_deployable import (  # noqa: PLC0415
        DriverDeployable,
    )
    from cyborg.objects.driver_objects.driver_device import DriverDevice  # noqa: PLC0415

    stubs = set(unchanged)
    result = []
    for device in devices:
        if device.address in stubs:
            result.append(DriverDevice(
                vendor=device.vendor, model=device.model, type=DEVICE_TYPE,
                std_board_info=device.std_board_info, vendor_board_info=None, stub=True,
                controlpath_id=DriverControlPathID(cpid_type=CPID_TYPE,
                                                   cpid_info=device.address),
                deployable_list=[]))
            continue
        deployables = [
            DriverDeployable(
                name=dep.name, num_accelerators=dep.num_accelerators, driver_name=DRIVER_NAME,
                attribute_list=[DriverAttribute(key=k, value=v) for k, v in dep.attributes],
                attach_handle_list=[
                    DriverAttachHandle(attach_type=ATTACH_TYPE, attach_info=info, in_use=False)
                    for info in dep.attach_infos])
            for dep in device.deployables]
        result.append(DriverDevice(
            vendor=device.vendor, model=device.model, type=DEVICE_TYPE,
            std_board_info=device.std_board_info, vendor_board_info=None, stub=False,
            controlpath_id=DriverControlPathID(cpid_type=CPID_TYPE, cpid_info=device.address),
            deployable_list=deployables))
    return result


def build_report(host: Host, config: ReportConfig) -> list[Any]:
    """What ``SmartNicDriver.discover()`` returns for ``host``: a list of ``DriverDevice``."""
    return to_driver_devices(plan_report(host, config))


def report_to_dicts(devices: Iterable[Any]) -> list[dict[str, Any]]:
    """``DriverDevice`` objects as plain data with Cyborg's own field names (the CLI contract)."""
    return [{
        "vendor": dev.vendor,
        "model": dev.model,
        "type": dev.type,
        "std_board_info": dev.std_board_info,
        "controlpath_id": {"cpid_type": dev.controlpath_id.cpid_type,
                           "cpid_info": dev.controlpath_id.cpid_info},
        "deployable_list": [{
            "name": dep.name,
            "num_accelerators": dep.num_accelerators,
            "driver_name": dep.driver_name,
            "attribute_list": [{"key": a.key, "value": a.value} for a in dep.attribute_list],
            "attach_handle_list": [{"attach_type": ah.attach_type,
                                    "attach_info": ah.attach_info,
                                    "in_use": ah.in_use} for ah in dep.attach_handle_list],
        } for dep in dev.deployable_list],
    } for dev in devices]


def specs_to_dicts(devices: Iterable[DeviceSpec]) -> list[dict[str, Any]]:
    """``report_to_dicts(to_driver_devices(devices))`` without building Cyborg's objects."""
    return [{
        "vendor": dev.vendor,
        "model": dev.model,
        "type": DEVICE_TYPE,
        "std_board_info": dev.std_board_info,
        "controlpath_id": {"cpid_type": CPID_TYPE, "cpid_info": dev.address},
        "deployable_list": [{
            "name": dep.name,
            "num_accelerators": dep.num_accelerators,
            "driver_name": DRIVER_NAME,
            "attribute_list": [{"key": k, "value": v} for k, v in dep.attributes],
            "attach_handle_list": [{"attach_type": ATTACH_TYPE, "attach_info": info,
                                    "in_use": False} for info in dep.attach_infos],
        } for dep in dev.deployables],
    } for dev in devices]


def dicts_to_specs(data: Sequence[Mapping[str, Any]]) -> tuple[DeviceSpec, ...]:
    """The inverse of ``report_to_dicts`` (for a report read back from JSON)."""
    devices = []
    for dev in data:
        deployables = []
        for dep in dev["deployable_list"]:
            attrs = {a["key"]: a["value"] for a in dep["attribute_list"]}
            infos = tuple(sorted(ah["attach_info"] for ah in dep["attach_handle_list"]))
            physnets = {json.loads(info).get("physical_network") for info in infos}
            deployables.append(DeployableSpec(
                name=dep["name"], pool=None, resource_class=attrs.get(RC_KEY, ""),
                traits=tuple(sorted(v for k, v in attrs.items() if k != RC_KEY)),
                physnet=physnets.pop() if len(physnets) == 1 else None,
                vf_addresses=tuple(_address_of(info) for info in infos),
                attach_infos=infos, num_accelerators=int(dep["num_accelerators"])))
        devices.append(DeviceSpec(
            address=dev["controlpath_id"]["cpid_info"], vendor=dev["vendor"],
            model=dev["model"], std_board_info=dev["std_board_info"],
            deployables=tuple(deployables)))
    return tuple(devices)


def _address_of(info: str) -> str:
    fields = json.loads(info)
    return f"{fields['domain']}:{fields['bus']}:{fields['device']}.{fields['function']}"
