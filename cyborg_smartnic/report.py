"""The discovery model plus configuration, mapped to what the driver reports to Cyborg (pure).

One ``DriverDevice`` per physical function; one pooled ``DriverDeployable`` (= one Placement
resource provider) per VF pool on that PF, with one ``PCI`` attach handle per VF. Everything
is sorted and every attribute key is derived from its value (``trait_<NAME>``), so an unchanged
host gives a byte-identical report and a change gives the conductor a minimal diff: the
conductor diffs devices by ``cpid_info``, deployables by ``name``, attributes by ``key`` and
attach handles by ``attach_info`` (cyborg/conductor/manager.py).

The work happens on frozen ``*Spec`` values (``plan_report``); ``to_driver_devices`` turns
them into Cyborg's versioned objects at the edge, ``specs_to_dicts``/``dicts_to_specs`` into
plain data and back. What the driver may *send* of a plan, given Cyborg 17's conductor, is
``conductor_guards``.
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
from cyborg_smartnic.requirement_kinds import offer_of, offered_traits

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
    drivers = {vf.driver for vf in vfs}
    shared = drivers.pop() if len(drivers) == 1 else None
    found = {names.OWNER_CYBORG, *offered_traits(offer_of(
        pf, {"physnet": physnet, "vf_driver": shared}))}
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


# -- Reading a deployable name back (the inverse of ``deployable_name``) ---------------------
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


def specs_to_dicts(devices: Iterable[DeviceSpec]) -> list[dict[str, Any]]:
    """The report as plain data with Cyborg's own field names: exactly the fields of the
    ``to_driver_devices`` objects (less ``stub`` and ``vendor_board_info``), without building
    them. The one serializer: the CLI contract (``report -f json``) and the state file."""
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
    """The inverse of ``specs_to_dicts`` (for a report read back from JSON). ``pool`` is not
    in the data (None); a malformed ``attach_info`` raises ``InvalidPciAddress``."""
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
                vf_addresses=tuple(str(PciAddress.from_attach_info(info)) for info in infos),
                attach_infos=infos, num_accelerators=int(dep["num_accelerators"])))
        devices.append(DeviceSpec(
            address=dev["controlpath_id"]["cpid_info"], vendor=dev["vendor"],
            model=dev["model"], std_board_info=dev["std_board_info"],
            deployables=tuple(deployables)))
    return tuple(devices)

