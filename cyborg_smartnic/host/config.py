"""The host config file (``host.yaml``): what an operator wants this compute node to look like.

Loaded with the shared positioned YAML loader and checked by a JSON schema plus the
cross-field rules a schema cannot say (VF ranges inside ``vf_count``, no overlaps, one
selector per entry). Every problem is collected and reported as ``FILE:LINE:COL: field:
reason``; nothing here looks at the host itself (see ``match_devices`` for that).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyborg_smartnic import ranges, yamlsource
from cyborg_smartnic.catalog import MAX_VFS_PER_PF
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery import selection
from cyborg_smartnic.discovery.model import ESWITCH_LEGACY, ESWITCH_SWITCHDEV
from cyborg_smartnic.errors import ConfigError, InvalidPciAddress, SourceError, SourceErrors
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.profiles.spec import known_vf_drivers, parse_hugepage_size, vf_driver_problem
from cyborg_smartnic.ranges import RangeError

DEFAULT_DRIVER = "default"  # vf_drivers value meaning "the vendor's netdev VF driver"
DRIVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_SELECTORS = ("address", "netdev", "select")
#: The names profiles accept for vf_driver, plus ``default``.
_VF_DRIVERS = (*known_vf_drivers(), DEFAULT_DRIVER)
#: Who schedules a VF: Cyborg (our pools, [smartnic] in cyborg.conf) or Nova's PCI tracker
#: ([pci] device_spec in nova.conf). Never both: each would hand the VF to a different guest.
OWNER_CYBORG = "cyborg"
OWNER_NOVA = "nova"
OWNERS = (OWNER_CYBORG, OWNER_NOVA)
OWNER_RESERVED = "reserved"  # reserved_vfs: held back from both, for the host itself


class InvalidHostConfig(SourceErrors):
    """One or more problems in a host config file; ``errors`` holds each as a SourceError."""

    what = "the host config"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a config entry was written, so later checks can point at it."""

    file: str
    line: int
    column: int
    field: str

    def error(self, reason: str) -> SourceError:
        return SourceError(file=self.file, line=self.line, column=self.column,
                           field=self.field, reason=reason)


@dataclass(frozen=True, slots=True)
class VfDriverRange:
    indices: tuple[int, ...]
    driver: str  # a kernel driver name, or DEFAULT_DRIVER
    text: str  # the range as written, for messages


@dataclass(frozen=True, slots=True)
class VfOwnerRange:
    indices: tuple[int, ...]
    owner: str  # OWNER_CYBORG / OWNER_NOVA
    text: str  # the range as written, for messages


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Desired state of the PFs one entry selects (by address, netdev or selector)."""

    origin: Origin  # of the selector key
    address: PciAddress | None = None
    netdev: str | None = None
    select: str | None = None
    vf_count: int | None = None
    vf_drivers: tuple[VfDriverRange, ...] = ()
    reserved_vfs: tuple[int, ...] = ()
    eswitch_mode: str | None = None
    flow_steering_mode: str | None = None
    firmware_mode: str | None = None
    physnet: str | None = None
    vf_owners: tuple[VfOwnerRange, ...] = ()
    remote_managed: bool = False  # Nova's device_spec tag for a DPU-mode BlueField's VFs
    ddp_package: str | None = None  # an ice DDP package file the operator names (firmware)

    def owner_of(self, index: int) -> str:
        """``reserved`` for reserved_vfs, else the range's owner, else Cyborg (the default)."""
        if index in self.reserved_vfs:
            return OWNER_RESERVED
        for entry in self.vf_owners:
            if index in entry.indices:
                return entry.owner
        return OWNER_CYBORG

    @property
    def selector_text(self) -> str:
        return str(self.address) if self.address else (self.netdev or self.select or "")

    def driver_for(self, index: int) -> str | None:
        for entry in self.vf_drivers:
            if index in entry.indices:
                return entry.driver
        return None


