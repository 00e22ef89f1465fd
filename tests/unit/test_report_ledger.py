"""The attach-handle row ledger, the driver's state file and its Placement usage reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from keystoneauth1 import exceptions as ks_exc

from cyborg_smartnic import conductor_guards as guards
from cyborg_smartnic import driver, report
from cyborg_smartnic.pools import ReportConfig
from tests.unit.test_report import HOST, make_host, make_pf

NAME = f"{HOST}_0000:3b:00.0"
A, B, C, D, E = "a", "b", "c", "d", "e"


@pytest.mark.parametrize(("batches", "removed", "safe"), [
    (((A,), (B,), (C,)), {C}, True),
    (((A,), (B,), (C,)), {B, C}, True),
    (((A,), (B,), (C,)), {B}, False),
    (((A,), (B,), (C,)), {A, B, C}, True),
    (((A,), (B, C)), {C}, False),  # half a batch: its row order is unknown
    (((A,), (B, C)), {B, C}, True),
    (((A,), (B, C), (D, E)), {C, D, E}, False),
    (((A,), (B, C), (D, E)), {B, C, D, E}, True),
    (None, {A}, False),  # unknown order
    (None, set(), True),
])
def test_removal_is_safe_only_for_the_newest_rows(
        batches: tuple[tuple[str, ...], ...] | None, removed: set[str], safe: bool) -> None:
    assert guards.removal_is_safe(batches, removed) is safe


def _plan(**kwargs: Any) -> tuple[report.DeviceSpec, ...]:
    return report.plan_report(make_host(make_pf(**kwargs)), ReportConfig(hostname=HOST))


def test_ledger_follows_creation_additions_and_removals() -> None:
    four = _plan(vfs=4)
    infos = four[0].deployables[0].attach_infos
    created = guards.next_ledger({}, (), four)
    assert created == {NAME: tuple((i,) for i in infos)}
    six = _plan(vfs=6)
    grown = guards.next_ledger(created, four, six)
    assert grown[NAME][:4] == created[NAME]
    assert grown[NAME][4] == tuple(sorted(six[0].deployables[0].attach_infos[4:]))
    assert guards.next_ledger(grown, six, four) == created
    # an entry we know nothing about stays unknown after an addition
    assert guards.next_ledger({}, four, six) == {}


def test_unsafe_removals_and_leaving_pools_out() -> None:
    four = _plan(vfs=4)
    ledger = guards.next_ledger({}, (), four)
    assert guards.unsafe_removals(four, _plan(vfs=2), ledger) == ()
    middle = _plan(present=[0, 2, 3])
    assert guards.unsafe_removals(four, middle, ledger) == (NAME,)
    assert guards.unsafe_removals(four, middle, {}) == (NAME,)
    assert guards.unsafe_removals(four, _plan(vfs=6), {}) == ()  # additions are always safe
    (device,) = guards.without_deployables(middle, [NAME])
    assert device.address == "0000:3b:00.0" and device.deployables == ()


def test_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    four = _plan(vfs=4)
    state = driver.State(four, guards.next_ledger({}, (), four))
    driver.save_state(str(path), state)
    loaded = driver.load_state(str(path))
    assert loaded is not None
    assert loaded.ledger == state.ledger
    assert report.specs_to_dicts(loaded.report) == report.specs_to_dicts(four)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("content", "reason"), [
    ("", "not JSON"),
    ("{", "not JSON"),
    ('{"version": 99, "report": [], "ledger": {}}', "version: 99 is not one of [1, 2, 3]"),
    ('{"version": 1}', "'report' is a required property"),
    ("[]", "is not of type 'object'"),
    ('{"version": 2, "report": [], "ledger": {"a": NaN}}', "NaN is not a number JSON allows"),
    ('{"version": 2, "report": [], "ledger": {}, "x": ' + "9" * 5000 + "}", "not JSON"),
    ('{"version": 2, "report": [], "ledger": ' + "[" * 100_000 + "]" * 100_000 + "}",
     "nested too deeply"),
    ("\udcff".encode("utf-8", "surrogatepass").decode("latin-1"), "not JSON"),
])
def test_a_bad_state_file_is_ignored_with_one_line(
        tmp_path: Path, content: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.json"
    path.write_text(content, encoding="latin-1")
    assert driver.load_state(str(path)) is None
    (record,) = caplog.records
    assert "is unusable" in record.getMessage() and reason in record.getMessage()


def test_a_fifo_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os

    os.mkfifo(tmp_path / "state.json")
    assert driver.load_state(str(tmp_path / "state.json")) is None  # returns, no hang
    assert "not a regular file" in caplog.text


def test_a_state_file_of_another_host_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    driver.save_state(str(path), driver.State(_plan(vfs=2)), "compute-a")
    assert driver.load_state(str(path), "compute-a") is not None
    assert driver.load_state(str(path), "compute-b") is None


def test_missing_or_unset_state_file() -> None:
    assert driver.load_state(None) is None
    assert driver.load_state("/nonexistent/dir/state.json") is None
    driver.save_state(None, driver.State())  # nothing to do, nothing raised


def test_an_unwritable_state_file_is_only_logged(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    driver.save_state(str(tmp_path / "missing-dir" / "state.json"), driver.State())
    assert "Could not save smartnic state file" in caplog.text
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no directory made


def test_a_state_file_that_cannot_be_replaced_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale state is worse than none: it would hide handles Cyborg still has."""
    import os

    path = tmp_path / "state.json"
    assert driver.save_state(str(path), driver.State(_plan(vfs=4))) is None

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    reason = driver.save_state(str(path), driver.State(_plan(vfs=2)))
    assert reason is not None and "No space left on device" in reason
    assert list(tmp_path.iterdir()) == []


