"""deploy/stacklib: the process bookkeeping and the auth filter, without starting a stack."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))

from stacklib import noauth, procs, rabbit  # noqa: E402


def _spawn(tmp_path: Path, script: str) -> procs.Proc:
    return procs.spawn("t", ["sh", "-c", script], dict(os.environ), tmp_path, cwd=tmp_path)


def test_stop_terminates_and_second_stop_is_a_no_op(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "exec sleep 30")
    assert procs.is_alive(proc)
    assert procs.stop(proc) == "stopped"
    assert not procs.is_alive(proc)
    assert procs.stop(proc) == "not running"


def test_stop_kills_what_ignores_term(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "trap '' TERM; echo ready; while :; do sleep 0.1; done")
    procs.wait_until(lambda: "ready" in Path(proc.log).read_text(), proc, "boot", 10)
    assert procs.stop(proc, grace=0.5).startswith("killed after")
    assert not procs.is_alive(proc)


def test_stop_reaps_children_left_in_the_group(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "sleep 30 & echo $! > child.tmp && mv child.tmp child; exec sleep 31")
    procs.wait_until((tmp_path / "child").exists, proc, "fork", 30)
    child = int((tmp_path / "child").read_text())
    members = procs.group_members(proc.pid)
    assert child in members, members
    outcome = procs.stop(proc)
    assert "leftovers" in outcome, outcome
    assert procs.group_members(proc.pid) == []


def test_a_recycled_pid_is_never_signalled() -> None:
    me = procs.Proc(name="me", pid=os.getpid(), start_ticks=1, log="/dev/null", argv=("x",))
    assert procs.start_ticks(os.getpid()) != 1
    assert not procs.is_alive(me)
    assert procs.stop(me) == "not running"  # and this test process is still here


def test_a_service_dying_at_start_fails_with_its_log_tail(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "echo 'boom: port in use' >&2; exit 3")
    with pytest.raises(procs.StackError) as caught:
        procs.wait_until(lambda: False, proc, "waiting for t", 10)
    assert "t exited while waiting for t" in str(caught.value)
    assert "boom: port in use" in str(caught.value)


def test_wait_until_times_out_with_a_clear_message(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "exec sleep 30")
    started = time.monotonic()
    with pytest.raises(procs.StackError, match="timed out after 1 s waiting for nothing"):
        procs.wait_until(lambda: False, proc, "waiting for nothing", 1.0, interval=0.1)
    assert time.monotonic() - started < 5
    procs.stop(proc)


def test_records_round_trip(tmp_path: Path) -> None:
    records = [procs.Proc("a", 1, 2, "/x.log", ("a", "b"))]
    procs.save(records, tmp_path / "pids.json")
    assert procs.load(tmp_path / "pids.json") == records
    assert procs.load(tmp_path / "missing.json") == []
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(procs.StackError, match="unreadable PID records"):
        procs.load(tmp_path / "bad.json")


def test_missing_rabbitmq_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setattr(rabbit, "SERVER", str(tmp_path / "rabbitmq-server"))
    with pytest.raises(procs.StackError) as caught:
        rabbit.check_installed()
    assert str(caught.value) == (f"rabbitmq-server is not installed (no {tmp_path}/"
                                 "rabbitmq-server): run `apt-get install rabbitmq-server`")


# -- the auth filter -----------------------------------------------------------------------
def _call(headers: dict[str, str], path: str = "/v2/device_profiles"
          ) -> tuple[str, dict[str, Any]]:
    seen: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(environ)
        start_response("200 OK", [])
        return [b""]

    status: list[str] = []
    flt = noauth.filter_factory({}, public_routes="/, /v2")(app)
    environ = {"PATH_INFO": path, **{"HTTP_" + k.upper().replace("-", "_"): v
                                      for k, v in headers.items()}}
    body = b"".join(flt(environ, lambda s, h: status.append(s)))
    return status[0], seen if seen else json.loads(body)


def test_no_token_is_401_and_public_routes_pass() -> None:
    status, body = _call({})
    assert status.startswith("401")
    assert "X-Auth-Token" in body["error"]["message"]
    assert _call({}, path="/")[0].startswith("200")
    assert _call({}, path="/v2/")[0].startswith("200")


def test_admin_token_sets_identity_and_drops_spoofed_headers() -> None:
    status, env = _call({"X-Auth-Token": "admin", "X-Service-Roles": "service",
                         "X-Roles": "superuser"})
    assert status.startswith("200")
    assert env["HTTP_X_ROLES"] == "admin,member,reader"
    assert env["HTTP_X_PROJECT_ID"] == noauth.PROJECT_ID
    assert "HTTP_X_SERVICE_ROLES" not in env


def test_service_token_makes_a_service_request() -> None:
    status, env = _call({"X-Auth-Token": "admin", "X-Service-Token": "service"})
    assert status.startswith("200")
    assert env["HTTP_X_SERVICE_ROLES"] == "service"
    assert _call({"X-Auth-Token": "admin", "X-Service-Token": "guess"})[0].startswith("401")
    assert _call({"X-Auth-Token": "wrong"})[0].startswith("401")
