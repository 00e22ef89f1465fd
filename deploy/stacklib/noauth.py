"""Paste filter standing in for keystonemiddleware's authtoken in the local stack's Cyborg API.

Cyborg has no noauth mode, and the stack has no Keystone. Like authtoken, this filter drops
every identity header a client sent, then sets them from the token: `X-Auth-Token: admin`
is an admin user of a fixed project; `X-Service-Token: service` additionally makes the
request a service request (what Nova sends when it binds an ARQ). Any other token is 401.
Public routes (the version documents) pass without a token, as with authtoken.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

USER_ID = "5e8d0b1c7f3a4a40a5f0c3d5b2b6a001"
PROJECT_ID = "5e8d0b1c-7f3a-4a40-a5f0-c3d5b2b6a002"
SERVICE_USER_ID = "5e8d0b1c7f3a4a40a5f0c3d5b2b6a003"
SERVICE_PROJECT_ID = "5e8d0b1c-7f3a-4a40-a5f0-c3d5b2b6a004"

# The identity headers authtoken owns (in WSGI environ form); a client never sets them.
_IDENTITY_PREFIXES = ("HTTP_X_IDENTITY_STATUS", "HTTP_X_SERVICE_", "HTTP_X_USER",
                      "HTTP_X_PROJECT", "HTTP_X_TENANT", "HTTP_X_ROLE", "HTTP_X_DOMAIN",
                      "HTTP_X_IS_ADMIN_PROJECT")


class NoAuth:
    """Map fixed tokens to identities; see the module docstring."""

    def __init__(self, app: WsgiApp, admin_token: str, service_token: str,
                 public_routes: Iterable[str]) -> None:
        self.app = app
        self.admin_token = admin_token
        self.service_token = service_token
        self.public_routes = frozenset(r.rstrip("/") for r in public_routes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        user_token = environ.get("HTTP_X_AUTH_TOKEN")
        service_token = environ.get("HTTP_X_SERVICE_TOKEN")
        for key in [k for k in environ if k.startswith(_IDENTITY_PREFIXES)]:
            del environ[key]
        path = str(environ.get("PATH_INFO", "")).rstrip("/")
        if path.removesuffix(".json") in self.public_routes:
            environ["is_public_api"] = True
            return self.app(environ, start_response)
        environ["is_public_api"] = False
        if user_token != self.admin_token:
            return _unauthorized(start_response, "unknown X-Auth-Token")
        environ.update({
            "HTTP_X_IDENTITY_STATUS": "Confirmed",
            "HTTP_X_USER_ID": USER_ID,
            "HTTP_X_USER_NAME": "admin",
            "HTTP_X_PROJECT_ID": PROJECT_ID,
            "HTTP_X_PROJECT_NAME": "admin",
            "HTTP_X_USER_DOMAIN_ID": "default",
            "HTTP_X_PROJECT_DOMAIN_ID": "default",
            "HTTP_X_ROLES": "admin,member,reader",
        })
        if service_token is not None:
            if service_token != self.service_token:
                return _unauthorized(start_response, "unknown X-Service-Token")
            environ.update({
                "HTTP_X_SERVICE_IDENTITY_STATUS": "Confirmed",
                "HTTP_X_SERVICE_USER_ID": SERVICE_USER_ID,
                "HTTP_X_SERVICE_USER_NAME": "nova",
                "HTTP_X_SERVICE_PROJECT_ID": SERVICE_PROJECT_ID,
                "HTTP_X_SERVICE_PROJECT_NAME": "service",
                "HTTP_X_SERVICE_ROLES": "service",
            })
        return self.app(environ, start_response)


def _unauthorized(start_response: Callable[..., Any], reason: str) -> list[bytes]:
    body = json.dumps({"error": {"code": 401, "title": "Unauthorized",
                                 "message": f"local stack: {reason}"}}).encode()
    start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))])
    return [body]


def filter_factory(global_config: dict[str, str], **local_conf: str
                   ) -> Callable[[WsgiApp], NoAuth]:
    """Paste entry point; tokens and public routes come from the [filter:noauth] section."""
    admin = local_conf.get("admin_token", "admin")
    service = local_conf.get("service_token", "service")
    routes = [r.strip() for r in local_conf.get("public_routes", "/").split(",") if r.strip()]

    def _filter(app: WsgiApp) -> NoAuth:
        return NoAuth(app, admin, service, routes)
    return _filter
