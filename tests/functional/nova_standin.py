"""A Nova API stand-in for the in-process functional tier only: flavors, extra specs, events.

The functional tier runs Cyborg and Placement in the test process. Real Nova cannot join
them there: Nova and Cyborg both register options on the global ``oslo_config.cfg.CONF``
(``DuplicateOptError``). So in this tier, Cyborg's ``accelerator-request-bound``
notification (``POST /v2.1/os-server-external-events``) and the flavors that
``cyborg-smartnic profile apply`` writes go to this WSGI app, which follows Nova's
documented request and response bodies for just those calls and keeps them in memory
(mounted with wsgi-intercept by tests/functional/harness.py). The local stack
(deploy/stack.py) and the stack tests run the real Nova instead.

Only what a client needs to see is modelled: no servers, no policy, no pagination.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MIN_VERSION = "2.1"
MAX_VERSION = "2.96"
# Nova's server external event names and statuses (nova/api/openstack/compute/schemas).
EVENT_NAMES = frozenset({
    "network-changed", "network-vif-plugged", "network-vif-unplugged", "network-vif-deleted",
    "volume-extended", "power-update", "accelerator-request-bound", "volume-reimaged",
})
EVENT_STATUSES = frozenset({"failed", "completed", "in-progress"})
_SPEC_KEY = re.compile(r"[a-zA-Z0-9\-_:. /]{1,255}")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Json = dict[str, Any]


class HttpError(Exception):
    """An error answered as Nova does: ``{"<kind>": {"code": N, "message": "..."}}``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Flavor:
    id: str
    name: str
    ram: int
    vcpus: int
    disk: int
    ephemeral: int = 0
    swap: int = 0
    rxtx_factor: float = 1.0
    is_public: bool = True
    description: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict)


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


