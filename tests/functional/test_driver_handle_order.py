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
from cyborg_smartnic.pools import ReportConfig
from tests.fixtures.sysfs import SysfsTree
from tests.functional.harness import Stack

RC = "CUSTOM_SMARTNIC_VF"
PF = "0000:3b:00.0"


@pytest.fixture
def pool(make_stack: Callable[..., Stack]) -> tuple[Stack, SysfsTree]:
    stack = make_stack()
    tree = SysfsTree(stack.sysfs_root)
    tree.add_pf(PF, vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0",
                total_vfs=8, num_vfs=4, eswitch="legacy")
    stack.run_agent_cycle()
    return stack, tree


def functions(stack: Stack, deployable: str | None = None) -> list[str]:
    name = deployable or f"{stack.hostname}_{PF}"
    return sorted(json.loads(ah["attach_info"])["function"] for ah in stack.attach_handles()
                  if ah["deployable"] == name)


def test_conductor_deletes_the_newest_handle_not_the_one_that_left(
        pool: tuple[Stack, SysfsTree]) -> None:
    stack, _tree = pool
    assert functions(stack) == ["0", "1", "2", "3"]
    (device,) = report.plan_report(scan(stack.sysfs_root), ReportConfig(hostname=stack.hostname))
    (dep,) = device.deployables
    without_vf1 = dep.attach_infos[:1] + dep.attach_infos[2:]
    changed = report.DeviceSpec(
        address=device.address, vendor=device.vendor, model=device.model,
        std_board_info=device.std_board_info,
        deployables=(report.DeployableSpec(
            name=dep.name, pool=None, resource_class=dep.resource_class, traits=dep.traits,
            physnet=None, vf_addresses=(), attach_infos=without_vf1, num_accelerators=3),))
    stack.conductor.report_data(context.get_admin_context(), stack.hostname,
                                report.to_driver_devices([changed]))
    assert functions(stack) == ["0", "1", "2"]  # VF 1 was reported gone; VF 3's row went


def test_highest_vfs_going_is_applied_in_one_cycle(pool: tuple[Stack, SysfsTree]) -> None:
    stack, tree = pool
    tree.set_num_vfs(PF, 2)
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    assert driver.rebuilds == ()
    assert functions(stack) == ["0", "1"]


def test_a_vf_leaving_the_middle_of_a_pool_rebuilds_it(pool: tuple[Stack, SysfsTree]) -> None:
    stack, tree = pool
    vf1 = tree.vfs(PF)[1]
    tree.set_attr(vf1, "device", "junk\n")  # VF 1 becomes unreadable: the scan skips it
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    name = f"{stack.hostname}_{PF}"
    assert driver.rebuilds == (name,)
    assert name not in stack.provider_view() and functions(stack) == []
    stack.run_agent_cycle()
    assert functions(stack) == ["0", "2", "3"]
    assert stack.provider_view()[name]["inventories"][RC]["total"] == 3
    # VF 1 readable again: an addition is always applied correctly
    tree.set_attr(vf1, "device", "0x101e\n")
    stack.run_agent_cycle()
    assert functions(stack) == ["0", "1", "2", "3"]
    # and the batch VF 1 came in with is now the newest rows: it may go in one cycle
    tree.set_attr(vf1, "device", "junk\n")
    stack.run_agent_cycle()
    assert driver.rebuilds == ()
    assert functions(stack) == ["0", "2", "3"]


def test_vfs_added_together_can_only_leave_together(pool: tuple[Stack, SysfsTree]) -> None:
    stack, tree = pool
    tree.set_num_vfs(PF, 6)  # VFs 4 and 5 arrive as one batch, in set order
    stack.run_agent_cycle()
    tree.set_num_vfs(PF, 5)  # removing only one of them could hit the other's row
    stack.run_agent_cycle()
    (driver,) = stack.agent._rt.acc_drivers
    assert driver.rebuilds == (f"{stack.hostname}_{PF}",)
    stack.run_agent_cycle()
    assert functions(stack) == ["0", "1", "2", "3", "4"]


def test_carving_a_pool_out_of_a_default_pool(pool: tuple[Stack, SysfsTree]) -> None:
    stack, _tree = pool
    stack.restart_agent(pools={"dpdk": {"devices": "ens1f0#0-1"}})
    stack.run_agent_cycle()  # VFs 0-1 leave the default pool: its oldest rows
    default, dpdk = f"{stack.hostname}_{PF}", f"{stack.hostname}_{PF}_dpdk"
    assert functions(stack, dpdk) == ["0", "1"]
    assert functions(stack, default) == []
    stack.run_agent_cycle()
    assert functions(stack, default) == ["2", "3"]
    assert functions(stack, dpdk) == ["0", "1"]
    view = stack.provider_view()
    assert view[default]["inventories"][RC]["total"] == 2
    assert view[dpdk]["inventories"][RC]["total"] == 2
