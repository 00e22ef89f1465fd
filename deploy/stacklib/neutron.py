"""The Neutron-specific steps of the stack: configs, the schema, and knowing when it is up.

Real Neutron 29 runs as two processes: the API under gunicorn (`neutron.wsgi.api`, through
stacklib.neutron_wsgi) and `neutron-rpc-server` (the agents' RPC: state reports, port
binding callbacks). ML2 has the `sriovnicswitch` and `openvswitch` mechanism drivers, flat
and VLAN type drivers on the physnets of the stack host's [smartnic]
physical_device_mappings, and the `port_device_profile` extension (ports carrying a Cyborg
device profile). Its schema comes from `neutron-db-manage upgrade heads` on the stack's
MariaDB, as production runs it. Neutron's agents cannot run here (no SR-IOV netdevs, no
kernel modules); stacklib.neutron_agents stands in for their state reports only.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deploy.stacklib import config, procs
from deploy.stacklib.procs import StackError

CONF_FILES = ("neutron.conf", "ml2_conf.ini")
# The VLAN range each physnet offers (any; the stack's networks are flat).
VLAN_RANGE = "100:199"
# The agents whose state stacklib.neutron_agents reports (Neutron's own agent_type names).
AGENT_TYPES = ("NIC Switch agent", "Open vSwitch agent")


def physnets(smartnic: Mapping[str, str]) -> list[str]:
    """The physnets of [smartnic] physical_device_mappings (`physnet:netdev,...`), in order."""
    found: list[str] = []
    for item in smartnic.get("physical_device_mappings", "").split(","):
        name = item.split(":", 1)[0].strip()
        if name and name not in found:
            found.append(name)
    return found


def template_values(smartnic: Mapping[str, str]) -> dict[str, str]:
    """ML2's physnets; a host without physical_device_mappings gets none (and no networks)."""
    nets = physnets(smartnic)
    return {"physnets": ",".join(nets),
            "vlan_ranges": ",".join(f"{net}:{VLAN_RANGE}" for net in nets)}


def render(conf_dir: Path, values: Mapping[str, str]) -> list[Path]:
    """neutron.conf, ml2_conf.ini and Neutron's stock api-paste.ini (noauth pipeline)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    stock = Path(sys.prefix) / "etc" / "neutron" / "api-paste.ini"
    if not stock.exists():
        raise StackError(f"{stock} is missing: install the stack extra (neutron==29.0.0)")
    shutil.copy(stock, conf_dir / "api-paste.ini")
    return [config.render(f"{name}.in", conf_dir / name, values) for name in CONF_FILES]


def config_args(conf_dir: Path) -> list[str]:
    return [arg for name in CONF_FILES for arg in ("--config-file", str(conf_dir / name))]


def api_env(conf_dir: Path) -> dict[str, str]:
    """How neutron.wsgi.api finds its config under gunicorn (no argv of its own)."""
    return {"OS_NEUTRON_CONFIG_DIR": str(conf_dir),
            "OS_NEUTRON_CONFIG_FILES": ";".join(CONF_FILES)}


def start_schema_upgrade(bin_dir: Path, conf_dir: Path, log_dir: Path,
                         env: Mapping[str, str]) -> procs.Job:
    """`neutron-db-manage upgrade heads` (Neutron's migrations) in the background; wait for
    it with `procs.finish_job`."""
    return procs.start_job("neutron-db-manage upgrade heads",
                           [str(bin_dir / "neutron-db-manage"), *config_args(conf_dir),
                            "upgrade", "heads"], log_dir / "neutron-db-manage.log", env)


def api(network_url: str, method: str, path: str, body: Mapping[str, Any] | None = None,
        timeout: float = 10.0) -> tuple[int, Any]:
    """One call on the stack's Neutron API (noauth: no token needed); (status, JSON body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (the stack's own 127.0.0.1 URL)
        network_url + path, data=data, method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), json.loads(raw) if raw else None
        except ValueError:
            return int(exc.code), raw.decode(errors="replace")
    except (OSError, ValueError):
        return 0, None


def api_ready(network_url: str) -> bool:
    return api(network_url, "GET", "/v2.0/networks")[0] == 200


def alive_agents(network_url: str, host: str) -> set[str]:
    """Agent types Neutron counts alive on host (what ML2 binds ports with)."""
    status, body = api(network_url, "GET", f"/v2.0/agents?host={host}")
    if status != 200 or not isinstance(body, dict):
        return set()
    return {str(a["agent_type"]) for a in body.get("agents", []) if a.get("alive")}


def missing_agents(network_url: str, host: str, wanted: Sequence[str] = AGENT_TYPES
                   ) -> list[str]:
    alive = alive_agents(network_url, host)
    return [kind for kind in wanted if kind not in alive]


def provider_network_name(physnet: str) -> str:
    """What the profiles' `port: network:` names (profiles/*.yaml: provider-physnet1)."""
    return f"provider-{physnet}"


def create_provider_networks(network_url: str, physnets: Sequence[str]) -> dict[str, str]:
    """One shared flat network per physnet, each with a subnet without DHCP (Nova needs a
    fixed IP on a port; no DHCP agent runs). Returns physnet -> network id."""
    created: dict[str, str] = {}
    for index, physnet in enumerate(physnets, start=1):
        name = provider_network_name(physnet)
        status, body = api(network_url, "POST", "/v2.0/networks", {"network": {
            "name": name, "shared": True, "provider:network_type": "flat",
            "provider:physical_network": physnet}})
        if status != 201:
            raise StackError(f"creating the Neutron network {name} failed: HTTP {status} "
                             f"{str(body)[:300]}")
        network_id = str(body["network"]["id"])
        status, body = api(network_url, "POST", "/v2.0/subnets", {"subnet": {
            "name": f"{name}-v4", "network_id": network_id, "ip_version": 4,
            "cidr": f"10.{index}.0.0/24", "enable_dhcp": False, "gateway_ip": None}})
        if status != 201:
            raise StackError(f"creating the subnet of {name} failed: HTTP {status} "
                             f"{str(body)[:300]}")
        created[physnet] = network_id
    return created
