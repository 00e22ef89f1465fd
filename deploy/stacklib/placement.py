"""The few Placement calls the stack makes itself (noauth2: any token is admin)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from typing import Any

from deploy.stacklib.procs import StackError

MICROVERSION = "placement 1.36"
# What a small compute node reports; Nova's request for a flavor asks for these on the root.
COMPUTE_INVENTORY = {
    "VCPU": {"total": 16, "allocation_ratio": 1.0},
    "MEMORY_MB": {"total": 32768, "allocation_ratio": 1.0},
    "DISK_GB": {"total": 200, "allocation_ratio": 1.0},
}


def call(base: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (the URL is the stack's own 127.0.0.1)
        base.rstrip("/") + path, data=data, method=method,
        headers={"X-Auth-Token": "admin", "OpenStack-API-Version": MICROVERSION,
                 "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise StackError(f"Placement {method} {path}: HTTP {exc.code}: {detail}") from exc
    except OSError as exc:
        raise StackError(f"Placement {method} {path}: {exc}") from exc
    return json.loads(raw) if raw else None


def ensure_compute_node(base: str, name: str) -> str:
    """Create the compute node's root provider as nova-compute would; returns its uuid."""
    found = call(base, "GET", f"/resource_providers?name={name}")["resource_providers"]
    if found:
        return str(found[0]["uuid"])
    rp_uuid = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"compute-node.{name}"))
    created = call(base, "POST", "/resource_providers", {"name": name, "uuid": rp_uuid})
    generation = created["generation"]
    call(base, "PUT", f"/resource_providers/{rp_uuid}/inventories",
         {"resource_provider_generation": generation, "inventories": COMPUTE_INVENTORY})
    return rp_uuid


def tree(base: str, root_uuid: str) -> list[dict[str, Any]]:
    """Every provider of the compute node's tree (root included)."""
    providers = call(base, "GET", f"/resource_providers?in_tree={root_uuid}")
    return list(providers["resource_providers"])


def child_names(base: str, root_uuid: str) -> set[str]:
    return {str(rp["name"]) for rp in tree(base, root_uuid) if rp["uuid"] != root_uuid}