class NovaStandIn:
    """The WSGI application; its state (``flavors``, ``events``) is readable by tests."""

    def __init__(self) -> None:
        self.flavors: dict[str, Flavor] = {}
        self.events: list[Json] = []
        self._lock = threading.Lock()

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).rstrip("/")
        base = _base_url(environ)
        try:
            version = _negotiate(environ)
            body = _read_json(environ) if method in ("POST", "PUT") else None
            with self._lock:
                status, payload = self._route(method, path, body, base)
        except HttpError as exc:
            kind = "itemNotFound" if exc.status == HTTPStatus.NOT_FOUND else (
                "conflictingRequest" if exc.status == HTTPStatus.CONFLICT else "badRequest")
            status, payload = exc.status, {kind: {"code": exc.status.value,
                                                  "message": exc.message}}
            version = MAX_VERSION
        data = b"" if payload is None else json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                   ("OpenStack-API-Version", f"compute {version}"),
                   ("X-OpenStack-Nova-API-Version", version),
                   ("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")]
        start_response(f"{status.value} {status.phrase}", headers)
        return [data]

    def _route(self, method: str, path: str, body: Any,
               base: str) -> tuple[HTTPStatus, Json | None]:
        parts = [p for p in path.split("/") if p]
        if not parts:
            if method == "GET":
                return HTTPStatus.OK, {"versions": [_version_doc(base)]}
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
        if parts[0] != "v2.1":
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource {path!r}")
        rest = parts[1:]
        if len(rest) > 1 and re.fullmatch(r"[0-9a-f]{32}|[0-9a-f-]{36}", rest[0]):
            rest = rest[1:]  # legacy /v2.1/{project_id}/... URLs
        if not rest and method == "GET":
            return HTTPStatus.OK, {"version": _version_doc(base)}
        if rest == ["os-server-external-events"] and method == "POST":
            return self._external_events(body)
        if rest and rest[0] == "flavors":
            return self._flavors(method, rest[1:], body, base)
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such resource {method} {path!r}")

    # -- os-server-external-events --------------------------------------------------------
    def _external_events(self, body: Any) -> tuple[HTTPStatus, Json]:
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list) or not events:
            raise HttpError(HTTPStatus.BAD_REQUEST, "'events' must be a non-empty list")
        answered = []
        for event in events:
            if not isinstance(event, dict) or event.get("name") not in EVENT_NAMES:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"invalid event {event!r}")
            if not isinstance(event.get("server_uuid"), str):
                raise HttpError(HTTPStatus.BAD_REQUEST, "'server_uuid' is required")
            status = event.get("status", "completed")
            if status not in EVENT_STATUSES:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"invalid status {status!r}")
            answered.append({**event, "status": status, "code": 200})
        self.events.extend(answered)
        return HTTPStatus.OK, {"events": answered}

    # -- flavors --------------------------------------------------------------------------
    def _flavors(self, method: str, rest: list[str], body: Any,
                 base: str) -> tuple[HTTPStatus, Json | None]:
        if not rest:
            if method == "POST":
                return HTTPStatus.OK, {"flavor": self._show(self._create(body), base)}
            if method == "GET":
                return HTTPStatus.OK, {"flavors": [self._brief(f, base) for f in self._sorted()]}
        elif rest == ["detail"] and method == "GET":
            return HTTPStatus.OK, {"flavors": [self._show(f, base) for f in self._sorted()]}
        elif len(rest) == 1:
            flavor = self._get(rest[0])
            if method == "GET":
                return HTTPStatus.OK, {"flavor": self._show(flavor, base)}
            if method == "DELETE":
                del self.flavors[flavor.id]
                return HTTPStatus.ACCEPTED, None
        elif rest[1] == "os-extra_specs" and len(rest) <= 3:
            flavor = self._get(rest[0])
            return self._extra_specs(method, flavor, rest[2] if len(rest) == 3 else None, body)
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    def _sorted(self) -> list[Flavor]:
        return sorted(self.flavors.values(), key=lambda f: (f.name, f.id))

    def _get(self, flavor_id: str) -> Flavor:
        try:
            return self.flavors[flavor_id]
        except KeyError:
            raise HttpError(HTTPStatus.NOT_FOUND,
                            f"Flavor {flavor_id} could not be found.") from None

    def _create(self, body: Any) -> Flavor:
        spec = body.get("flavor") if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "'flavor' is a required property")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, "invalid flavor name")
        flavor_id = spec.get("id") or str(uuid.uuid4())
        if not isinstance(flavor_id, str):
            flavor_id = str(flavor_id)
        if any(f.name == name for f in self.flavors.values()):
            raise HttpError(HTTPStatus.CONFLICT, f"Flavor with name {name} already exists.")
        if flavor_id in self.flavors:
            raise HttpError(HTTPStatus.CONFLICT, f"Flavor with ID {flavor_id} already exists.")
        flavor = Flavor(
            id=flavor_id, name=name,
            ram=_int_field(spec, "ram", minimum=1), vcpus=_int_field(spec, "vcpus", minimum=1),
            disk=_int_field(spec, "disk", minimum=0),
            ephemeral=_int_field(spec, "OS-FLV-EXT-DATA:ephemeral", minimum=0, default=0),
            swap=_int_field(spec, "swap", minimum=0, default=0),
            rxtx_factor=float(spec.get("rxtx_factor", 1.0)),
            is_public=bool(spec.get("os-flavor-access:is_public", True)),
            description=spec.get("description"),
        )
        self.flavors[flavor.id] = flavor
        return flavor

    def _extra_specs(self, method: str, flavor: Flavor, key: str | None,
                     body: Any) -> tuple[HTTPStatus, Json | None]:
        specs = flavor.extra_specs
        if key is None:
            if method == "GET":
                return HTTPStatus.OK, {"extra_specs": dict(sorted(specs.items()))}
            if method == "POST":
                new = body.get("extra_specs") if isinstance(body, dict) else None
                if not isinstance(new, dict):
                    raise HttpError(HTTPStatus.BAD_REQUEST, "'extra_specs' is required")
                checked = {k: _spec_value(k, v) for k, v in new.items()}
                specs.update(checked)
                return HTTPStatus.OK, {"extra_specs": checked}
        else:
            if method == "GET":
                if key not in specs:
                    raise HttpError(HTTPStatus.NOT_FOUND,
                                    f"Flavor {flavor.id} has no extra specs with key {key}.")
                return HTTPStatus.OK, {key: specs[key]}
            if method == "PUT":
                if not isinstance(body, dict) or list(body) != [key]:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "Request body and URI mismatch")
                specs[key] = _spec_value(key, body[key])
                return HTTPStatus.OK, {key: specs[key]}
            if method == "DELETE":
                if specs.pop(key, None) is None:
                    raise HttpError(HTTPStatus.NOT_FOUND,
                                    f"Flavor {flavor.id} has no extra specs with key {key}.")
                return HTTPStatus.ACCEPTED, None
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    @staticmethod
    def _links(flavor: Flavor, base: str) -> list[Json]:
        return [{"rel": "self", "href": f"{base}/v2.1/flavors/{flavor.id}"},
                {"rel": "bookmark", "href": f"{base}/flavors/{flavor.id}"}]

    def _brief(self, flavor: Flavor, base: str) -> Json:
        return {"id": flavor.id, "name": flavor.name, "description": flavor.description,
                "links": self._links(flavor, base)}

    def _show(self, flavor: Flavor, base: str) -> Json:
        return {
            "id": flavor.id, "name": flavor.name, "ram": flavor.ram, "vcpus": flavor.vcpus,
            "disk": flavor.disk, "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
            "swap": flavor.swap, "rxtx_factor": flavor.rxtx_factor,
            "os-flavor-access:is_public": flavor.is_public, "OS-FLV-DISABLED:disabled": False,
            "description": flavor.description,
            "extra_specs": dict(sorted(flavor.extra_specs.items())),
            "links": self._links(flavor, base),
        }


def _int_field(spec: Json, name: str, minimum: int, default: int | None = None) -> int:
    value = spec.get(name, default)
    if value == "" and default is not None:
        value = default
    try:
        number = int(value)  # Nova accepts integer strings too
    except (TypeError, ValueError):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name!r} must be an integer") from None
    if number < minimum:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name!r} must be >= {minimum}")
    return number


def _spec_value(key: str, value: Any) -> str:
    if not _SPEC_KEY.fullmatch(key):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"invalid extra spec key {key!r}")
    if isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str | int | float) or len(str(value)) > 255:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"invalid value for extra spec {key!r}")
    return str(value)


def _negotiate(environ: dict[str, Any]) -> str:
    """The microversion asked for (``latest`` = the maximum), refused when out of range."""
    header = environ.get("HTTP_OPENSTACK_API_VERSION", "")
    asked = None
    for item in header.split(","):
        service, _, value = item.strip().partition(" ")
        if service.lower() == "compute" and value:
            asked = value.strip()
    asked = asked or environ.get("HTTP_X_OPENSTACK_NOVA_API_VERSION") or MIN_VERSION
    if asked == "latest":
        return MAX_VERSION
    if not re.fullmatch(r"\d+\.\d+", asked) or not (
            _version_tuple(MIN_VERSION) <= _version_tuple(asked) <= _version_tuple(MAX_VERSION)):
        raise HttpError(HTTPStatus.NOT_ACCEPTABLE, f"Version {asked} is not supported by the API.")
    return asked


def _read_json(environ: dict[str, Any]) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "Malformed request body") from None


def _base_url(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _version_doc(base: str) -> Json:
    return {
        "id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/v2.1/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }
