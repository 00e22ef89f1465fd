"""Talking to a running local stack as its operator: its stack.json, the APIs, servers.

Used by deploy/demo.py and the stack tests. Plain keystoneauth adapters with the stack's
admin token (the stack has no Keystone) and explicit microversions, so what is sent is
what Nova, Cyborg and Placement document.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLACEMENT_VERSION = "1.36"
COMPUTE_VERSION = "2.96"
BOOT_TIMEOUT = 120.0
VF_RESOURCE_CLASS = "CUSTOM_SMARTNIC_VF"


class ApiError(Exception):
    """An unexpected answer, or a wait that ran out; says which step."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step


@dataclass(frozen=True)
class StackInfo:
    """What deploy/stack.py wrote to its stack.json (the part clients read)."""

    work_dir: Path
    hostname: str
    placement_url: str
    cyborg_url: str
    nova_url: str
    image_id: str
    compute_rp_uuid: str
    sysfs_root: Path
    cyborg_config: Path
    clouds_yaml: Path
    cloud: str
    admin_token: str
    logs: Path

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> StackInfo:
        return cls(
            work_dir=Path(state["work_dir"]), hostname=state["hostname"],
            placement_url=state["placement_url"], cyborg_url=state["cyborg_url"],
            nova_url=state["nova_url"], image_id=state["image_id"],
            compute_rp_uuid=state["compute_rp_uuid"], sysfs_root=Path(state["sysfs_root"]),
            cyborg_config=Path(state["cyborg_config"]), clouds_yaml=Path(state["clouds_yaml"]),
            cloud=state["cloud"], admin_token=state["admin_token"], logs=Path(state["logs"]))

    @classmethod
    def load(cls, work_dir: Path) -> StackInfo:
        return cls.from_state(json.loads((work_dir / "stack.json").read_text()))




# -- clients -------------------------------------------------------------------------------
class Clients:
    """keystoneauth adapters on the stack's APIs, as the operator (admin token)."""

    def __init__(self, stack: StackInfo) -> None:
        from keystoneauth1 import adapter, session, token_endpoint  # noqa: PLC0415 (heavy)

        def _adapter(url: str, service_type: str, version: str | None = None) -> Any:
            auth = token_endpoint.Token(url, stack.admin_token)
            return adapter.Adapter(session.Session(auth=auth), service_type=service_type,
                                   endpoint_override=url, default_microversion=version,
                                   raise_exc=False)

        self.nova = _adapter(stack.nova_url, "compute", COMPUTE_VERSION)
        self.cyborg = _adapter(stack.cyborg_url + "/v2", "accelerator")
        self.placement = _adapter(stack.placement_url, "placement", PLACEMENT_VERSION)


def json_of(response: Any, step: str, expect: Sequence[int] = (200,)) -> Any:
    if response.status_code not in expect:
        raise ApiError(step, f"HTTP {response.status_code} from "
                                          f"{response.request.method} {response.url}: "
                                          f"{response.text[:300]}")
    return response.json() if response.content else None




def boot(stack: StackInfo, clients: Clients, flavor: Mapping[str, Any], name: str) -> str:
    body = {"server": {"name": name, "flavorRef": flavor["id"], "imageRef": stack.image_id,
                       "networks": "none"}}
    created = json_of(clients.nova.post("/servers", json=body), f"boot {name}", (202,))
    return str(created["server"]["id"])


def wait_server(clients: Clients, server_id: str, timeout: float = BOOT_TIMEOUT
                ) -> dict[str, Any]:
    """Until the server is ACTIVE or ERROR (then with its fault)."""
    deadline = time.monotonic() + timeout
    while True:
        server = json_of(clients.nova.get(f"/servers/{server_id}"), "server")["server"]
        if server["status"] in ("ACTIVE", "ERROR"):
            return dict(server)
        if time.monotonic() > deadline:
            raise ApiError("boot", f"server {server_id} still {server['status']} "
                                                f"after {timeout:.0f} s")
        time.sleep(0.5)


def delete_server(clients: Clients, server_id: str, timeout: float = BOOT_TIMEOUT) -> None:
    json_of(clients.nova.delete(f"/servers/{server_id}"), "delete", (204, 404))
    deadline = time.monotonic() + timeout
    while clients.nova.get(f"/servers/{server_id}").status_code != 404:
        if time.monotonic() > deadline:
            raise ApiError("delete", f"server {server_id} still there after "
                                                  f"{timeout:.0f} s")
        time.sleep(0.5)


def arqs_of(clients: Clients, server_id: str) -> list[dict[str, Any]]:
    found = json_of(clients.cyborg.get(f"/accelerator_requests?instance={server_id}"), "ARQs")
    return list(found["arqs"])


def allocations_of(clients: Clients, consumer: str) -> dict[str, dict[str, int]]:
    found = json_of(clients.placement.get(f"/allocations/{consumer}"), "allocations")
    return {rp: dict(a["resources"]) for rp, a in found["allocations"].items()}


def vf_usage(clients: Clients, rp_uuid: str) -> int:
    usages = json_of(clients.placement.get(f"/resource_providers/{rp_uuid}/usages"),
                   "usages")["usages"]
    return int(usages.get(VF_RESOURCE_CLASS, 0))




def wait_for(check: Callable[[], bool], what: str, timeout: float, interval: float = 0.5
             ) -> None:
    """Poll check() until true, or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ApiError("wait", f"{what}: not seen after {timeout:.0f} s")
        time.sleep(interval)
