"""Typed, frozen device profile specs built from validated YAML data, and their vocabularies.

``from_data`` is only called on data that passed ``validate``; it does no checking of its
own beyond what the types need. Helpers that both validation and compilation use (hugepage
sizes, catalogue model lookup, default resource class) live here so they agree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic import catalog, requirement_kinds, traits
from cyborg_smartnic.discovery import devlink
from cyborg_smartnic.profiles import schema
from cyborg_smartnic.yamlsource import is_integer

USERSPACE_VF_DRIVERS = catalog.USERSPACE_VF_DRIVERS
DDP_FIRMWARE_MODES = ("comms", "os_default", "wireless_edge")
#: BlueField modes as discovery reads them from mstconfig (INTERNAL_CPU_MODEL/PAGE_SUPPLIER).
DPU_FIRMWARE_MODES = devlink.DPU_FIRMWARE_MODES
FIRMWARE_MODES = DDP_FIRMWARE_MODES + DPU_FIRMWARE_MODES

_SIZE = re.compile(r"(?P<number>[0-9]+)\s*(?:(?P<unit>[kKmMgG])(?:i?[bB])?)?")
_UNIT_KB = {None: 1, "k": 1, "m": 1024, "g": 1024 * 1024}


def known_vf_drivers(models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS) -> list[str]:
    """Drivers a VF can be bound to: every catalogued VF driver plus the userspace ones."""
    found = {m.vf_driver for m in models if m.vf_driver}
    return sorted(found | set(USERSPACE_VF_DRIVERS))


def vf_driver_problem(name: str, known: Iterable[str]) -> str | None:
    """Why ``name`` is not a VF driver the kernel knows by exactly that name, or None.

    Profiles and host.yaml both ask this. The kernel compares driver names byte for byte:
    ``vfio_pci`` is not ``vfio-pci``, so a VF already on vfio-pci would be rebound.
    """
    choices = sorted(set(known))
    if name in choices:
        return None
    same = [d for d in choices if traits.normalize(d) == traits.normalize(name)]
    if same:
        return f"the kernel names this driver {same[0]!r}, not {name!r}; did you mean {same[0]!r}?"
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(choices)})"
    return f"unknown VF driver {name!r}{hint}"


def models_by_key(
        models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS
) -> dict[str, catalog.NicModel]:
    """Catalogue rows keyed by normalised model key and by normalised model name."""
    found: dict[str, catalog.NicModel] = {}
    for model in models:
        found.setdefault(traits.normalize(model.key), model)
        found.setdefault(traits.normalize(model.name), model)
    return found


def parse_hugepage_size(value: str | int) -> int:
    """``2M``/``2MB``/``2MiB``/``1G``/``64K``/``2048`` (kB) -> size in kB; ValueError if not."""
    if not (isinstance(value, str) or is_integer(value)):
        raise ValueError(f"{value!r} is not a page size (use 2M, 1G or a size in kB)")
    if isinstance(value, int):
        number, unit = value, None
    else:
        match = _SIZE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{value!r} is not a page size (use 2M, 1G or a size in kB)")
        number = int(match["number"])
        unit = match["unit"].lower() if match["unit"] else None
    size_kb = number * _UNIT_KB[unit]
    if size_kb not in schema.KERNEL_HUGEPAGE_SIZES_KB:
        known = ", ".join(format_page_size(s, short=True) for s in
                          schema.KERNEL_HUGEPAGE_SIZES_KB)
        raise ValueError(f"{value!r} is not a hugepage size Linux offers ({known})")
    return size_kb


def format_page_size(size_kb: int, *, short: bool = False) -> str:
    """kB -> Nova's ``hw:mem_page_size`` spelling (``2MB``, ``1GB``; ``2M`` when short)."""
    suffix = "" if short else "B"
    if size_kb % (1024 * 1024) == 0:
        return f"{size_kb // (1024 * 1024)}G{suffix}"
    if size_kb % 1024 == 0:
        return f"{size_kb // 1024}M{suffix}"
    return f"{size_kb}K{suffix}"


