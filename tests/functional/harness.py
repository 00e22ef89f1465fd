"""The real Cyborg and Placement in one process, for functional tests and benchmarks.

``InProcessCloud`` starts, per test, a fresh:

* Placement (the openstack-placement WSGI app on an in-memory database, behind wsgi-intercept;
  its config and database come from Placement's own ``PlacementFixture``);
* Cyborg database (a SQLite file built with cyborg's ``create_schema``);
* Cyborg conductor (the real ``ConductorManager`` served by ``cyborg.common.rpc.get_server`` on
  oslo.messaging's in-process ``fake:/`` transport);
* Cyborg agent (the real ``AgentManager``; its drivers come from ``[agent] enabled_drivers``,
  ``smartnic_driver`` by default, reading a generated sysfs tree under ``sysfs_root``, with
  ``[smartnic] state_file`` in the work directory unless a test overrides it);
* Cyborg API (the real paste pipeline with only ``authtoken`` swapped for ``fake_auth``, which
  sets the identity headers keystonemiddleware would);
* a Nova stand-in (``tests/functional/nova_standin.py``: real Nova cannot share this
  process with Cyborg) for ARQ bind notifications and flavors.

Cyborg's services talk to Placement and Nova through their real clients configured with
``auth_type = admin_token``. Everything is reachable over HTTP request helpers (``placement``,
``cyborg_api``, ``nova_api``), which go through the same wsgi-intercept hooks.

Typical use (see tests/functional/conftest.py for the pytest fixtures; scripts such as
bench/report/run.py use the fixture as a context manager)::

    with InProcessCloud(tmp_path, smartnic={"physical_device_mappings": "physnet1:ens1f0"}
                        ) as inproc:
        SysfsTree(inproc.sysfs_root).add_pf(...)     # mutate the host between cycles
        inproc.run_agent_cycle()
        inproc.placement.get("/resource_providers").json()
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cyborg.cmd  # noqa: F401  (selects oslo.service's threading backend, as cyborg-* do)
import fixtures
import oslo_messaging as messaging
import requests
from oslo_config import fixture as config_fixture
from oslo_db.sqlalchemy import enginefacade
from wsgi_intercept import interceptor

from tests.functional.nova_standin import NovaStandIn

COMPUTE_HOST = "compute1.example.org"
CONDUCTOR_HOST = "conductor1"
PLACEMENT_URL = "http://placement.test/placement"
CYBORG_URL = "http://cyborg.test"
NOVA_URL = "http://nova.test/v2.1"
PROJECT_ID = "6f70656e-7374-6163-6b20-70726f6a6563"
USER_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
PLACEMENT_VERSION = "1.39"
CYBORG_VERSION = "2.3"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# ---------------------------------------------------------------------------------------------
# Identity: what keystonemiddleware's auth_token would put in the environ.
# ---------------------------------------------------------------------------------------------
IDENTITY_HEADERS = {
    "HTTP_X_USER_ID": USER_ID,
    "HTTP_X_PROJECT_ID": PROJECT_ID,
    "HTTP_X_ROLES": "admin,member,reader",
    "HTTP_X_SERVICE_ROLES": "service",
    "HTTP_X_IDENTITY_STATUS": "Confirmed",
}


def fake_auth_factory(global_config: Mapping[str, Any], **local_conf: Any) -> Callable[
        [WsgiApp], WsgiApp]:
    """Paste filter standing in for ``authtoken``: fills identity headers a request lacks.

    A request that sends a header itself (``X-Service-Roles: ""`` to act without a service
    token, another ``X-Roles``) keeps its own value, so tests can exercise the API's checks.
    """
    del global_config, local_conf

    def _filter(app: WsgiApp) -> WsgiApp:
        def _call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            for key, value in IDENTITY_HEADERS.items():
                environ.setdefault(key, value)
            environ.setdefault("HTTP_X_AUTH_TOKEN", "fake-user-token")
            return app(environ, start_response)

        return _call

    return _filter


API_PASTE = """\
[pipeline:main]
pipeline = request_id fake_auth api_v2

[app:api_v2]
paste.app_factory = cyborg.api.app:app_factory

[filter:request_id]
paste.filter_factory = oslo_middleware:RequestId.factory