@dataclass(frozen=True, slots=True)
class HugepageConfig:
    origin: Origin
    size_kb: int
    count: int
    numa_node: int | None = None  # None: the global pool (/sys/kernel/mm/hugepages)

    @property
    def label(self) -> str:
        where = "global" if self.numa_node is None else f"node{self.numa_node}"
        return f"{where} {self.size_kb}kB"


# ----------------------------------------------------------------------------- ovs:
OVS_BRIDGE = "br-int"  # where Neutron's OVS and OVN drivers plug VF representors
TC_POLICIES = ("none", "skip_sw", "skip_hw")
MIN_MAX_IDLE_MS = 500  # Open vSwitch's own floor for other_config:max-idle
MAX_MAX_IDLE_MS = 3_600_000
REPRESENTOR_CHECKS = ("neutron", "none")
_NETDEV_PATTERN = r"^[A-Za-z0-9_.:@-]{1,15}$"
_NETDEV_MESSAGE = "not a network interface name (1-15 of A-Z a-z 0-9 _ . : @ -)"


@dataclass(frozen=True, slots=True)
class OvsUplink:
    """A PF netdev (the uplink representor in switchdev mode) that must be a port of
    ``bridge``: without it offloaded flows have no way out of the eswitch."""

    origin: Origin
    netdev: str
    bridge: str


@dataclass(frozen=True, slots=True)
class OvsConfig:
    """Open vSwitch settings for hardware offload; ``None`` fields are left as they are."""

    origin: Origin
    bridge: str = OVS_BRIDGE
    hw_offload: bool | None = None
    tc_policy: str | None = None
    max_idle_ms: int | None = None
    uplinks: tuple[OvsUplink, ...] = ()
    representors: str = "neutron"  # check the representors of Neutron's ports on ``bridge``


@dataclass(frozen=True, slots=True)
class HostConfig:
    file: str
    devices: tuple[DeviceConfig, ...] = ()
    hugepages: tuple[HugepageConfig, ...] = ()
    ovs: OvsConfig | None = None


_DEVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "address": {"type": "string", "minLength": 1},
        "netdev": {"type": "string", "pattern": r"^[A-Za-z0-9_.:@-]{1,15}$",
                   "x-message": "not a network interface name (1-15 of A-Z a-z 0-9 _ . : @ -)"},
        "select": {"type": "string", "minLength": 1},
        "vf_count": {"type": "integer", "minimum": 0, "maximum": MAX_VFS_PER_PF},
        "vf_drivers": {
            "type": "object",
            "additionalProperties": {
                "type": "string", "pattern": DRIVER_PATTERN,
                "x-message": "not a kernel driver name (like vfio-pci, iavf, mlx5_core) "
                             "or 'default'"},
        },
        "reserved_vfs": {"type": ["string", "integer"]},
        "eswitch_mode": {"enum": [ESWITCH_LEGACY, ESWITCH_SWITCHDEV]},
        "flow_steering_mode": {"enum": list(dl.FLOW_STEERING_MODES)},
        "firmware_mode": {"type": "string", "pattern": r"^[a-z0-9_]{1,64}$",
                          "x-message": "a firmware mode is lower-case letters, digits and _ "
                                       "(like nic, dpu, comms, os_default)"},
        "ddp_package": {"type": "string",
                        "pattern": r"^ice(_[a-z_]+)?-[0-9]+(\.[0-9]+){1,3}\.pkg$",
                        "x-message": "a DDP package file name like ice_comms-1.3.45.0.pkg, "
                                     "found in /lib/firmware/intel/ice/ddp*/"},
        "physnet": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,64}$",
                    "x-message": "a physical network name is 1-64 of A-Z a-z 0-9 _ . -"},
        "vf_owners": {
            "type": "object",
            "additionalProperties": {
                "enum": list(OWNERS),
                "x-message": "who schedules these VFs: cyborg (the default) or nova "
                             "(Nova's PCI tracker, [pci] device_spec)"},
        },
        "remote_managed": {"type": "boolean"},
    },
}

_OVS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "bridge": {"type": "string", "pattern": _NETDEV_PATTERN,
                   "x-message": "not an OVS bridge name (1-15 of A-Z a-z 0-9 _ . : @ -)"},
        "hw_offload": {"type": "boolean"},
        "tc_policy": {"enum": list(TC_POLICIES)},
        "max_idle": {"type": "integer", "minimum": MIN_MAX_IDLE_MS,
                     "maximum": MAX_MAX_IDLE_MS,
                     "x-message": f"max_idle is in milliseconds, {MIN_MAX_IDLE_MS}-"
                                  f"{MAX_MAX_IDLE_MS} (Open vSwitch's default is 10000)"},
        "uplinks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["netdev"],
                "properties": {
                    "netdev": {"type": "string", "pattern": _NETDEV_PATTERN,
                               "x-message": _NETDEV_MESSAGE},
                    "bridge": {"type": "string", "pattern": _NETDEV_PATTERN,
                               "x-message": "not an OVS bridge name (1-15 of A-Z a-z 0-9 "
                                            "_ . : @ -)"},
                },
            },
        },
        "representors": {"enum": list(REPRESENTOR_CHECKS)},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cyborg-smartnic host config",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "devices": {"type": "array", "items": _DEVICE_SCHEMA},
        "hugepages": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["size", "count"],
                "properties": {
                    "node": {"type": "integer", "minimum": 0, "maximum": 1023},
                    "size": {"type": ["string", "integer"]},
                    "count": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
                },
            },
        },
        "ovs": _OVS_SCHEMA,
    },
}


def load_host_config(path: str | Path) -> HostConfig:
    """Read, validate and convert ``path``; raise ``InvalidHostConfig`` listing every problem."""
    return parse_document(yamlsource.load_document(path))


def parse_document(doc: yamlsource.Document) -> HostConfig:
    if doc.data is None:
        return HostConfig(file=doc.file)
    errors = yamlsource.validate_with_schema(doc, SCHEMA)
    if errors:
        raise InvalidHostConfig(tuple(errors))
    found: list[SourceError] = []
    devices = tuple(_device(doc, index, found)
                    for index in range(len(doc.get(("devices",), []))))
    hugepages = tuple(_hugepages(doc, index, found)
                      for index in range(len(doc.get(("hugepages",), []))))
    _check_duplicates(devices, hugepages, found)
    ovs = _ovs(doc, found) if doc.get(("ovs",)) is not None else None
    if found:
        raise InvalidHostConfig(tuple(found))
    return HostConfig(file=doc.file, devices=devices, hugepages=hugepages, ovs=ovs)


def parse_ranges(value: str | int) -> tuple[int, ...]:
    """A host.yaml VF index list (``"0-3,8"``, or one YAML integer) -> sorted indices;
    ``ranges.RangeError`` (a ValueError) with the reason."""
    if yamlsource.is_integer(value):
        value = str(value)
    if not isinstance(value, str):
        raise RangeError(f"{value!r} is not a VF index list like '0-7' or '0-3,8'")
    return ranges.parse_ranges(value, MAX_VFS_PER_PF - 1)


def parse_size_kb(value: str | int) -> int:
    """Hugepage size (``2M``, ``1G``, ``2048kB`` or kB): the same rules profiles use."""
    return parse_hugepage_size(value)


def _origin(doc: yamlsource.Document, path: yamlsource.JsonPath) -> Origin:
    line, column = doc.position(path)
    return Origin(doc.file, line, column, yamlsource.format_path(path))


