"""conductor_guards on plans of hand-made hosts: what may be sent to Cyborg 17's conductor."""

from __future__ import annotations

from cyborg_smartnic import conductor_guards, report
from cyborg_smartnic.discovery.model import PhysicalFunction
from cyborg_smartnic.pools import ReportConfig
from tests.unit.test_report import CONFIG, HOST, make_host, make_pf, pool


# -- hold_in_use: an in-use pool never loses attach handles --------------------------------
def _plan(*pfs: PhysicalFunction) -> tuple[report.DeviceSpec, ...]:
    return report.plan_report(make_host(*pfs), CONFIG)


NAME = "cn1.example.org_0000:3b:00.0"


def test_hold_nothing_lost_is_a_no_op() -> None:
    before = _plan(make_pf())
    after = _plan(make_pf(vfs=6))
    assert conductor_guards.vanished_handles(before, after) == {}
    assert conductor_guards.hold_in_use(before, after, {}) == (after, ())


def test_hold_free_pool_shrinks_as_discovered() -> None:
    before, after = _plan(make_pf()), _plan(make_pf(present=[0, 1]))
    lost = conductor_guards.vanished_handles(before, after)
    assert list(lost) == [NAME] and len(lost[NAME]) == 2
    assert conductor_guards.hold_in_use(before, after, {NAME: 0}) == (after, ())


def test_hold_in_use_pool_keeps_vanished_handles_and_freezes_capacity() -> None:
    before, after = _plan(make_pf()), _plan(make_pf(present=[0, 1]))
    amended, holds = conductor_guards.hold_in_use(before, after, {NAME: 1})
    (dep,) = amended[0].deployables
    assert dep.attach_infos == before[0].deployables[0].attach_infos
    assert dep.num_accelerators == 1
    (hold,) = holds
    assert (hold.deployable, hold.used, hold.frozen_total) == (NAME, 1, 1)
    assert hold.vanished == tuple(sorted(set(before[0].deployables[0].attach_infos)
                                         - set(after[0].deployables[0].attach_infos)))


def test_hold_unknown_usage_reports_the_pool_as_it_was() -> None:
    before, after = _plan(make_pf()), _plan(make_pf(present=[0]))
    amended, holds = conductor_guards.hold_in_use(before, after, {NAME: None})
    assert amended[0].deployables == before[0].deployables
    assert holds[0].used is None


def test_hold_a_vanished_pf_in_use_stays_reported() -> None:
    other = make_pf("0000:5e:00.0", netdev="ens2f0")
    before, after = _plan(make_pf(), other), _plan(other)
    amended, _ = conductor_guards.hold_in_use(before, after, {NAME: 2})
    assert [d.address for d in amended] == ["0000:3b:00.0", "0000:5e:00.0"]
    assert amended[0].std_board_info == before[0].std_board_info
    assert amended[0].deployables[0].num_accelerators == 2
    assert amended[0].deployables[0].attach_infos == before[0].deployables[0].attach_infos
    dropped, _ = conductor_guards.hold_in_use(before, after, {NAME: 0})
    assert [d.address for d in dropped] == ["0000:5e:00.0"]


def test_hold_withholds_kept_handles_from_the_pool_they_moved_to() -> None:
    before = _plan(make_pf(vfs=4))
    moved = report.plan_report(make_host(make_pf(vfs=6)), ReportConfig(
        hostname=HOST, pools=(pool("dpdk", "ens1f0#2-5"),)))
    amended, holds = conductor_guards.hold_in_use(before, moved, {NAME: 3})
    default, dpdk = amended[0].deployables
    assert default.name == NAME
    assert default.attach_infos == before[0].deployables[0].attach_infos
    assert default.num_accelerators == 3
    assert dpdk.name == NAME + "_dpdk"
    assert dpdk.vf_addresses == ("0000:3b:01.4", "0000:3b:01.5")
    assert dpdk.num_accelerators == 2
    assert not set(default.attach_infos) & set(dpdk.attach_infos)
    assert [h.deployable for h in holds] == [NAME]


def test_hold_withheld_pool_that_empties_is_left_out() -> None:
    before = _plan(make_pf(vfs=4))
    moved = report.plan_report(make_host(make_pf(vfs=4)), ReportConfig(
        hostname=HOST, pools=(pool("dpdk", "ens1f0#2-3"),)))
    amended, _ = conductor_guards.hold_in_use(before, moved, {NAME: 3})
    assert [d.name for d in amended[0].deployables] == [NAME]


def test_hold_physnet_rename_keeps_old_handles_only_while_in_use() -> None:
    before = _plan(make_pf(physnet="old"))
    after = _plan(make_pf(physnet="new"))
    assert len(conductor_guards.vanished_handles(before, after)[NAME]) == 4
    amended, _ = conductor_guards.hold_in_use(before, after, {NAME: 1})
    (dep,) = amended[0].deployables
    assert len(dep.attach_infos) == 8 and dep.num_accelerators == 1
    assert "CUSTOM_PHYSNET_NEW" in dep.traits
    released, _ = conductor_guards.hold_in_use(before, after, {NAME: 0})
    assert released == after