def property_value(value: str | int | bool) -> str:
    """Nova extra spec values are strings; booleans use Nova's ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class GroupSpec:
    """One request group: ``vf_count`` VFs from one pool with these properties."""

    vf_count: int
    resource_class: str = traits.DEFAULT_RESOURCE_CLASS
    physnet: str | None = None
    eswitch_mode: str | None = None
    vf_driver: str | None = None
    vendor: str | None = None
    model: str | None = None  # catalogue model key, e.g. CONNECTX_6_DX
    firmware_mode: str | None = None
    required: tuple[str, ...] = ()  # extra traits written by the user
    forbidden: tuple[str, ...] = ()
    xdp: str | None = None  # "native" / "generic": the guest runs XDP on the VF


@dataclass(frozen=True)
class InstanceSpec:
    hugepage_size_kb: int | None = None
    cpu_policy: str | None = None
    numa_nodes: int | None = None
    properties: tuple[tuple[str, str], ...] = ()  # other hw:* flavor properties, sorted


@dataclass(frozen=True)
class FlavorSpec:
    """A flavor to attach to: created when ``vcpus``/``ram`` are given and it is missing."""

    name: str
    vcpus: int | None = None
    ram_mb: int | None = None
    disk_gb: int | None = None

    @property
    def creatable(self) -> bool:
        return self.vcpus is not None and self.ram_mb is not None


PATH_CYBORG = "cyborg"
PATH_NOVA_PCI = "nova-pci"


@dataclass(frozen=True)
class PortShape:
    """How one kind of port reaches a guest, as the released code does it (docs/profiles.md).

    Read in nova 34 (nova/network/neutron.py ``create_resource_requests``: accelerator vnic
    types need a device profile of one device; the other SR-IOV types become a PCI request
    for the network's physnet; nova/virt/libvirt/vif.py ``get_config_hw_veb``: ``direct`` and
    ``accelerator-direct`` are both plugged as hostdev) and neutron 29 (only sriovnicswitch
    binds the accelerator types; openvswitch and OVN bind ``direct`` with the switchdev
    capability through the VF's representor; OVN binds ``remote-managed``).
    """

    workload: str
    scheduler: str  # who picks the VF
    neutron_binds: str  # mechanism driver and vif type
    path: str  # PATH_CYBORG / PATH_NOVA_PCI


PORT_SHAPES: dict[tuple[str, bool], PortShape] = {
    ("accelerator-direct", False): PortShape(
        "SR-IOV passthrough: DPDK (vfio-pci), XDP or packet-core guests, legacy or switchdev "
        "eswitch", "Cyborg (the port's device profile: one VF, with the network's physnet "
        "trait)", "sriovnicswitch: vif_type hw_veb, plugged as a hostdev", PATH_CYBORG),
    ("accelerator-direct-physical", False): PortShape(
        "the VF as a plain PCI device (the host sets no VLAN or MAC on it)",
        "Cyborg (the port's device profile: one VF)",
        "nothing: no ML2 driver of Neutron 29 binds it (binding_failed; validation refuses "
        "it)", PATH_CYBORG),
    ("direct", True): PortShape(
        "OVS hardware offload: the guest's flows run on the NIC through the VF's representor",
        "Nova's PCI tracker ([pci] device_spec with the physnet; no Cyborg device profile)",
        "openvswitch or OVN: vif_type ovs, the representor plugged into br-int", PATH_NOVA_PCI),
    ("remote-managed", False): PortShape(
        "BlueField in DPU mode: OVN on the DPU's Arm cores programs the eswitch",
        "Nova's PCI tracker ([pci] device_spec with remote_managed; no Cyborg device profile)",
        "OVN (the DPU's ovn-controller plugs the representor)", PATH_NOVA_PCI),
}


@dataclass(frozen=True)
class PortSpec:
    network: str
    vnic_type: str = schema.VNIC_TYPE
    capabilities: tuple[str, ...] = ()  # binding:profile capabilities (switchdev)

    @property
    def shape(self) -> PortShape | None:
        """None for a combination validation refuses."""
        return PORT_SHAPES.get((self.vnic_type, schema.SWITCHDEV in self.capabilities))

    @property
    def path(self) -> str:
        return PATH_CYBORG if self.vnic_type in schema.CYBORG_VNIC_TYPES else PATH_NOVA_PCI

    @property
    def binding_profile(self) -> dict[str, list[str]] | None:
        return {"capabilities": list(self.capabilities)} if self.capabilities else None


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    description: str
    groups: tuple[GroupSpec, ...]
    instance: InstanceSpec = InstanceSpec()
    flavors: tuple[FlavorSpec, ...] = ()
    port: PortSpec | None = None
    source: str = ""  # FILE:LINE where the profile starts, for messages
    group_policy: str = "isolate"  # only written to flavors when there are several groups


def from_data(data: Mapping[str, Any], source: str = "",
              models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS) -> ProfileSpec:
    """Build a ``ProfileSpec`` from one validated profile mapping."""
    by_key = models_by_key(models)
    groups = []
    for group in data["groups"]:
        model = group.get("model")
        trait_lists = group.get("traits", {})
        groups.append(GroupSpec(
            vf_count=int(group["vf_count"]),
            resource_class=group.get("resource_class", traits.DEFAULT_RESOURCE_CLASS),
            **{**{field: group.get(field) for field in requirement_kinds.FIELDS},
               "model": by_key[traits.normalize(model)].key if model is not None else None},
            required=tuple(trait_lists.get("required", ())),
            forbidden=tuple(trait_lists.get("forbidden", ())),
            xdp=group.get("xdp"),
        ))
    inst = data.get("instance", {})
    hugepages = inst.get("hugepages")
    instance = InstanceSpec(
        hugepage_size_kb=parse_hugepage_size(hugepages) if hugepages is not None else None,
        cpu_policy=inst.get("cpu_policy"),
        numa_nodes=inst.get("numa_nodes"),
        properties=tuple(sorted((k, property_value(v))
                                for k, v in inst.get("properties", {}).items())),
    )
    flavors = []
    for flavor in data.get("flavors", ()):
        if isinstance(flavor, str):
            flavors.append(FlavorSpec(name=flavor))
        else:
            creatable = "vcpus" in flavor
            flavors.append(FlavorSpec(
                name=flavor["name"], vcpus=flavor.get("vcpus"), ram_mb=flavor.get("ram"),
                disk_gb=flavor.get("disk", 0) if creatable else None))
    port = data.get("port")
    return ProfileSpec(
        name=data["name"],
        description=data.get("description", ""),
        groups=tuple(groups),
        instance=instance,
        flavors=tuple(flavors),
        port=PortSpec(network=port["network"], vnic_type=port.get("vnic_type", schema.VNIC_TYPE),
                      capabilities=tuple(port.get("capabilities", ())))
        if port is not None else None,
        source=source,
        group_policy=data.get("group_policy", "isolate"),
    )