def _device(doc: yamlsource.Document, index: int, found: list[SourceError]) -> DeviceConfig:
    base: yamlsource.JsonPath = ("devices", index)
    entry: dict[str, Any] = doc.get(base)
    given = [key for key in _SELECTORS if key in entry]
    if len(given) != 1:
        reason = ("needs one of address, netdev or select" if not given else
                  f"give only one of address, netdev or select (found {', '.join(given)})")
        found.append(doc.error(base, reason))
    key = given[0] if given else "address"
    origin = _origin(doc, (*base, key))
    address = None
    if "address" in entry:
        try:
            address = PciAddress.parse(entry["address"])
        except InvalidPciAddress as exc:
            found.append(doc.error((*base, "address"), str(exc)))
    select = entry.get("select")
    if select is not None and "#" in select:
        found.append(doc.error((*base, "select"),
                               "a host entry selects whole PFs: drop the '#' VF ranges "
                               "(use reserved_vfs to hold VFs back from Cyborg)"))
    elif select is not None:
        try:
            selection.parse_selector(select)
        except ConfigError as exc:
            found.append(doc.error((*base, "select"), str(exc.kwargs["reason"])))
    vf_count = entry.get("vf_count")
    drivers = _vf_drivers(doc, base, entry.get("vf_drivers", {}), vf_count, found)
    reserved: tuple[int, ...] = ()
    if "reserved_vfs" in entry:
        try:
            reserved = parse_ranges(entry["reserved_vfs"])
        except ValueError as exc:
            found.append(doc.error((*base, "reserved_vfs"), str(exc)))
        _check_inside(doc, (*base, "reserved_vfs"), reserved, vf_count, found)
    owners = _vf_owners(doc, base, entry, reserved, found)
    return DeviceConfig(
        origin=origin, address=address, netdev=entry.get("netdev"), select=select,
        vf_count=vf_count, vf_drivers=drivers, reserved_vfs=reserved,
        eswitch_mode=entry.get("eswitch_mode"),
        flow_steering_mode=entry.get("flow_steering_mode"),
        firmware_mode=entry.get("firmware_mode"), physnet=entry.get("physnet"),
        vf_owners=owners, remote_managed=bool(entry.get("remote_managed", False)),
        ddp_package=entry.get("ddp_package"))


def _vf_owners(doc: yamlsource.Document, base: yamlsource.JsonPath, entry: dict[str, Any],
               reserved: tuple[int, ...], found: list[SourceError]
               ) -> tuple[VfOwnerRange, ...]:
    """``vf_owners``: ranges -> cyborg|nova, with the rules Nova's PCI tracker imposes."""
    result: list[VfOwnerRange] = []
    for text, owner, indices, path in _vf_ranges(doc, base, "vf_owners",
                                                  entry.get("vf_owners", {}),
                                                  entry.get("vf_count"), found):
        held = sorted(set(indices) & set(reserved))
        if held:
            found.append(doc.error(path, f"VF {held[0]} is in reserved_vfs (held back from "
                                         f"Cyborg and Nova alike): drop it from one of them"))
        if owner == OWNER_NOVA and not entry.get("physnet"):
            found.append(doc.error(path, "Nova's PCI tracker gives a VF only to a port whose "
                                         "network's physical_network equals the device_spec's: "
                                         "set physnet on this entry"))
        result.append(VfOwnerRange(indices, owner, text))
    if entry.get("remote_managed") and not any(r.owner == OWNER_NOVA for r in result):
        found.append(doc.error((*base, "remote_managed"),
                               "remote_managed tags Nova's [pci] device_spec (a DPU-mode "
                               "BlueField's VFs for remote-managed ports), but no VF of this "
                               "entry is Nova's: add vf_owners, e.g. \"0-7\": nova"))
    return tuple(result)


def _vf_drivers(doc: yamlsource.Document, base: yamlsource.JsonPath, raw: dict[str, str],
                vf_count: int | None, found: list[SourceError]) -> tuple[VfDriverRange, ...]:
    result: list[VfDriverRange] = []
    for text, driver, indices, path in _vf_ranges(doc, base, "vf_drivers", raw, vf_count,
                                                   found):
        if (problem := vf_driver_problem(driver, _VF_DRIVERS)) is not None:
            found.append(doc.error(path, problem))
        result.append(VfDriverRange(indices, driver, text))
    return tuple(result)


