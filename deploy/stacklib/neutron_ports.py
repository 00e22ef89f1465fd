"""Neutron ports from a profile's rendered `openstack port create` arguments, for the stack.

`cyborg-smartnic profile render -f json` gives each port profile's `port_arguments`, the
arguments of `openstack port create`. The demo and the stack tests create those ports on
the stack's real Neutron through its API, so this module turns the arguments into the
API's port body (what the CLI would send), and says which path a port takes: a
Cyborg-scheduled VF (`accelerator-*` vnic types with a device profile) or a VF from Nova's
PCI tracker (`direct`, `remote-managed`, ... without one).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.stacklib import client, neutron
from deploy.stacklib.procs import StackError

CYBORG_VNIC_TYPES = ("accelerator-direct", "accelerator-direct-physical")


@dataclass(frozen=True)
class PortRequest:
    """What `openstack port create` arguments ask of Neutron."""

    vnic_type: str = "normal"
    network: str | None = None
    device_profile: str | None = None
    binding_profile: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cyborg_scheduled(self) -> bool:
        return self.vnic_type in CYBORG_VNIC_TYPES and self.device_profile is not None


def _binding_profile(value: str) -> dict[str, Any]:
    """`--binding-profile` as the CLI takes it: a JSON object, or KEY=VALUE."""
    if value.lstrip().startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError as exc:
            raise StackError(f"--binding-profile {value!r}: not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise StackError(f"--binding-profile {value!r}: not a JSON object")
        return loaded
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise StackError(f"--binding-profile {value!r}: expected JSON or KEY=VALUE")
    return {key: raw}


def port_request(arguments: Sequence[str]) -> PortRequest:
    """Parse rendered port arguments (only the options profiles render; others refused)."""
    values: dict[str, Any] = {"binding_profile": {}}
    names = {"--vnic-type": "vnic_type", "--network": "network",
             "--device-profile": "device_profile"}
    items = list(arguments)
    while items:
        option = items.pop(0)
        if not items:
            raise StackError(f"port arguments: {option} has no value")
        value = items.pop(0)
        if option in names:
            values[names[option]] = value
        elif option == "--binding-profile":
            values["binding_profile"] = {**values["binding_profile"], **_binding_profile(value)}
        else:
            raise StackError(f"port arguments: {option} is not one profiles render")
    return PortRequest(**values)


def port_body(request: PortRequest, network_id: str, project_id: str, name: str,
              host: str | None = None) -> dict[str, Any]:
    """Neutron's `POST /v2.0/ports` body. The port must belong to the server's project
    (Nova checks); host binds it at once (admin), as Nova does when it boots a server."""
    port: dict[str, Any] = {"name": name, "network_id": network_id,
                            "project_id": project_id, "binding:vnic_type": request.vnic_type}
    if request.device_profile is not None:
        port["device_profile"] = request.device_profile
    if request.binding_profile:
        port["binding:profile"] = dict(request.binding_profile)
    if host is not None:
        port["binding:host_id"] = host
    return {"port": port}


def rendered_profiles(document: Any) -> list[dict[str, Any]]:
    """The profiles of `profile render -f json` output (`{"format": 1, "profiles": [...]}`)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("profiles"), list):
        raise StackError("profile render -f json printed no {\"profiles\": [...]} document")
    return [dict(p) for p in document["profiles"]]


def port_profiles(document: Any) -> dict[str, PortRequest]:
    """Profile name -> its port request, for the rendered profiles that make a port."""
    return {str(p["name"]): port_request(p["port_arguments"])
            for p in rendered_profiles(document) if p.get("port_arguments")}


@dataclass(frozen=True)
class PortBoot:
    """A server booted with a profile's port, what bound it, and what delete released."""

    profile: str
    port_id: str
    server_id: str
    status: str
    fault: str
    seconds: float
    network_physnet: str
    vif_type: str
    bound_by: str
    binding_profile: Mapping[str, Any]
    arqs: tuple[Mapping[str, Any], ...]
    released: Mapping[str, Any]


def _port(network_url: str, port_id: str) -> dict[str, Any]:
    status, body = neutron.api(network_url, "GET", f"/v2.0/ports/{port_id}")
    if status != 200:
        raise StackError(f"GET port {port_id}: HTTP {status} {str(body)[:300]}")
    return dict(body["port"])


def boot_with_port(stack_state: Mapping[str, Any], clients: Any, profile: str,
                   request: PortRequest, *, flavor_id: str, name: str,
                   project_id: str) -> PortBoot:
    """Create the profile's port on the stack's Neutron, boot a server with it, read the
    ARQs and the port's binding, delete the server and read the port again; the port is
    deleted on the way out."""
    network_url = str(stack_state["network_url"])
    networks = {neutron.provider_network_name(p): (p, n)
                for p, n in stack_state["provider_networks"].items()}
    if request.network not in networks:
        raise StackError(f"{profile}: network {request.network} is not one of the stack's "
                         f"provider networks ({', '.join(sorted(networks))})")
    physnet, network_id = networks[str(request.network)]
    status, body = neutron.api(network_url, "POST", "/v2.0/ports",
                               port_body(request, network_id, project_id, name))
    if status != 201:
        raise StackError(f"{profile}: port create: HTTP {status} {str(body)[:300]}")
    port_id = str(body["port"]["id"])
    try:
        started = time.monotonic()
        created = client.json_of(clients.nova.post("/servers", json={"server": {
            "name": name, "flavorRef": flavor_id, "imageRef": stack_state["image_id"],
            "networks": [{"port": port_id}]}}), f"boot {name}", (202,))
        server_id = str(created["server"]["id"])
        try:
            server = client.wait_server(clients, server_id)
            seconds = round(time.monotonic() - started, 1)
            arqs = tuple(client.arqs_of(clients, server_id))
            bound = _port(network_url, port_id)
        finally:
            client.delete_server(clients, server_id)
        released = _port(network_url, port_id)
        released["arqs_left"] = len(client.arqs_of(clients, server_id))
        released["allocations_left"] = len(client.allocations_of(clients, server_id))
    finally:
        neutron.api(network_url, "DELETE", f"/v2.0/ports/{port_id}")
    details = bound.get("binding:vif_details") or {}
    return PortBoot(
        profile=profile, port_id=port_id, server_id=server_id, status=str(server["status"]),
        fault=str(server.get("fault", {}).get("message", "")), seconds=seconds,
        network_physnet=physnet, vif_type=str(bound["binding:vif_type"]),
        bound_by=",".join(str(v) for v in (details.get("bound_drivers") or {}).values()),
        binding_profile=dict(bound.get("binding:profile") or {}), arqs=arqs,
        released={k: released.get(k) for k in ("binding:vif_type", "binding:profile",
                                                "device_id", "arqs_left",
                                                "allocations_left")})