[filter:fake_auth]
paste.filter_factory = tests.functional.harness:fake_auth_factory
"""


# ---------------------------------------------------------------------------------------------
# HTTP helpers and request accounting
# ---------------------------------------------------------------------------------------------
class HttpError(AssertionError):
    """An unexpected status from a service, with the body to show why."""


@dataclass
class HttpClient:
    """``requests`` against one intercepted service, with its version header preset."""

    base_url: str
    headers: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, *, json_body: Any = None,
                headers: Mapping[str, str] | None = None,
                expect: int | Iterable[int] | None = None) -> requests.Response:
        merged = {**self.headers, **(headers or {})}
        response = self.session.request(method, self.base_url + path, json=json_body,
                                        headers=merged, timeout=60)
        if expect is not None:
            allowed = {expect} if isinstance(expect, int) else set(expect)
            if response.status_code not in allowed:
                raise HttpError(f"{method} {path} -> {response.status_code} (expected "
                                f"{sorted(allowed)}): {response.text[:2000]}")
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json_body=body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, json_body=body, **kwargs)

    def patch(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, json_body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


@dataclass
class RequestLog:
    """Every request a WSGI app served: ``(method, path?query, status)``, in order."""

    entries: list[tuple[str, str, int]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def _call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            method = environ["REQUEST_METHOD"]

            def _start(status: str, headers: Any, exc_info: Any = None) -> Any:
                with self._lock:
                    self.entries.append((method, path, int(status.split(maxsplit=1)[0])))
                return start_response(status, headers, exc_info) if exc_info else \
                    start_response(status, headers)

            return app(environ, _start)

        return _call

    def mark(self) -> int:
        """A position to count from (``since(mark)``)."""
        with self._lock:
            return len(self.entries)

    def since(self, mark: int = 0) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self.entries[mark:])

    def by_method(self, mark: int = 0) -> dict[str, int]:
        return dict(sorted(Counter(m for m, _, _ in self.since(mark)).items()))

    def writes(self, mark: int = 0) -> list[tuple[str, str, int]]:
        return [e for e in self.since(mark) if e[0] in ("POST", "PUT", "PATCH", "DELETE")]


# ---------------------------------------------------------------------------------------------
# Faults at the HTTP boundary
# ---------------------------------------------------------------------------------------------
FAULT_KINDS = ("500", "503", "409", "timeout")
_FAULT_BODY = {
    "500": ("500 Internal Server Error", "placement.undefined_code"),
    "503": ("503 Service Unavailable", "placement.undefined_code"),
    "409": ("409 Conflict", "placement.concurrent_update"),
}


@dataclass
class FaultInjector:
    """A WSGI wrapper that makes the ``nth`` request (0-based) matching a pattern fail.

    Kinds: ``500``/``503``/``409`` answer with Placement's error body and never reach the
    app (nothing is applied); ``timeout`` lets the app apply the request and then breaks the
    connection while the client reads the answer, so the client sees a read timeout
    (``socket.timeout`` -> requests' ``ReadTimeout`` -> keystoneauth's ``ConnectTimeout``)
    for a request that did happen. ``fired`` records what was failed.
    """

    armed: list[tuple[str, int, str, str]] = field(default_factory=list)
    fired: list[tuple[str, str, str]] = field(default_factory=list)
    _seen: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, nth: int, kind: str, method: str = "", pattern: str = "") -> None:
        """Fail the ``nth`` request from now whose method is ``method`` (any when empty)
        and whose path contains ``pattern``."""
        assert kind in FAULT_KINDS, kind
        with self._lock:
            self._seen.clear()
            self.armed = [(kind, nth, method, pattern)]

    def clear(self) -> None:
        with self._lock:
            self.armed, self._seen = [], Counter()

    def _match(self, method: str, path: str) -> str | None:
        with self._lock:
            for index, (kind, nth, want_method, pattern) in enumerate(self.armed):
                if (want_method and method != want_method) or pattern not in path:
                    continue
                seen = self._seen[index]
                self._seen[index] += 1
                if seen == nth:
                    del self.armed[index]
                    self.fired.append((kind, method, path))
                    return kind
        return None

    def wrap(self, app: WsgiApp) -> WsgiApp:
        def _call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            kind = self._match(environ["REQUEST_METHOD"], path)
            if kind is None:
                return app(environ, start_response)
            if kind == "timeout":
                list(app(environ, start_response))  # applied ...
                return _lost_answer()  # ... but the answer never arrives
            status, code = _FAULT_BODY[kind]
            body = json.dumps({"errors": [{"status": int(status[:3]), "title": status[4:],
                                           "detail": "injected by the test", "code": code}]})
            start_response(status, [("Content-Type", "application/json"),
                                    ("Content-Length", str(len(body)))])
            return [body.encode()]

        return _call


def _lost_answer() -> Iterator[bytes]:
    raise TimeoutError("timed out")
    yield b""  # pragma: no cover  (makes this a generator: raised while the client reads)


def _intercept(fixture: fixtures.Fixture, app: WsgiApp, url: str) -> None:
    intercept = interceptor.RequestsInterceptor(lambda: app, url=url)
    intercept.install_intercept()
    fixture.addCleanup(intercept.uninstall_intercept)


# ---------------------------------------------------------------------------------------------
# The in-process cloud
# ---------------------------------------------------------------------------------------------
def _ini(sections: Mapping[str, Mapping[str, Any]]) -> str:
    lines: list[str] = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        for key, value in options.items():
            if isinstance(value, list | tuple):
                text = ",".join(str(v) for v in value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)


class InProcessCloud(fixtures.Fixture):
    """One fresh in-process cloud: Placement, Cyborg conductor/agent/API, Nova stand-in.

    ``smartnic`` holds ``[smartnic]`` options, ``pools`` maps a pool name to its
    ``[smartnic_pool:NAME]`` options (``pools`` in ``[smartnic]`` is filled in for you).
    ``sysfs_root`` (default ``<workdir>/host``) is what the driver reads; build and mutate the
    tree there. The compute-node resource provider is created in Placement first, as Nova
    would, unless ``create_compute_rp`` is false (then call ``create_compute_rp()`` and
    ``start_agent()`` yourself).
    """

    def __init__(self, workdir: Path, *, hostname: str = COMPUTE_HOST,
                 smartnic: Mapping[str, Any] | None = None,
                 pools: Mapping[str, Mapping[str, Any]] | None = None,
                 enabled_drivers: str = "smartnic_driver",
                 sysfs_root: Path | None = None,
                 create_compute_rp: bool = True, start_agent: bool = True) -> None:
        super().__init__()
        self.workdir = Path(workdir)
        self.hostname = hostname
        self.smartnic = dict(smartnic or {})
        self.pools = {name: dict(opts) for name, opts in (pools or {}).items()}
        self.enabled_drivers = enabled_drivers
        self.sysfs_root = Path(sysfs_root) if sysfs_root else self.workdir / "host"
        self._create_compute_rp = create_compute_rp
        self._start_agent = start_agent
        self.config_file = self.workdir / "cyborg.conf"
        self.placement_log = RequestLog()
        self.placement_faults = FaultInjector()
        self.nova = NovaStandIn()
        self.agent: Any = None
        self.conductor: Any = None
        self._conductor_server: Any = None
        self.compute_rp_uuid: str | None = None

    # -- setup ----------------------------------------------------------------------------
    def _setUp(self) -> None:
        from cyborg import objects
        from cyborg.common import config as cyborg_config
        from cyborg.common import rpc
        from cyborg.conf import CONF
        from cyborg.db.sqlalchemy import api as cyborg_db_api
        from cyborg.db.sqlalchemy import migration
        from placement import deploy as placement_deploy
        from placement.tests.functional.fixtures.placement import PlacementFixture

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sysfs_root.mkdir(parents=True, exist_ok=True)

        # Placement: its own ConfigOpts and in-memory database; we intercept it ourselves so
        # every request is counted.
        placement = self.useFixture(PlacementFixture(use_intercept=False))
        app = placement_deploy.loadapp(placement.conf_fixture.conf)
        _intercept(self, self.placement_log.wrap(self.placement_faults.wrap(app)),
                   PLACEMENT_URL)
        _intercept(self, self.nova, NOVA_URL.rsplit("/", 1)[0])

        # Cyborg's global CONF, restored after the test.
        self.useFixture(config_fixture.Config(CONF))
        (self.workdir / "api-paste.ini").write_text(API_PASTE)
        self.write_config()
        objects.register_all()
        cyborg_config.parse_args([], default_config_files=[str(self.config_file)])
        self.addCleanup(rpc.cleanup)

        # Cyborg database: a fresh SQLite file behind both cyborg's and oslo.db's facades.
        facade = enginefacade.transaction_context()
        facade.configure(connection=CONF.database.connection, sqlite_fk=False)
        for manager in (cyborg_db_api.main_context_manager, enginefacade._context_manager):
            self.addCleanup(manager.patch_factory(facade))
        engine = facade.writer.get_engine()
        migration.create_schema(engine=engine)
        self.addCleanup(engine.dispose)

        # Conductor: the real manager behind a real RPC server on fake:/.
        self.start_conductor()
        self.addCleanup(self.stop_conductor)

        # API and HTTP helpers.
        from cyborg.api import app as api_app
        _intercept(self, api_app.load_app(), CYBORG_URL)
        self.placement = HttpClient(PLACEMENT_URL, {
            "X-Auth-Token": "admin", "OpenStack-API-Version": f"placement {PLACEMENT_VERSION}"})
        self.cyborg_api = HttpClient(CYBORG_URL, {
            "OpenStack-API-Version": f"accelerator {CYBORG_VERSION}"})
        self.nova_api = HttpClient(NOVA_URL, {"X-Auth-Token": "admin"})

        self.addCleanup(self.stop_agent)
        if self._create_compute_rp:
            self.create_compute_rp()
            if self._start_agent:
                self.start_agent()

    def start_conductor(self) -> Any:
        """A new ConductorManager behind a new RPC server, as a (re)started cyborg-conductor
        process; it serves what is queued for it, as a restarted one would from RabbitMQ."""
        from cyborg.common import constants, rpc
        from cyborg.conductor.manager import ConductorManager
        from cyborg.objects import base as objects_base

        self.conductor = ConductorManager(constants.CONDUCTOR_TOPIC, CONDUCTOR_HOST)
        target = messaging.Target(topic=constants.CONDUCTOR_TOPIC, server=CONDUCTOR_HOST)
        self._conductor_server = rpc.get_server(target, [self.conductor],
                                                objects_base.CyborgObjectSerializer())
        self._conductor_server.start()
        self.conductor.init_host()
        return self.conductor

    def stop_conductor(self) -> None:
        """Stop the conductor's RPC server (a stopped cyborg-conductor process)."""
        server, self._conductor_server = self._conductor_server, None
        if server is not None:
            self._stop_server(server)

    @staticmethod
    def _stop_server(server: Any) -> None:
        server.stop()
        server.wait()

    def write_config(self) -> None:
        """(Re)write cyborg.conf from the current ``smartnic`` / ``pools`` settings."""
        smartnic = {"sysfs_root": str(self.sysfs_root),
                    "state_file": str(self.workdir / "smartnic-state.json"), **self.smartnic}
        if self.pools:
            smartnic["pools"] = list(self.pools)
        ksa = {"auth_type": "admin_token", "token": "admin"}
        sections: dict[str, Mapping[str, Any]] = {
            "DEFAULT": {"transport_url": "fake:/", "host": CONDUCTOR_HOST,
                        "rpc_response_timeout": 60, "graceful_shutdown_timeout": 1},
            "database": {"connection": f"sqlite:///{self.workdir / 'cyborg.db'}"},
            "api": {"api_paste_config": str(self.workdir / "api-paste.ini")},
            "agent": {"enabled_drivers": self.enabled_drivers,
                      "resource_provider_name": self.hostname,
                      "resource_provider_startup_retries": 0},
            "placement": {**ksa, "endpoint": PLACEMENT_URL, "endpoint_override": PLACEMENT_URL},
            "nova": {**ksa, "endpoint": NOVA_URL, "endpoint_override": NOVA_URL},
            "smartnic": smartnic,
        }
        for name, options in self.pools.items():
            sections[f"smartnic_pool:{name}"] = options
        self.config_file.write_text(_ini(sections))

    # -- Nova's part and the agent ---------------------------------------------------------
    def create_compute_rp(self, name: str | None = None) -> str:
        """Create the compute-node resource provider as nova-compute would; returns its UUID."""
        rp_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, name or self.hostname))
        self.placement.post("/resource_providers",
                            {"name": name or self.hostname, "uuid": rp_uuid}, expect=200)
        if name is None:
            self.compute_rp_uuid = rp_uuid
        return rp_uuid

    def start_agent(self) -> Any:
        """Build the real AgentManager (loads and initialises the enabled drivers), after
        stopping the previous one as its process would stop."""
        from cyborg.agent.manager import AgentManager
        from cyborg.common import constants

        self.stop_agent()
        self.agent = AgentManager(constants.AGENT_TOPIC, self.hostname)
        return self.agent

    def stop_agent(self) -> None:
        """Let the agent's drivers go, as an exiting cyborg-agent does (the smartnic driver
        releases its state-file lock)."""
        if self.agent is None:
            return
        for driver in self.agent._rt.acc_drivers:
            close = getattr(driver, "close", None)
            if close is not None:
                close()
        self.agent = None

    def restart_agent(self, *, smartnic: Mapping[str, Any] | None = None,
                      pools: Mapping[str, Mapping[str, Any]] | None = None) -> Any:
        """Rewrite cyborg.conf with new smartnic/pool options and start a new agent on it."""
        from cyborg.conf import CONF

        if smartnic is not None:
            self.smartnic = dict(smartnic)
        if pools is not None:
            self.pools = {name: dict(opts) for name, opts in pools.items()}
        self.write_config()
        CONF.reload_config_files()
        return self.start_agent()

    def run_agent_cycle(self) -> None:
        """One ``update_available_resource`` run: every driver's discover(), one report.

        Exceptions propagate (the periodic task runner would log them and skip the cycle).
        """
        from cyborg import context

        if self.agent is None:
            self.start_agent()
        self.agent.update_available_resource(context.get_admin_context())

    def run_agent_cycle_split(self) -> tuple[list[tuple[str, str, int]],
                                             list[tuple[str, str, int]]]:
        """One agent cycle, its Placement requests split by sender: ``(the driver's, the
        others')``. The driver's are those made while its ``discover()`` ran; the others are
        the conductor's (and any the agent makes around the report)."""
        if self.agent is None:
            self.start_agent()
        (driver,) = self.agent._rt.acc_drivers
        marks: list[int] = []
        discover = driver.discover

        def marked() -> Any:
            marks.append(self.placement_log.mark())
            try:
                return discover()
            finally:
                marks.append(self.placement_log.mark())

        driver.discover = marked
        try:
            first = self.placement_log.mark()
            self.run_agent_cycle()
        finally:
            driver.discover = discover
        entries = self.placement_log.since(first)
        begin, end = marks[0] - first, marks[1] - first
        return entries[begin:end], entries[:begin] + entries[end:]

    # -- Reading back ------------------------------------------------------------------------
    def resource_providers(self) -> list[dict[str, Any]]:
        """Every RP nested under the compute node, sorted by name."""
        assert self.compute_rp_uuid
        rps = self.placement.get(f"/resource_providers?in_tree={self.compute_rp_uuid}",
                                 expect=200).json()["resource_providers"]
        return sorted((rp for rp in rps if rp["uuid"] != self.compute_rp_uuid),
                      key=lambda rp: rp["name"])

    def provider_view(self) -> dict[str, dict[str, Any]]:
        """``{rp name: {"uuid", "parent", "inventories", "traits", "usages"}}`` for the tree."""
        view: dict[str, dict[str, Any]] = {}
        for rp in self.resource_providers():
            base = f"/resource_providers/{rp['uuid']}"
            view[rp["name"]] = {
                "uuid": rp["uuid"],
                "parent": rp["parent_provider_uuid"],
                "inventories": {
                    rc: {"total": inv["total"], "max_unit": inv["max_unit"],
                         "reserved": inv["reserved"]}
                    for rc, inv in self.placement.get(f"{base}/inventories", expect=200)
                    .json()["inventories"].items()},
                "traits": sorted(self.placement.get(f"{base}/traits", expect=200)
                                 .json()["traits"]),
                "usages": self.placement.get(f"{base}/usages", expect=200).json()["usages"],
            }
        return view

    def deployables(self) -> list[dict[str, Any]]:
        return sorted(self.cyborg_api.get("/v2/deployables", expect=200).json()["deployables"],
                      key=lambda d: d["name"])

    def devices(self) -> list[dict[str, Any]]:
        return sorted(self.cyborg_api.get("/v2/devices", expect=200).json()["devices"],
                      key=lambda d: d["std_board_info"] or "")

    def attach_handles(self) -> list[dict[str, Any]]:
        """Attach handles straight from Cyborg's DB (the API has no attach-handle resource)."""
        from cyborg import context
        from cyborg.objects.attach_handle import AttachHandle
        from cyborg.objects.deployable import Deployable

        ctx = context.get_admin_context()
        names = {d.id: d.name for d in Deployable.list(ctx)}
        return sorted(
            ({"deployable": names.get(ah.deployable_id), "attach_info": ah.attach_info,
              "attach_type": ah.attach_type, "in_use": ah.in_use}
             for ah in AttachHandle.list(ctx)),
            key=lambda ah: (ah["deployable"] or "", ah["attach_info"]))

    # -- Nova's flow with device profiles ---------------------------------------------------
    def create_device_profile(self, name: str, groups: list[dict[str, str]],
                              description: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "groups": groups}
        if description is not None:
            body["description"] = description
        response = self.cyborg_api.post("/v2/device_profiles", [body], expect=201)
        result: dict[str, Any] = response.json()
        return result

    def allocation_candidates(self, groups: list[Mapping[str, str]],
                              limit: int | None = None) -> dict[str, Any]:
        """``GET /allocation_candidates`` with one numbered request group per profile group.

        Built by ``request_groups_query``, the suite's one copy of Nova's translation.
        """
        query = request_groups_query(groups)
        if limit:
            query += f"&limit={limit}"
        result: dict[str, Any] = self.placement.get(f"/allocation_candidates?{query}",
                                                    expect=200).json()
        return result

    def claim(self, consumer: str, allocation_request: Mapping[str, Any]) -> None:
        """Write an allocation candidate as the consumer's allocations, as Nova's scheduler."""
        self.placement.put(f"/allocations/{consumer}", {
            "allocations": allocation_request["allocations"],
            "project_id": PROJECT_ID, "user_id": USER_ID, "consumer_generation": None,
            "consumer_type": "INSTANCE",
        }, expect=204)

    def release(self, consumer: str) -> None:
        self.placement.delete(f"/allocations/{consumer}", expect=(204, 404))

    def create_arqs(self, device_profile: str) -> list[dict[str, Any]]:
        arqs: list[dict[str, Any]] = self.cyborg_api.post(
            "/v2/accelerator_requests", {"device_profile_name": device_profile},
            expect=201).json()["arqs"]
        return arqs

    def bind_arq(self, arq_uuid: str, device_rp_uuid: str, instance_uuid: str, *,
                 hostname: str | None = None, headers: Mapping[str, str] | None = None,
                 expect: int | Iterable[int] = 202) -> requests.Response:
        patch = {arq_uuid: [
            {"path": "/hostname", "op": "add", "value": hostname or self.hostname},
            {"path": "/device_rp_uuid", "op": "add", "value": device_rp_uuid},
            {"path": "/instance_uuid", "op": "add", "value": instance_uuid},
        ]}
        return self.cyborg_api.patch("/v2/accelerator_requests", patch, headers=headers,
                                     expect=expect)

    def unbind_arq(self, arq_uuid: str, expect: int | Iterable[int] = 202) -> requests.Response:
        patch = {arq_uuid: [{"path": f"/{p}", "op": "remove"}
                            for p in ("hostname", "device_rp_uuid", "instance_uuid")]}
        return self.cyborg_api.patch("/v2/accelerator_requests", patch, expect=expect)

    def get_arq(self, arq_uuid: str) -> dict[str, Any]:
        result: dict[str, Any] = self.cyborg_api.get(f"/v2/accelerator_requests/{arq_uuid}",
                                                     expect=200).json()
        return result