def test_the_state_file_is_locked_by_one_driver(tmp_path: Path) -> None:
    from cyborg_smartnic.statefile import StateFileInUse, StateLock

    path = str(tmp_path / "state.json")
    first = StateLock(path)
    assert first.held
    with pytest.raises(StateFileInUse, match="in use by another cyborg-agent"):
        StateLock(path)
    first.release()
    assert StateLock(path).held


class _Response:
    def __init__(self, status: int, body: Any = None) -> None:
        self.status_code = status
        self._body = body

    def json(self) -> Any:
        return self._body


class _Client:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.urls: list[str] = []

    def get(self, url: str, version: str | None = None) -> _Response:
        self.urls.append(url)
        answer = self.answers[url.split("/")[2]]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]


def test_placement_usage_reader_maps_every_answer() -> None:
    names = ["used", "free", "gone", "gone-raised", "broken", "error"]
    answers = {
        driver.rp_uuid("used"): _Response(200, {"usages": {"CUSTOM_X": 2, "CUSTOM_Y": 1}}),
        driver.rp_uuid("free"): _Response(200, {"usages": {"CUSTOM_X": 0}}),
        driver.rp_uuid("gone"): _Response(404),
        driver.rp_uuid("gone-raised"): ks_exc.NotFound(),
        driver.rp_uuid("broken"): _Response(503),
        driver.rp_uuid("error"): ks_exc.ConnectFailure("refused"),
    }
    reader = driver.PlacementReader()
    reader._client = _Client(answers)
    assert reader(names) == {"used": 3, "free": 0, "gone": 0, "gone-raised": 0,
                             "broken": None, "error": None}
    assert reader._client.urls[0] == f"/resource_providers/{driver.rp_uuid('used')}/usages"


def test_rp_uuid_is_the_conductors() -> None:
    import uuid

    assert driver.rp_uuid(NAME) == str(uuid.uuid3(uuid.NAMESPACE_DNS, NAME))


# -- rebuilding the view from Placement (conductor_guards.plan_recovery) --------------------
def test_pf_of_name_reads_this_hosts_names_only() -> None:
    assert report.pf_of_name(HOST, NAME) == "0000:3b:00.0"
    assert report.pf_of_name(HOST, f"{NAME}_dpdk") == "0000:3b:00.0"
    assert report.pf_of_name(HOST, "other-host_0000:3b:00.0") is None
    assert report.pf_of_name(HOST, f"{HOST}_bandwidth") is None  # ours by prefix, no PF
    odd = "host with spaces"
    assert report.pf_of_name(odd, report.deployable_name(odd, "0000:5e:00.1")) == "0000:5e:00.1"


@pytest.mark.parametrize(("usage", "agrees", "in_scan", "stubs", "rebuilds"), [
    (0, True, True, (), ()),  # unused and unchanged: taken as it is
    (0, False, True, (), (NAME,)),  # unused, changed: rebuilt (its rows are unknown)
    (0, False, False, (), ()),  # unused, gone: the conductor removes it
    (2, True, True, (), ()),  # in use, unchanged: the report changes none of its rows
    (2, False, True, ("0000:3b:00.0",), ()),  # in use, changed: stub until free
    (2, False, False, ("0000:3b:00.0",), ()),  # in use, gone from the scan: stub
    (None, True, True, ("0000:3b:00.0",), ()),  # usage unknown: stub
])
def test_plan_recovery(usage: int | None, agrees: bool, in_scan: bool,
                       stubs: tuple[str, ...], rebuilds: tuple[str, ...]) -> None:
    current = _plan(vfs=4) if in_scan else ()
    plan = guards.plan_recovery(current, {NAME: guards.Found("0000:3b:00.0", usage, agrees)})
    assert (plan.stubs, plan.rebuilds, plan.blocked) == (stubs, rebuilds, ())
    trusted = {dep.name for dev in plan.trusted for dep in dev.deployables}
    assert trusted == (set() if stubs or not in_scan else {NAME})


def test_plan_recovery_blocks_on_an_in_use_provider_it_cannot_place() -> None:
    plan = guards.plan_recovery((), {f"{HOST}_x": guards.Found(None, 1, False)})
    assert plan.blocked == (f"{HOST}_x",)
    new = guards.plan_recovery(_plan(vfs=2), {})
    assert new.trusted == ()  # pools Placement lacks are new: created whole, not believed


def test_changes_names_changed_pfs_and_dropped_pools() -> None:
    four, two, none = _plan(vfs=4), _plan(vfs=2), _plan(vfs=0)
    assert driver.changes(four, four) == (frozenset(), {})
    assert driver.changes(four, two) == (frozenset({"0000:3b:00.0"}), {})
    assert driver.changes(four, none) == (frozenset({"0000:3b:00.0"}), {NAME: "0000:3b:00.0"})
    assert driver.changes(four, ()) == (frozenset({"0000:3b:00.0"}), {NAME: "0000:3b:00.0"})
