"""Compile a ``ProfileSpec`` into what Cyborg, Nova, Neutron and the host tool consume (pure).

* the Cyborg device profile body, exactly what ``POST /v2/device_profiles`` takes (one item);
* the Nova flavor extra specs (``accel:device_profile`` plus ``hw:*``);
* the Neutron port arguments: ``--vnic-type accelerator-direct --device-profile NAME`` when
  Cyborg schedules the VF, ``--vnic-type direct --binding-profile {"capabilities":
  ["switchdev"]}`` (OVS offload) or ``--vnic-type remote-managed`` (DPU) when Nova's PCI
  tracker does; those have no Cyborg device profile (``device_profile`` is None);
* ``HostRequirements``, what a compute node must offer (the host helper plans from it).

Every trait and resource class name comes from ``cyborg_smartnic.traits``, the same code the
driver reports with, so a profile never asks for a spelling no host reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cyborg_smartnic.profiles import schema
from cyborg_smartnic.profiles.spec import (
    PATH_CYBORG,
    FlavorSpec,
    GroupSpec,
    PortSpec,
    ProfileSpec,
    format_page_size,
)
from cyborg_smartnic.requirement_kinds import derived_traits, values_of

ACCEL_DEVICE_PROFILE = "accel:device_profile"
GROUP_POLICY = "group_policy"


@dataclass(frozen=True)
class GroupRequirement:
    """What one pool on a host must offer for one request group."""

    vf_count: int
    resource_class: str
    required_traits: tuple[str, ...]
    forbidden_traits: tuple[str, ...]
    physnet: str | None = None
    eswitch_mode: str | None = None
    vf_driver: str | None = None
    firmware_mode: str | None = None
    vendor: str | None = None
    model: str | None = None
    xdp: str | None = None  # "native": the VF's kernel driver must run XDP in the driver


@dataclass(frozen=True)
class HostRequirements:
    """Everything a compute node needs to serve one instance of the profile."""

    profile: str
    groups: tuple[GroupRequirement, ...]
    hugepage_size_kb: int | None = None
    hugepages_per_instance: int | None = None  # from the largest flavor's RAM, when known
    cpu_policy: str | None = None
    numa_nodes: int | None = None
    group_policy: str = "isolate"  # isolate: every group from a different pool
    path: str = PATH_CYBORG  # PATH_NOVA_PCI: the VF comes from Nova's PCI tracker

    @property
    def total_vfs(self) -> int:
        return sum(g.vf_count for g in self.groups)


@dataclass(frozen=True)
class CompiledProfile:
    name: str
    source: str
    #: {"name", "description", "groups": [...]}; None when Cyborg has no part (a port whose
    #: VF Nova's PCI tracker picks)
    device_profile: Mapping[str, Any] | None
    flavor_extra_specs: Mapping[str, str]
    flavors: tuple[FlavorSpec, ...]
    port: PortSpec | None
    host: HostRequirements

    @property
    def path(self) -> str:
        return self.port.path if self.port is not None else PATH_CYBORG

    @property
    def port_arguments(self) -> tuple[str, ...]:
        """``openstack port create`` arguments (without the port name), or () for a flavor
        profile. A Cyborg port names its device profile; a Nova-PCI port carries its
        binding profile capabilities instead."""
        if self.port is None:
            return ()
        if self.port.path == PATH_CYBORG:
            return ("--vnic-type", self.port.vnic_type, "--device-profile", self.name,
                    "--network", self.port.network)
        found: tuple[str, ...] = ("--vnic-type", self.port.vnic_type,
                                  "--network", self.port.network)
        if self.port.binding_profile:
            found += ("--binding-profile", json.dumps(self.port.binding_profile))
        return found

    @property
    def server_arguments(self) -> tuple[str, ...]:
        """``openstack server create`` arguments (without the server name): the profile's
        first flavor (FLAVOR when it names none), IMAGE, and the port (PORT_NAME) or, for a
        flavor profile, a network (NETWORK) for the guest's own interface."""
        flavor = self.flavors[0].name if self.flavors else "FLAVOR"
        nic = ("--port", "PORT_NAME") if self.port is not None else ("--network", "NETWORK")
        return ("--flavor", flavor, "--image", "IMAGE", *nic)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``profile render -f json|yaml``."""
        device_profile = None if self.device_profile is None else {
            **self.device_profile, "groups": [dict(g) for g in self.device_profile["groups"]]}
        shape = self.port.shape if self.port is not None else None
        return {
            "name": self.name,
            "source": self.source,
            "path": self.path,
            "device_profile": device_profile,
            "flavor_extra_specs": dict(self.flavor_extra_specs),
            "flavors": [_flavor_dict(f) for f in self.flavors],
            "port": None if self.port is None else {
                "network": self.port.network, "vnic_type": self.port.vnic_type,
                "binding_profile": self.port.binding_profile,
                "device_profile": self.name if self.device_profile is not None else None,
                "scheduler": shape.scheduler if shape else None,
                "neutron_binds": shape.neutron_binds if shape else None},
            "port_arguments": list(self.port_arguments) or None,
            "port_create": (["openstack", "port", "create", *self.port_arguments, "PORT_NAME"]
                            if self.port is not None else None),
            "server_create": ["openstack", "server", "create", *self.server_arguments,
                              "SERVER_NAME"],
            "host_requirements": _host_dict(self.host),
        }


def _flavor_dict(flavor: FlavorSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": flavor.name}
    if flavor.creatable:
        data.update(vcpus=flavor.vcpus, ram=flavor.ram_mb, disk=flavor.disk_gb)
    return data


def _host_dict(host: HostRequirements) -> dict[str, Any]:
    data = asdict(host)
    data["groups"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                      for g in data["groups"]]
    return data


def managed_description(description: str) -> str:
    """The description sent to Cyborg: the user's text plus the managed-by marker."""
    return f"{description} {schema.MANAGED_MARKER}" if description else schema.MANAGED_MARKER


