"""The device profile file format as a JSON Schema (Draft 2020-12), plus its fixed vocabularies.

The schema checks shape (keys, types, ranges, patterns); rules that need context (trait name
normalisation, a trait both required and forbidden, hugepage sizes, duplicate names across
files) live in ``validate``. ``docs/profile.schema.json`` is this schema, published so editors
can complete and check profiles; a test keeps the two identical.
"""

from __future__ import annotations

import json
from typing import Any

from cyborg_smartnic.discovery.model import ESWITCH_SWITCHDEV
from cyborg_smartnic.requirement_kinds import group_properties

SCHEMA_ID = "https://opendev.org/x/cyborg-smartnic/profile.schema.json"

#: Cyborg's own rule for device profile names (api/controllers/v2/device_profiles.py).
NAME_PATTERN = r"^[a-zA-Z0-9-_]+$"
MAX_NAME_LENGTH = 255
#: Appended to the description of every device profile this tool creates, so ``apply
#: --prune`` only ever deletes its own profiles (Cyborg device profiles have no tags).
MANAGED_MARKER = "[managed-by: cyborg-smartnic]"
MAX_DESCRIPTION_LENGTH = 255 - len(MANAGED_MARKER) - 1
MAX_VF_COUNT = 256  # the most VFs any catalogued PF offers (ice)
MAX_GROUPS = 8

XDP_MODES = ("native", "generic")
CPU_POLICIES = ("dedicated", "shared", "mixed")
#: Placement's group_policy: with several request groups, Nova needs it in the flavor.
GROUP_POLICIES = ("isolate", "none")
VNIC_TYPE = "accelerator-direct"
#: Neutron vnic types a profile's port can have. accelerator-direct[-physical]: Cyborg
#: schedules the VF (the port's device profile); direct and remote-managed: Nova's PCI
#: tracker does ([pci] device_spec), and no Cyborg device profile is made.
CYBORG_VNIC_TYPES = ("accelerator-direct", "accelerator-direct-physical")
NOVA_VNIC_TYPES = ("direct", "remote-managed")
VNIC_TYPES = CYBORG_VNIC_TYPES + NOVA_VNIC_TYPES
SWITCHDEV = ESWITCH_SWITCHDEV  # binding:profile capability for OVS/OVN hardware offload

#: Hugepage sizes (kB) some Linux architecture offers: x86 2M/1G, arm64 64K/2M/32M/512M/1G/16G,
#: ppc64 16M/16G, s390x 1M. A size outside this list is a typo, never a kernel feature.
KERNEL_HUGEPAGE_SIZES_KB = (64, 1024, 2048, 16384, 32768, 524288, 1048576, 16777216)

#: Flavor properties the profile sets through dedicated fields; ``instance.properties`` may
#: not set them again.
DEDICATED_PROPERTIES = {
    "hw:mem_page_size": "instance.hugepages",
    "hw:cpu_policy": "instance.cpu_policy",
    "hw:numa_nodes": "instance.numa_nodes",
}

_TRAIT_LIST: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 255},
    "uniqueItems": True,
}
_FLAVOR_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": r"^[a-zA-Z0-9._-][a-zA-Z0-9. _-]*$",
}



def group_schema() -> dict[str, Any]:
    """A profile group: its count and resource class, one property per requirement kind
    (``requirement_kinds.KINDS``), XDP and extra traits."""
    return {
        "type": "object",
        "description": "One Placement request group: N VFs from a single VF pool.",
        "additionalProperties": False,
        "required": ["vf_count"],
        "properties": {
            "vf_count": {"type": "integer", "minimum": 1, "maximum": MAX_VF_COUNT},
            "resource_class": {"type": "string", "minLength": 1, "maxLength": 255,
                               "description": "Default CUSTOM_SMARTNIC_VF."},
            **group_properties(),
            "xdp": {"enum": list(XDP_MODES),
                    "description": "The guest runs XDP programs on the VF: native needs a "
                                   "VF driver with XDP in the driver (mlx5_core, ixgbevf, "
                                   "bnxt_en; not iavf), generic works with any kernel netdev "
                                   "driver."},
            "traits": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"required": _TRAIT_LIST, "forbidden": _TRAIT_LIST},
            },
        },
    }


INSTANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What the instance needs besides the VFs (Nova flavor extra specs).",
    "additionalProperties": False,
    "properties": {
        "hugepages": {"type": ["string", "integer"],
                      "description": "Page size: 2M, 1G, 2MB, 1GB or a size in kB (2048)."},
        "cpu_policy": {"enum": list(CPU_POLICIES)},
        "numa_nodes": {"type": "integer", "minimum": 1, "maximum": 64},
        "properties": {
            "type": "object",
            "propertyNames": {"pattern": r"^hw:[a-z][a-z0-9_]*(\.[0-9]+)?$", "maxLength": 255},
            "additionalProperties": {"type": ["string", "integer", "boolean"],
                                     "maxLength": 255},
        },
    },
}

FLAVOR_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {**_FLAVOR_NAME, "description": "An existing flavor's name."},
        {
            "type": "object",
            "description": "A flavor created when missing (vcpus and ram given) or an "
                           "existing one (name only).",
            "additionalProperties": False,
            "required": ["name"],
            "dependentRequired": {"vcpus": ["ram"], "ram": ["vcpus"], "disk": ["vcpus", "ram"]},
            "properties": {
                "name": _FLAVOR_NAME,
                "vcpus": {"type": "integer", "minimum": 1, "maximum": 4096},
                "ram": {"type": "integer", "minimum": 1, "description": "MiB"},
                "disk": {"type": "integer", "minimum": 0, "description": "GiB"},
            },
        },
    ],
}

PORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Neutron port asks for the VF instead of the flavor.",
    "additionalProperties": False,
    "required": ["network"],
    "properties": {
        "vnic_type": {"enum": list(VNIC_TYPES),
                      "description": "accelerator-direct (default) or -physical: Cyborg "
                                     "schedules the VF; direct (with capabilities: "
                                     "[switchdev], OVS offload) or remote-managed (DPU): "
                                     "Nova's PCI tracker does."},
        "capabilities": {"type": "array", "items": {"enum": [SWITCHDEV]}, "uniqueItems": True,
                         "description": "binding:profile capabilities; [switchdev] asks the "
                                        "OVS/OVN driver to plug the VF's representor."},
        "network": {"type": "string", "minLength": 1, "maxLength": 255},
    },
}

PROFILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "groups"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_LENGTH},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH},
        "groups": {"type": "array", "minItems": 1, "maxItems": MAX_GROUPS,
                   "items": {"$ref": "#/$defs/group"}},
        "group_policy": {"enum": list(GROUP_POLICIES),
                         "description": "How several groups share pools: isolate (each "
                                        "group its own pool, the default) or none."},
        "instance": {"$ref": "#/$defs/instance"},
        "flavors": {"type": "array", "items": {"$ref": "#/$defs/flavor"}},
        "port": {"$ref": "#/$defs/port"},
    },
}



def defs() -> dict[str, Any]:
    """The named parts a profile refers to (``#/$defs/...``); the group's from the table."""
    return {"group": group_schema(), "instance": INSTANCE_SCHEMA, "flavor": FLAVOR_SCHEMA,
            "port": PORT_SCHEMA}


def profile_schema() -> dict[str, Any]:
    """Schema of one profile (a mapping), self-contained."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **PROFILE_SCHEMA,
            "$defs": defs()}


def file_schema() -> dict[str, Any]:
    """Schema of a profile file: one profile, or a list of profiles."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cyborg-smartnic device profile file",
        "description": "One device profile (a mapping) or a list of them.",
        "oneOf": [
            {"$ref": "#/$defs/profile"},
            {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/profile"}},
        ],
        "$defs": {"profile": PROFILE_SCHEMA, **defs()},
    }


def published_text() -> str:
    """The exact text of docs/profile.schema.json."""
    return json.dumps(file_schema(), indent=2, sort_keys=True) + "\n"
