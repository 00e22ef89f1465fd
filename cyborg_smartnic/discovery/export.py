"""The discovery model as plain data (the ``discover -f json`` contract in docs/discovery.md).

Pure mapping, shared by every command that prints or records a ``Host``. The contract's keys
are never renamed; extra keys (vendor, link, serial, representors, hugepages...) are additions.
Ids stay 4-digit lowercase hex without ``0x``; addresses are ``dddd:bb:ss.f`` strings.
"""

from __future__ import annotations

from typing import Any

from cyborg_smartnic.discovery.model import (
    Host,
    HugepagePool,
    Link,
    PhysicalFunction,
    Skipped,
    VirtualFunction,
)


def link_to_dict(link: Link) -> dict[str, Any]:
    return {"mac": link.mac, "operstate": link.operstate, "speed_mbps": link.speed_mbps,
            "mtu": link.mtu}


def vf_to_dict(vf: VirtualFunction) -> dict[str, Any]:
    return {
        "address": str(vf.address),
        "index": vf.index,
        "device_id": vf.device_id,
        "driver": vf.driver,
        "netdev": vf.netdev,
        "iommu_group": vf.iommu_group,
        # additions
        "vendor_id": vf.vendor_id,
        "numa_node": vf.numa_node,
        "netdev_master": vf.netdev_master,
        "link": link_to_dict(vf.link),
    }


def pf_to_dict(pf: PhysicalFunction) -> dict[str, Any]:
    return {
        "address": str(pf.address),
        "vendor_id": pf.vendor_id,
        "device_id": pf.device_id,
        "model": pf.model,
        "driver": pf.driver,
        "numa_node": pf.numa_node,
        "netdev": pf.netdev,
        "eswitch_mode": pf.eswitch_mode,
        "firmware": {"version": pf.firmware.version, "mode": pf.firmware.mode},
        "physnet": pf.physnet,
        "sriov": {"total_vfs": pf.total_vfs, "num_vfs": pf.num_vfs},
        "virtual_functions": [vf_to_dict(vf) for vf in pf.virtual_functions],
        # additions
        "vendor": pf.vendor,
        "model_key": pf.model_key,
        "subsystem_vendor_id": pf.subsystem_vendor_id,
        "subsystem_device_id": pf.subsystem_device_id,
        "vf_device_id": pf.vf_device_id,
        "iommu_group": pf.iommu_group,
        "serial": pf.serial,
        "link": link_to_dict(pf.link),
        "representors": list(pf.representors),
    }


def skipped_to_dict(skipped: Skipped) -> dict[str, str]:
    return {"address": skipped.address, "reason": skipped.reason}


def hugepages_to_dict(pool: HugepagePool) -> dict[str, Any]:
    return {"numa_node": pool.numa_node, "size_kb": pool.size_kb, "total": pool.total,
            "free": pool.free, "surplus": pool.surplus}


def host_to_dict(host: Host) -> dict[str, Any]:
    """``{"hostname", "physical_functions": [...], "skipped": [...]}`` plus host extras."""
    return {
        "hostname": host.hostname,
        "physical_functions": [pf_to_dict(pf) for pf in host.physical_functions],
        "skipped": [skipped_to_dict(s) for s in host.skipped],
        # additions
        "iommu_enabled": host.iommu_enabled,
        "kernel_cmdline": host.kernel_cmdline,
        "hugepages": [hugepages_to_dict(p) for p in host.hugepages],
    }
