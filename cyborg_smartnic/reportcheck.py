"""What a report lacks that the cloud will need, said before the cloud finds out.

A pool without a physnet reports attach handles without ``physical_network``; Nova's
accelerator-direct port flow then cannot bind it (it reads that key). ``report``, ``host
doctor`` and the driver's log name such pools with the same sentence.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

PHYSNET_KEY = "physical_network"


def pools_without_physnet(devices: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Names of the deployables (``report -f json`` shape) with a VF lacking a physnet."""
    names = []
    for device in devices:
        for dep in device["deployable_list"]:
            if any(PHYSNET_KEY not in json.loads(handle["attach_info"])
                   for handle in dep["attach_handle_list"]):
                names.append(str(dep["name"]))
    return tuple(sorted(names))


PHYSNET_REMEDY = ("map its PF in [smartnic] physical_device_mappings, or set physnet in its "
                  "[smartnic_pool:NAME] group")


def physnet_problem(name: str) -> str:
    return (f"pool {name} has no physnet (attach_info without physical_network: Neutron "
            "accelerator-direct ports cannot use its VFs)")


def physnet_warning(name: str) -> str:
    return f"{physnet_problem(name)}; {PHYSNET_REMEDY}"
