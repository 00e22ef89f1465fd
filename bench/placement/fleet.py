"""The provider trees of a SmartNIC fleet, as this driver and Cyborg's conductor make them.

One generated host (``cyborg_smartnic/hostgen/large.py:large()``) is scanned once with the project's
own scan; ``report.plan_report`` then maps it for every compute-node name, so each pool
provider has the name, UUID (``uuid3`` of the name, as the conductor computes it), resource
class, inventory total and traits that a real report of that host would give it. The writes
mirror the conductor's (``cyborg/conductor/manager.py:provider_report``): the provider under
the compute node, inventory ``{rc: {total, max_unit: total}}`` (Placement's defaults for the
rest), then the pool's traits. The compute node is what nova-compute reports: VCPU,
MEMORY_MB and DISK_GB with Nova's initial allocation ratios and ``OWNER_NOVA`` among its
traits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.driver import rp_uuid
from cyborg_smartnic.hostgen import large
from cyborg_smartnic.pools import ReportConfig
from cyborg_smartnic.report import plan_report

# nova-compute's root inventory for a 64-thread, 512 GiB host (initial ratios 4.0/1.0/1.0).
COMPUTE_INVENTORY = {
    "VCPU": {"total": 64, "allocation_ratio": 4.0, "max_unit": 64},
    "MEMORY_MB": {"total": 524288, "reserved": 512, "allocation_ratio": 1.0,
                  "max_unit": 524288},
    "DISK_GB": {"total": 1800, "allocation_ratio": 1.0, "max_unit": 1800},
}
# A few of the traits a libvirt compute node reports, with the one Nova 34 filters on.
COMPUTE_TRAITS = ("OWNER_NOVA", "COMPUTE_NET_ATTACH_INTERFACE", "COMPUTE_VOLUME_EXTEND",
                  "HW_CPU_X86_AVX2", "COMPUTE_IMAGE_TYPE_QCOW2")
PHYSNETS = ("physnet1", "physnet2")


@dataclass(frozen=True)
class Pool:
    """One pool's resource provider (a Cyborg deployable)."""

    name: str
    uuid: str
    resource_class: str
    total: int
    traits: tuple[str, ...]


@dataclass(frozen=True)
class ComputeNode:
    name: str
    uuid: str
    pools: tuple[Pool, ...]


def host_name(index: int) -> str:
    return f"compute{index:04d}.bench.example.org"


def scanned_pools(root: Path, hostnames: Sequence[str], pfs: int, vfs: int
                  ) -> tuple[ComputeNode, ...]:
    """Build ``large(pfs, vfs)`` under ``root`` (PFs alternate between the physnets) and map
    it once per hostname."""
    tree = large(root, pfs=pfs, vfs=vfs, noise=0)
    netdevs = sorted(pf.netdev for pf in scan(root, ScanOptions()).physical_functions
                     if pf.netdev)
    del tree
    mappings = [f"{PHYSNETS[i % len(PHYSNETS)]}:{netdev}" for i, netdev in enumerate(netdevs)]
    host = scan(root, ScanOptions(physnets=parse_physnet_mappings(mappings)))
    nodes = []
    for name in hostnames:
        devices = plan_report(host, ReportConfig(hostname=name))
        pools = tuple(Pool(dep.name, rp_uuid(dep.name), dep.resource_class,
                           dep.num_accelerators, dep.traits)
                      for dev in devices for dep in dev.deployables)
        nodes.append(ComputeNode(name, str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), pools))
    return tuple(nodes)


Write = tuple[str, str, Any]  # method, path, body (a generation is filled in by the caller)


def node_writes(node: ComputeNode) -> Iterator[Write]:
    """The requests that create one compute node's tree: nova-compute's part, then the
    conductor's per pool. ``{gen}`` in a body is the provider's current generation."""
    yield "POST", "/resource_providers", {"name": node.name, "uuid": node.uuid}
    yield "PUT", f"/resource_providers/{node.uuid}/inventories", {
        "resource_provider_generation": "{gen}", "inventories": COMPUTE_INVENTORY}
    yield "PUT", f"/resource_providers/{node.uuid}/traits", {
        "resource_provider_generation": "{gen}", "traits": list(COMPUTE_TRAITS)}
    for pool in node.pools:
        yield "POST", "/resource_providers", {"name": pool.name, "uuid": pool.uuid,
                                              "parent_provider_uuid": node.uuid}
        yield "PUT", f"/resource_providers/{pool.uuid}/inventories", {
            "resource_provider_generation": "{gen}",
            "inventories": {pool.resource_class: {"total": pool.total,
                                                  "max_unit": pool.total}}}
        yield "PUT", f"/resource_providers/{pool.uuid}/traits", {
            "resource_provider_generation": "{gen}", "traits": list(pool.traits)}


def custom_names(nodes: Sequence[ComputeNode]) -> tuple[set[str], set[str]]:
    """(custom resource classes, custom traits) the fleet uses: created first, as the
    conductor's ensure_resource_classes / _ensure_traits do."""
    classes = {p.resource_class for n in nodes for p in n.pools}
    traits = {t for n in nodes for p in n.pools for t in p.traits if t.startswith("CUSTOM_")}
    return classes, traits


@dataclass(frozen=True)
class Allocation:
    consumer: str
    body: dict[str, Any]


def allocations(nodes: Sequence[ComputeNode], per_node: int, full_every: int,
                project: str, user: str) -> tuple[Allocation, ...]:
    """Instances already running: ``per_node`` per host, each with 2 VCPU, 4 GiB, 20 GB and
    one VF of a different pool; on every ``full_every``-th host one more instance holds all
    VFs of its first pool (so that pool offers nothing)."""
    found = []
    for index, node in enumerate(nodes):
        claims = [(node.pools[k % len(node.pools)], 1) for k in range(per_node)]
        if full_every and index % full_every == 0:
            claims.append((node.pools[0], node.pools[0].total - (1 if per_node else 0)))
        for k, (pool, amount) in enumerate(claims):
            consumer = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"instance-{k}.{node.name}"))
            found.append(Allocation(consumer, {
                "allocations": {
                    node.uuid: {"resources": {"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}},
                    pool.uuid: {"resources": {pool.resource_class: amount}}},
                "project_id": project, "user_id": user, "consumer_generation": None,
                "consumer_type": "INSTANCE"}))
    return tuple(found)