def request_groups_query(groups: Iterable[Mapping[str, str]]) -> str:
    """Nova's translation of device-profile groups into a Placement query string.

    As nova-scheduler sends it (the stack tier shows it from Placement's log): each group is a
    request group suffixed ``device_profile_N`` that one provider must satisfy
    (``resourcesdevice_profile_0=CUSTOM_X:1&requireddevice_profile_0=CUSTOM_Y,!CUSTOM_Z``),
    isolated from each other when there are several. The compute node's own resources and
    ``root_required`` are left out: the in-process tier has no Nova to ask for them.
    """
    parts: list[str] = []
    suffixes: list[str] = []
    for index, group in enumerate(groups):
        suffix = f"device_profile_{index}"
        suffixes.append(suffix)
        resources = [f"{k.split(':', 1)[1]}:{v}" for k, v in sorted(group.items())
                     if k.startswith("resources:")]
        required = [k.split(":", 1)[1] if v == "required" else "!" + k.split(":", 1)[1]
                    for k, v in sorted(group.items()) if k.startswith("trait:")]
        parts.append(f"resources{suffix}={','.join(resources)}")
        if required:
            parts.append(f"required{suffix}={','.join(required)}")
    if len(suffixes) > 1:
        parts.append("group_policy=isolate")
    return "&".join(parts)
