"""Cyborg 17.0.0's conductor removes the wrong attach handles; the driver works around it.

``AttachHandle.get_ah_by_depid_attachinfo`` passes ``attach_info`` as a DB filter that
``attach_handle_get_by_filters`` silently ignores (it is not in its exact-match list), so it
returns the deployable's newest handle row. ``drv_ah_make_diff`` uses it to delete the handles
that left a report: it deletes the N newest rows, whatever they hold. The first test shows
it with a report sent straight to the real conductor. The driver only sends removals that are
the newest rows (it keeps a ledger of row order, persisted in ``[smartnic] state_file``); any
other change to an unused pool is made by leaving the pool out for one cycle and recreating it.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from cyborg import context

from cyborg_smartnic import report
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.pools import ReportConfig
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
PF = "0000:3b:00.0"


@pytest.fixture
def pool(make_inproc: Callable[..., InProcessCloud]) -> tuple[InProcessCloud, SysfsTree]:
    inproc = make_inproc()
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=4,
        eswitch="legacy"))
    inproc.run_agent_cycle()
    return inproc, tree


def functions(inproc: InProcessCloud, deployable: str | None = None) -> list[str]:
    name = deployable or f"{inproc.hostname}_{PF}"
    return sorted(json.loads(ah["attach_info"])["function"] for ah in inproc.attach_handles()
                  if ah["deployable"] == name)


def test_conductor_deletes_the_newest_handle_not_the_one_that_left(
        pool: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, _tree = pool
    assert functions(inproc) == ["0", "1", "2", "3"]
    (device,) = report.plan_report(scan(inproc.sysfs_root), ReportConfig(hostname=inproc.hostname))
    (dep,) = device.deployables
    without_vf1 = dep.attach_infos[:1] + dep.attach_infos[2:]
    changed = report.DeviceSpec(
        address=device.address, vendor=device.vendor, model=device.model,
        std_board_info=device.std_board_info,
        deployables=(report.DeployableSpec(
            name=dep.name, pool=None, resource_class=dep.resource_class, traits=dep.traits,
            physnet=None, vf_addresses=(), attach_infos=without_vf1, num_accelerators=3),))
    inproc.conductor.report_data(context.get_admin_context(), inproc.hostname,
                                report.to_driver_devices([changed]))
    assert functions(inproc) == ["0", "1", "2"]  # VF 1 was reported gone; VF 3's row went


def test_highest_vfs_going_is_applied_in_one_cycle(pool: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = pool
    tree.set_num_vfs(PF, 2)
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.rebuilds == ()
    assert functions(inproc) == ["0", "1"]


def test_a_vf_leaving_the_middle_of_a_pool_rebuilds_it(
        pool: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = pool
    vf1 = tree.vfs(PF)[1]
    tree.set_attr(vf1, "device", "junk\n")  # VF 1 becomes unreadable: the scan skips it
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    name = f"{inproc.hostname}_{PF}"
    assert driver.rebuilds == (name,)
    assert name not in inproc.provider_view() and functions(inproc) == []
    inproc.run_agent_cycle()
    assert functions(inproc) == ["0", "2", "3"]
    assert inproc.provider_view()[name]["inventories"][RC]["total"] == 3
    # VF 1 readable again: an addition is always applied correctly
    tree.set_attr(vf1, "device", "0x101e\n")
    inproc.run_agent_cycle()
    assert functions(inproc) == ["0", "1", "2", "3"]
    # and the batch VF 1 came in with is now the newest rows: it may go in one cycle
    tree.set_attr(vf1, "device", "junk\n")
    inproc.run_agent_cycle()
    assert driver.rebuilds == ()
    assert functions(inproc) == ["0", "2", "3"]


def test_vfs_added_together_can_only_leave_together(pool: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, tree = pool
    tree.set_num_vfs(PF, 6)  # VFs 4 and 5 arrive as one batch, in set order
    inproc.run_agent_cycle()
    tree.set_num_vfs(PF, 5)  # removing only one of them could hit the other's row
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.rebuilds == (f"{inproc.hostname}_{PF}",)
    inproc.run_agent_cycle()
    assert functions(inproc) == ["0", "1", "2", "3", "4"]


def test_carving_a_pool_out_of_a_default_pool(pool: tuple[InProcessCloud, SysfsTree]) -> None:
    inproc, _tree = pool
    inproc.restart_agent(pools={"dpdk": {"devices": "ens1f0#0-1"}})
    inproc.run_agent_cycle()  # VFs 0-1 leave the default pool: its oldest rows
    default, dpdk = f"{inproc.hostname}_{PF}", f"{inproc.hostname}_{PF}_dpdk"
    assert functions(inproc, dpdk) == ["0", "1"]
    assert functions(inproc, default) == []
    inproc.run_agent_cycle()
    assert functions(inproc, default) == ["2", "3"]
    assert functions(inproc, dpdk) == ["0", "1"]
    view = inproc.provider_view()
    assert view[default]["inventories"][RC]["total"] == 2
    assert view[dpdk]["inventories"][RC]["total"] == 2
