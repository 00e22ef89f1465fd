"""deploy/stacklib without starting a stack: process bookkeeping, the auth filter, the
stand-ins, the database seam and RabbitMQ's set-up files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from deploy.stacklib import database, noauth, procs, rabbit, standins
from tests.stack.conftest import missing_server_error


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


def test_a_background_job_that_fails_names_itself_with_its_log_tail(tmp_path: Path) -> None:
    """One helper for every schema migration (Cyborg's, Neutron's, nova-manage's)."""
    ok = procs.start_job("true job", ["sh", "-c", "echo fine"], tmp_path / "ok.log",
                         dict(os.environ))
    procs.finish_job(ok, 10)
    assert (tmp_path / "ok.log").read_text() == "fine\n"
    bad = procs.start_job("dbsync upgrade", ["sh", "-c", "echo 'no such table' >&2; exit 3"],
                          tmp_path / "bad.log", dict(os.environ))
    with pytest.raises(procs.StackError, match=r"^dbsync upgrade failed \(exit 3\); last "
                                               r"lines of .*bad\.log:\nno such table$"):
        procs.finish_job(bad, 10)


def test_a_background_job_that_hangs_is_killed_after_its_timeout(tmp_path: Path) -> None:
    job = procs.start_job("slow job", ["sleep", "30"], tmp_path / "slow.log", dict(os.environ))
    started = time.monotonic()
    failed = procs.job_failure(job, 0.5)
    assert failed is not None and failed.startswith("slow job failed (exit -9)")
    assert time.monotonic() - started < 5 and job.child.poll() == -9


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
    error = missing_server_error(monkeypatch, rabbit, tmp_path / "rabbitmq-server")
    assert error == (f"rabbitmq-server is not installed (no {tmp_path}/rabbitmq-server): "
                     "run `apt-get install rabbitmq-server`")


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


# -- the image stand-in ----------------------------------------------------------------------
def _get(path: str, method: str = "GET") -> tuple[str, Any]:
    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "HTTP_HOST": "127.0.0.1:9",
               "QUERY_STRING": path.partition("?")[2]}
    environ["PATH_INFO"] = path.partition("?")[0]
    body = b"".join(standins.application(environ, lambda s, h: status.append(s)))
    return status[0], json.loads(body)


def test_image_standin_discovers_v2_and_serves_its_one_image() -> None:
    status, body = _get("/image")
    assert status.startswith("300")
    assert body["versions"][0]["links"][0]["href"] == "http://127.0.0.1:9/image/v2/"
    status, image = _get(f"/image/v2/images/{standins.IMAGE_ID}")
    assert status.startswith("200")
    assert (image["id"], image["status"]) == (standins.IMAGE_ID, "active")
    assert set(image) <= set(_get("/image/v2/schemas/image")[1]["properties"])
    assert _get(f"/image/v2/images?name={standins.IMAGE_NAME}")[1]["images"] == [image]
    assert _get("/image/v2/images?name=other")[1]["images"] == []
    assert _get("/image/v2/images/00000000-0000-0000-0000-000000000000")[0].startswith("404")
    assert _get("/image/v2/images", method="POST")[0].startswith("405")


def test_no_network_standin_is_left_the_network_api_is_real_neutron() -> None:
    assert _get("/network/v2.0/ports?device_id=x")[0].startswith("404")


# -- The database seam and RabbitMQ set-up ------------------------------------------------
def test_the_database_seam_reads_back_the_server_stack_json_records(tmp_path: Path) -> None:
    server = database.plan(tmp_path / database.NAME)
    state = json.loads(json.dumps({"work_dir": str(tmp_path),
                                   database.NAME: database.state_entry(server, ["nova"])}))
    assert database.server_of(state) == server
    assert database.databases_of(state) == ["nova"]
    assert database.server_of(state).url("nova") == server.url("nova")


def test_rabbitmq_account_is_loaded_at_boot_with_a_salted_hash(tmp_path: Path) -> None:
    broker = rabbit.plan(tmp_path / "rabbitmq")
    (user,) = rabbit.definitions(broker)["users"]
    raw = base64.b64decode(user["password_hash"])
    assert raw[4:] == hashlib.sha256(raw[:4] + broker.password.encode()).digest()
    rabbit.prepare(broker)
    assert f"load_definitions = {tmp_path}/rabbitmq/definitions.json" in (
        tmp_path / "rabbitmq" / "rabbitmq.conf").read_text()