def _vf_ranges(doc: yamlsource.Document, base: yamlsource.JsonPath, key: str,
               raw: Mapping[str, str], vf_count: int | None, found: list[SourceError]
               ) -> Iterator[tuple[str, str, tuple[int, ...], yamlsource.JsonPath]]:
    """``(range text, value, VF indices, path)`` of each entry of the ``key`` map (VF range
    -> value) that parses; an unparsable range, an overlap with an earlier range and a VF
    beyond ``vf_count`` are added to ``found``."""
    seen: dict[int, str] = {}
    for text, value in raw.items():
        path = (*base, key, text)
        try:
            indices = parse_ranges(text)
        except ValueError as exc:
            found.append(doc.error(path, str(exc)))
            continue
        clash = sorted({seen[i] for i in indices if i in seen})
        if clash:
            found.append(doc.error(path, f"overlaps the range {clash[0]!r}"))
        seen.update((i, text) for i in indices)
        _check_inside(doc, path, indices, vf_count, found)
        yield text, value, indices, path


def _check_inside(doc: yamlsource.Document, path: yamlsource.JsonPath,
                  indices: tuple[int, ...], vf_count: int | None,
                  found: list[SourceError]) -> None:
    if vf_count is not None and indices and indices[-1] >= vf_count:
        found.append(doc.error(path, f"VF {indices[-1]} does not exist with vf_count "
                                     f"{vf_count} (VFs are numbered 0-{vf_count - 1})"
                               if vf_count else f"VF {indices[-1]} does not exist with "
                                                f"vf_count 0"))


def _hugepages(doc: yamlsource.Document, index: int,
               found: list[SourceError]) -> HugepageConfig:
    base: yamlsource.JsonPath = ("hugepages", index)
    entry: dict[str, Any] = doc.get(base)
    size_kb = 0
    try:
        size_kb = parse_size_kb(entry["size"])
    except ValueError as exc:
        found.append(doc.error((*base, "size"), str(exc)))
    return HugepageConfig(origin=_origin(doc, base), size_kb=size_kb, count=entry["count"],
                          numa_node=entry.get("node"))


def _check_duplicates(devices: tuple[DeviceConfig, ...],
                      hugepages: tuple[HugepageConfig, ...], found: list[SourceError]) -> None:
    seen: dict[str, Origin] = {}
    for device in devices:
        key = device.selector_text
        if key and key in seen:
            found.append(device.origin.error(f"{key!r} is already configured at line "
                                             f"{seen[key].line}"))
        seen.setdefault(key, device.origin)
    pools: dict[tuple[int | None, int], Origin] = {}
    for pool in hugepages:
        pool_key = (pool.numa_node, pool.size_kb)
        if pool.size_kb and pool_key in pools:
            found.append(pool.origin.error(f"{pool.label} pages are already configured at "
                                           f"line {pools[pool_key].line}"))
        pools.setdefault(pool_key, pool.origin)


def _ovs(doc: yamlsource.Document, found: list[SourceError]) -> OvsConfig:
    """The ``ovs:`` section, with the rules the schema cannot say."""
    base: yamlsource.JsonPath = ("ovs",)
    entry: dict[str, Any] = doc.get(base)
    bridge = entry.get("bridge", OVS_BRIDGE)
    hw_offload = entry.get("hw_offload")
    if "tc_policy" in entry and hw_offload is not True:
        found.append(doc.error((*base, "tc_policy"),
                               "tc_policy only applies with hw_offload: true (Open vSwitch "
                               "reads it when it enables the TC flow API)"))
    uplinks: list[OvsUplink] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(entry.get("uplinks", ())):
        path = (*base, "uplinks", index, "netdev")
        netdev = raw["netdev"]
        if netdev in seen:
            found.append(doc.error(path, f"{netdev!r} is already listed at line {seen[netdev]}"))
        seen.setdefault(netdev, doc.position(path)[0])
        uplinks.append(OvsUplink(_origin(doc, path), netdev, raw.get("bridge", bridge)))
    return OvsConfig(origin=_origin(doc, base), bridge=bridge, hw_offload=hw_offload,
                     tc_policy=entry.get("tc_policy"), max_idle_ms=entry.get("max_idle"),
                     uplinks=tuple(uplinks),
                     representors=entry.get("representors", "neutron"))
