"""The first report of a fresh host: its Placement requests, and what it leaves in Placement.

Cyborg 17's conductor makes ``8 + T`` requests per new pool provider (T = the pool's
traits), one more per custom trait Placement does not know yet, and one compute-node lookup
(bench/README.md, "First report"); the driver itself only reads the compute node's tree
once. The test pins that bound, and that Placement ends up holding exactly what the
project's mapping (``report.plan_report``) says: one provider per pool under the compute
node, its inventory and its traits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.driver import rp_uuid
from cyborg_smartnic.hostgen import large
from cyborg_smartnic.report import plan_report
from tests.functional.harness import InProcessCloud

PFS, VFS = 6, 8  # every large() model on both physnets
MAPPINGS = [f"physnet{1 + i % 2}:enp{0x10 + 2 * i}s0f0" for i in range(PFS)]
DRIVER_READS = 4  # keystoneauth's version discovery (2), compute node by name, its tree
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _first_report(make_inproc: Callable[..., InProcessCloud]
                  ) -> tuple[InProcessCloud, Any, list[tuple[str, str, int]],
                             list[tuple[str, str, int]]]:
    """Run a fresh host's first cycle: (cloud, driver, driver's requests, the others)."""
    inproc = make_inproc(smartnic={"physical_device_mappings": MAPPINGS})
    large(inproc.sysfs_root, pfs=PFS, vfs=VFS, noise=20)
    (driver,) = inproc.agent._rt.acc_drivers
    ours, theirs = inproc.run_agent_cycle_split()
    return inproc, driver, ours, theirs


def test_first_report_request_bound_and_placement_content(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    inproc, driver, ours, theirs = _first_report(make_inproc)
    devices = plan_report(scan(str(inproc.sysfs_root), driver.scan_options),
                          driver.report_config)
    pools = [dep for dev in devices for dep in dev.deployables]
    assert len(pools) == PFS

    # The driver reads, never writes, and reads a fixed number of times whatever the pools.
    assert all(method == "GET" for method, _, _ in ours), ours
    assert len(ours) <= DRIVER_READS, ours
    # The conductor: Cyborg 17's per-pool cost, no more.
    custom = {t for dep in pools for t in dep.traits if t.startswith("CUSTOM_")}
    bound = 1 + sum(8 + len(dep.traits) for dep in pools) + len(custom)
    assert len(theirs) <= bound, (len(theirs), bound)
    assert sum(1 for e in theirs if e[0] in WRITES) <= 5 * len(pools) + len(custom)
    assert all(status < 400 or (method, status) in (("GET", 404),)
               for method, _, status in theirs), theirs

    # What Placement holds: exactly the mapping's pools, nothing else under the node.
    expected = {dep.name: {
        "uuid": rp_uuid(dep.name),
        "parent": inproc.compute_rp_uuid,
        "inventories": {dep.resource_class: {"total": dep.num_accelerators,
                                             "max_unit": dep.num_accelerators,
                                             "reserved": 0}},
        "traits": sorted(dep.traits),
        "usages": {dep.resource_class: 0},
    } for dep in pools}
    assert inproc.provider_view() == expected
    physnets = {t for dep in pools for t in dep.traits if t.startswith("CUSTOM_PHYSNET_")}
    assert physnets == {"CUSTOM_PHYSNET_PHYSNET1", "CUSTOM_PHYSNET_PHYSNET2"}
