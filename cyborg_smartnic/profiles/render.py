"""Text renderings of compiled profiles: JSON, YAML, or the equivalent ``openstack`` commands.

The shell rendering is for operators who apply by hand or review in a change request; every
argument is quoted with ``shlex.quote`` so the output pastes safely into a POSIX shell.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable

import yaml

from cyborg_smartnic.profiles.compiler import CompiledProfile

FORMATS = ("json", "yaml", "shell")


def _command(*words: str) -> str:
    return " ".join(shlex.quote(word) for word in words)


def shell_commands(profile: CompiledProfile) -> list[str]:
    """The ``openstack`` CLI commands that create what ``profile apply`` would."""
    body = profile.device_profile
    lines = [f"# {profile.name} ({profile.source})"]
    shape = profile.port.shape if profile.port is not None else None
    if shape is not None:
        lines.append(f"# path: {shape.scheduler} picks the VF; Neutron binds with "
                     f"{shape.neutron_binds}")
    if body is not None:
        lines.append(_command("openstack", "accelerator", "device", "profile", "create",
                              str(body["name"]), json.dumps(body["groups"], sort_keys=True),
                              "--description", str(body["description"])))
    else:
        lines.append("# no Cyborg device profile: give the VFs to Nova in host.yaml "
                     "(vf_owners) and write [pci] device_spec with `cyborg-smartnic host conf`")
    properties: list[str] = []
    for key, value in profile.flavor_extra_specs.items():
        properties += ["--property", f"{key}={value}"]
    for flavor in profile.flavors:
        if flavor.creatable:
            lines.append("# create the flavor if it does not exist yet")
            lines.append(_command("openstack", "flavor", "create", "--vcpus", str(flavor.vcpus),
                                  "--ram", str(flavor.ram_mb), "--disk", str(flavor.disk_gb),
                                  flavor.name))
        if properties:
            lines.append(_command("openstack", "flavor", "set", *properties, flavor.name))
    if profile.port_arguments:
        lines.append("# one port per instance; PORT_NAME, IMAGE and SERVER_NAME are yours to "
                     "choose")
        lines.append(_command("openstack", "port", "create", *profile.port_arguments)
                     + " PORT_NAME")
        if profile.port is not None and profile.port.binding_profile:
            lines.append("# (binding:profile is admin-only under Neutron's default policy; "
                         "with the port_hardware_offload_type extension a user may pass "
                         "--hardware-offload-type switchdev instead)")
    else:
        lines.append("# IMAGE, NETWORK and SERVER_NAME are yours to choose")
    lines.append(_command("openstack", "server", "create", *profile.server_arguments)
                 + " SERVER_NAME")
    return lines


def render(profiles: Iterable[CompiledProfile], fmt: str) -> str:
    items = list(profiles)
    if fmt == "json":
        return json.dumps([p.to_dict() for p in items], indent=2) + "\n"
    if fmt == "yaml":
        return str(yaml.safe_dump([p.to_dict() for p in items], sort_keys=False,
                                  default_flow_style=False))
    if fmt == "shell":
        blocks = ["\n".join(shell_commands(p)) for p in items]
        return "\n\n".join(blocks) + "\n"
    raise ValueError(f"unknown format {fmt!r}")
