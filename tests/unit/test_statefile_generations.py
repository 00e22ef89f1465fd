"""The state file's per-pool Placement generations (version 3); older files still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cyborg_smartnic import driver, report, statefile
from cyborg_smartnic.conductor_guards import next_ledger
from cyborg_smartnic.pools import ReportConfig
from tests.unit.test_report import HOST, make_host, make_pf

NAME = f"{HOST}_0000:3b:00.0"


def _plan(**kwargs: Any) -> tuple[report.DeviceSpec, ...]:
    return report.plan_report(make_host(make_pf(**kwargs)), ReportConfig(hostname=HOST))


def test_generations_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    four = _plan(vfs=4)
    state = statefile.State(four, next_ledger({}, (), four), frozenset(), {NAME: 7})
    statefile.save_state(str(path), state, HOST)
    assert json.loads(path.read_text())["version"] == 3
    loaded = statefile.load_state(str(path), HOST)
    assert loaded is not None and loaded.generations == {NAME: 7}


def test_a_version_2_file_loads_without_generations(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    four = _plan(vfs=4)
    data = json.loads(statefile.state_to_json(statefile.State(four, {}, frozenset(), {NAME: 3})))
    data["version"] = 2
    del data["generations"]
    path.write_text(json.dumps(data))
    loaded = statefile.load_state(str(path))
    assert loaded is not None and loaded.generations == {}
    assert report.specs_to_dicts(loaded.report) == report.specs_to_dicts(four)


def test_a_negative_generation_makes_the_file_unusable(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 3, "report": [], "ledger": {},
                                "generations": {NAME: -1}}))
    assert statefile.load_state(str(path)) is None


def test_generations_are_kept_only_for_pools_sent_as_they_were() -> None:
    four, two = _plan(vfs=4), _plan(vfs=2)
    last = statefile.State(four, {}, frozenset(), {NAME: 5, "gone": 1})
    assert driver.kept_generations(last, four) == {NAME: 5}
    assert driver.kept_generations(last, two) == {}  # the conductor changes that provider
