"""The Nova-specific steps of the stack: databases and cells, the node identity, readiness.

Nova's services run as separate processes (nova-api under gunicorn, nova-conductor,
nova-scheduler, nova-compute with the fake virt driver); this module prepares what they
need before they start and tells when the compute host is really usable:

* the API, cell0 and cell1 schemas (synced side by side), cell0 mapped and cell1 created;
* `<state_path>/compute_id` holding the uuid of the compute node provider the stack made
  in Placement, so nova-compute adopts it (and Cyborg's child providers under it) instead
  of inventing a node uuid (`fake.FakeDriverWithoutFakeNodes` reads it);
* "up" only once nova-compute's first resource update is through (its hypervisor record
  exists and its inventory is in Placement) and its host is mapped to cell1.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from deploy.stacklib import database, placement, procs
from deploy.stacklib.config import ADMIN_TOKEN
from deploy.stacklib.procs import Proc, StackError

COMPUTE_MICROVERSION = "2.96"
CELL = "cell1"


@dataclass(frozen=True)
class Manage:
    """How to run `nova-manage` against the stack's config, logging to the work dir."""

    bin_dir: Path
    conf: Path
    log_dir: Path
    env: Mapping[str, str]

    def argv(self, args: Sequence[str], conf: Path | None = None) -> list[str]:
        return [str(self.bin_dir / "nova-manage"), "--config-file", str(conf or self.conf),
                *args]

    def popen(self, name: str, args: Sequence[str], conf: Path | None = None) -> procs.Job:
        return procs.start_job(f"nova-manage {name}", self.argv(args, conf),
                               self.log_dir / f"nova-manage-{name}.log", self.env)

    def run(self, name: str, args: Sequence[str], conf: Path | None = None,
            timeout: float = 180.0) -> int:
        return self.popen(name, args, conf).child.wait(timeout=timeout)


def _wait_all(started: Sequence[procs.Job], timeout: float) -> None:
    failed = [why for job in started if (why := procs.job_failure(job, timeout, 15))]
    if failed:
        raise StackError("\n".join(failed))


def start_schema_syncs(manage: Manage, cell0_conf: Path) -> list[procs.Job]:
    """The API, cell1 and cell0 schemas at once (three databases, no shared rows).

    `db sync --local_cell` with a config pointing [database] at cell0 syncs cell0 without
    waiting for the API database to map it first.
    """
    return [manage.popen("api_db-sync", ["api_db", "sync"]),
            manage.popen("db-sync-cell1", ["db", "sync", "--local_cell"]),
            manage.popen("db-sync-cell0", ["db", "sync", "--local_cell"], cell0_conf)]


def map_cells(manage: Manage, syncs: Sequence[procs.Job], cell0_url: str,
              timeout: float) -> None:
    """Map cell0 and create cell1 (from [database] and transport_url) as soon as the API
    schema is there, while the cells' schemas may still be syncing; each adds its own row
    to the API database. Returns when everything is done."""
    api_sync = [s for s in syncs if s.what == "nova-manage api_db-sync"]
    _wait_all(api_sync, timeout)
    cells = [manage.popen("map_cell0", ["cell_v2", "map_cell0", "--database_connection",
                                        cell0_url]),
             manage.popen("create_cell", ["cell_v2", "create_cell", "--name", CELL,
                                          "--verbose"])]
    _wait_all([s for s in syncs if s not in api_sync] + cells, timeout)


def write_node_identity(state_path: Path, compute_rp_uuid: str) -> None:
    """What nova-compute reads as its node uuid: the provider the stack created."""
    state_path.mkdir(parents=True, exist_ok=True)
    (state_path / "compute_id").write_text(compute_rp_uuid + "\n")


def api_get(nova_url: str, path: str) -> Any:
    """GET on the stack's Nova API as the admin; None when it does not answer 200."""
    request = urllib.request.Request(  # noqa: S310 (the stack's own 127.0.0.1 URL)
        nova_url + path, headers={"X-Auth-Token": ADMIN_TOKEN, "Accept": "application/json",
                                  "OpenStack-API-Version": f"compute {COMPUTE_MICROVERSION}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.HTTPError):
        return None


def _compute_node_recorded(server: database.Server, node_uuid: str) -> bool:
    done = database.sql(server, "SELECT uuid FROM nova.compute_nodes WHERE deleted = 0")
    return done.returncode == 0 and node_uuid in done.stdout.split()


def _placeholder_replaced(state: Mapping[str, Any]) -> bool:
    """nova-compute's own inventory replaced the placeholder the stack gave the root."""
    inventory = placement.call(state["placement_url"], "GET",
                               f"/resource_providers/{state['compute_rp_uuid']}"
                               "/inventories")["inventories"]
    totals = {rc: inv["total"] for rc, inv in inventory.items()}
    placeholder = {rc: inv["total"] for rc, inv in placement.COMPUTE_INVENTORY.items()}
    return "VCPU" in totals and totals != placeholder


def _hypervisor_up(state: Mapping[str, Any]) -> bool:
    found = api_get(state["nova_url"], "/os-hypervisors/detail")
    return any(h.get("id") == state["compute_rp_uuid"] and h.get("state") == "up"
               for h in (found or {}).get("hypervisors", []))


def wait_compute_ready(state: Mapping[str, Any], compute: Proc, manage: Manage,
                       server: database.Server, timeout: float) -> None:
    """Until nova-compute's first resource update is through and its host is mapped.

    Its compute node record (uuid = the adopted provider) says the update ran; then
    `cell_v2 discover_hosts --strict` maps the host (exit 0 only when it mapped one); then
    the API lists the hypervisor as up and Placement holds nova-compute's inventory.
    """
    node = state["compute_rp_uuid"]
    procs.wait_until(partial(_compute_node_recorded, server, node), compute,
                     "waiting for nova-compute's compute node record", timeout, interval=0.5)
    deadline = time.monotonic() + timeout
    while manage.run("discover_hosts", ["cell_v2", "discover_hosts", "--strict",
                                        "--verbose"]) != 0:
        if not procs.is_alive(compute):
            raise procs.died_error(compute, "its host was being mapped to a cell")
        if time.monotonic() > deadline:
            raise StackError("timed out mapping the compute host to a cell (nova-manage "
                             "cell_v2 discover_hosts --strict never mapped it)")
        time.sleep(1.0)
    procs.wait_until(lambda: _hypervisor_up(state) and _placeholder_replaced(state), compute,
                     "waiting for nova-compute's hypervisor and inventory", timeout,
                     interval=0.5)