def is_managed(description: str | None) -> bool:
    return bool(description) and schema.MANAGED_MARKER in str(description)


def group_traits(group: GroupSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, forbidden) traits of a group: derived from its fields plus the explicit."""
    derived = derived_traits(values_of(group))
    required = tuple(sorted(set(derived) | set(group.required)))
    return required, tuple(sorted(set(group.forbidden)))


def device_profile_group(group: GroupSpec) -> dict[str, str]:
    required, forbidden = group_traits(group)
    body = {f"resources:{group.resource_class}": str(group.vf_count)}
    body.update({f"trait:{name}": "required" for name in required})
    body.update({f"trait:{name}": "forbidden" for name in forbidden})
    return body


def flavor_extra_specs(profile: ProfileSpec) -> dict[str, str]:
    """Extra specs every attached flavor gets; a port profile leaves the VF to the port."""
    specs: dict[str, str] = {}
    if profile.port is None:
        specs[ACCEL_DEVICE_PROFILE] = profile.name
        if len(profile.groups) > 1:
            # Placement refuses several numbered request groups without a group_policy.
            specs[GROUP_POLICY] = profile.group_policy
    inst = profile.instance
    if inst.hugepage_size_kb is not None:
        specs["hw:mem_page_size"] = format_page_size(inst.hugepage_size_kb)
    if inst.cpu_policy is not None:
        specs["hw:cpu_policy"] = inst.cpu_policy
    if inst.numa_nodes is not None:
        specs["hw:numa_nodes"] = str(inst.numa_nodes)
    specs.update(inst.properties)
    return dict(sorted(specs.items()))


def host_requirements(profile: ProfileSpec) -> HostRequirements:
    groups = []
    for group in profile.groups:
        required, forbidden = group_traits(group)
        groups.append(GroupRequirement(
            vf_count=group.vf_count, resource_class=group.resource_class,
            required_traits=required, forbidden_traits=forbidden, **values_of(group),
            xdp=group.xdp))
    size = profile.instance.hugepage_size_kb
    rams = [f.ram_mb for f in profile.flavors if f.ram_mb is not None]
    pages = math.ceil(max(rams) * 1024 / size) if size and rams else None
    return HostRequirements(profile=profile.name, groups=tuple(groups), hugepage_size_kb=size,
                            hugepages_per_instance=pages, cpu_policy=profile.instance.cpu_policy,
                            numa_nodes=profile.instance.numa_nodes,
                            group_policy=profile.group_policy,
                            path=profile.port.path if profile.port else PATH_CYBORG)


def compile_profile(profile: ProfileSpec) -> CompiledProfile:
    device_profile = None
    if profile.port is None or profile.port.path == PATH_CYBORG:
        device_profile = {
            "name": profile.name,
            "description": managed_description(profile.description),
            "groups": [device_profile_group(g) for g in profile.groups],
        }
    return CompiledProfile(
        name=profile.name, source=profile.source, device_profile=device_profile,
        flavor_extra_specs=flavor_extra_specs(profile), flavors=profile.flavors,
        port=profile.port, host=host_requirements(profile))


def compile_all(profiles: list[ProfileSpec]) -> list[CompiledProfile]:
    return [compile_profile(p) for p in profiles]
