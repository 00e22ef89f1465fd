"""While ``host apply`` holds the host lock, the driver reports the PFs it changes as it
last did: real agent, conductor and Placement; the lock is the one ``host apply`` takes."""

from __future__ import annotations

import os
from collections.abc import Callable

from cyborg_smartnic.host import lock
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
PF0, PF1 = "0000:5e:00.0", "0000:5e:00.1"


def total(inproc: InProcessCloud, pf: str) -> int | None:
    view = inproc.provider_view().get(f"{inproc.hostname}_{pf}")
    return None if view is None else int(view["inventories"][RC]["total"])


def test_pools_of_pfs_being_changed_hold_still_until_the_apply_ends(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens2f0,physnet2:ens2f1"})
    tree = SysfsTree(inproc.sysfs_root)
    for pf, netdev, vfs in ((PF0, "ens2f0", 4), (PF1, "ens2f1", 2)):
        tree.add_pf(pf, PfOptions(
            vendor="8086", device="1592", driver="ice", netdev=netdev, numa_node=0, total_vfs=16,
            num_vfs=vfs, eswitch="legacy", fw_version="4.40"))
    inproc.run_agent_cycle()
    assert (total(inproc, PF0), total(inproc, PF1)) == (4, 2)

    path = os.path.join(str(inproc.sysfs_root), lock.LOCK_NAME)
    with lock.hold(path, wait=0) as held:
        held.changing([PF0])
        tree.set_num_vfs(PF0, 0)  # mid-apply: going through 0 on the way to 8
        tree.set_num_vfs(PF1, 3)  # not part of the apply: reported as it is
        inproc.run_agent_cycle()
        assert (total(inproc, PF0), total(inproc, PF1)) == (4, 3)
        tree.set_num_vfs(PF0, 8)
    inproc.run_agent_cycle()
    assert (total(inproc, PF0), total(inproc, PF1)) == (8, 3)
