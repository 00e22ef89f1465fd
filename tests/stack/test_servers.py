"""Real Nova boots servers on SmartNIC VFs: the session's one stack, real processes, MariaDB.

Each test boots servers through the Nova API with a flavor that `profile apply` made from
profiles/, and reads back what Nova, Cyborg (API and its MariaDB rows) and Placement hold.
Every test deletes what it booted, so the next one finds the host as the stack reported it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.profiles.nova_rules import FLAVOR_REFUSED
from deploy.stacklib import client, database
from deploy.stacklib.client import Clients, StackInfo
from tests.stack.conftest import SHARED, stack

pytestmark = [pytest.mark.stack, SHARED]

XDP_PF = "0000:18:00.0"  # xdp.medium: 1 iavf VF on physnet5, a pool of 4
DPDK_PF = "0000:5e:00.1"  # dpdk.large: 2 vfio-pci VFs, a pool of 4


@dataclass(frozen=True)
class Cloud:
    """The shared stack as the tests see it."""

    state: dict[str, Any]
    info: StackInfo
    api: Clients
    db_server: database.Server

    def flavor(self, name: str) -> dict[str, Any]:
        found = client.json_of(self.api.nova.get("/flavors/detail"), "flavors")["flavors"]
        return next(f for f in found if f["name"] == name)

    def pool_uuid(self, pf: str) -> str:
        name = f"{self.info.hostname}_{pf}"
        found = client.json_of(self.api.placement.get(f"/resource_providers?name={name}"),
                               "provider")["resource_providers"]
        return str(found[0]["uuid"])

    def boot(self, flavor: str, name: str) -> str:
        return client.boot(self.info, self.api, self.flavor(flavor), name)

    def handles(self) -> dict[str, int]:
        """Cyborg's attach handles straight from its database: VF address -> in_use."""
        done = database.sql(self.db_server, "SELECT attach_info, in_use FROM "
                                            "cyborg.attach_handles")
        assert done.returncode == 0, done.stderr
        rows = {}
        for line in done.stdout.splitlines()[1:]:
            info, in_use = line.rsplit("\t", 1)
            rows[vf_address(json.loads(info))] = int(in_use)
        return rows

    def server_ids(self) -> list[str]:
        found = client.json_of(self.api.nova.get("/servers"), "servers")["servers"]
        return [str(s["id"]) for s in found]


def vf_address(info: dict[str, str]) -> str:
    return str(PciAddress.from_attach_info(info))


@pytest.fixture
def cloud(shared_stack: dict[str, Any]) -> Iterator[Cloud]:
    info = StackInfo.from_state(shared_stack)
    cloud = Cloud(state=shared_stack, info=info, api=Clients(info),
                  db_server=database.server_of(shared_stack))
    assert cloud.server_ids() == []
    yield cloud
    for server in cloud.server_ids():  # a failed test's servers must not fail the next
        client.delete_server(cloud.api, server)


def bound_vfs(cloud: Cloud, server: str) -> list[dict[str, Any]]:
    arqs = client.arqs_of(cloud.api, server)
    assert {a["state"] for a in arqs} == {"Bound"}, arqs
    assert {a["attach_handle_type"] for a in arqs} == {"PCI"}
    return arqs


def test_boot_binds_a_vf_of_the_requested_pool_and_delete_frees_it(cloud: Cloud) -> None:
    tree = cloud.state["tree"]
    pool = cloud.pool_uuid(XDP_PF)
    server = cloud.boot("xdp.medium", "one")
    assert client.wait_server(cloud.api, server)["status"] == "ACTIVE"

    arqs = bound_vfs(cloud, server)
    assert len(arqs) == 1
    arq = arqs[0]
    assert arq["instance_uuid"] == server
    assert arq["device_rp_uuid"] == pool
    assert arq["hostname"] == cloud.info.hostname
    address = vf_address(arq["attach_handle_info"])
    assert address in tree.vfs(XDP_PF).values()
    assert arq["attach_handle_info"]["physical_network"] == "physnet5"
    assert client.allocations_of(cloud.api, server)[pool] == {client.VF_RESOURCE_CLASS: 1}
    assert client.vf_usage(cloud.api, pool) == 1
    assert cloud.handles()[address] == 1

    client.delete_server(cloud.api, server)
    assert client.arqs_of(cloud.api, server) == []
    assert client.vf_usage(cloud.api, pool) == 0
    assert cloud.handles()[address] == 0


def test_a_full_pool_then_one_more_is_no_valid_host_and_nothing_leaks(cloud: Cloud) -> None:
    tree = cloud.state["tree"]
    pool = cloud.pool_uuid(XDP_PF)
    size = len(tree.vfs(XDP_PF))
    with ThreadPoolExecutor(size) as pool_of_threads:
        servers = list(pool_of_threads.map(lambda i: cloud.boot("xdp.medium", f"fill-{i}"),
                                           range(size)))
        finished = list(pool_of_threads.map(lambda s: client.wait_server(cloud.api, s),
                                            servers))
    assert [s["status"] for s in finished] == ["ACTIVE"] * size, [s.get("fault")
                                                                  for s in finished]
    addresses = [vf_address(arq["attach_handle_info"])
                 for server in servers for arq in bound_vfs(cloud, server)]
    assert len(addresses) == size
    assert sorted(addresses) == sorted(tree.vfs(XDP_PF).values())  # every VF, each once
    assert client.vf_usage(cloud.api, pool) == size

    extra = cloud.boot("xdp.medium", "one-too-many")
    refused = client.wait_server(cloud.api, extra)
    assert refused["status"] == "ERROR"
    assert "No valid host" in refused["fault"]["message"]
    assert client.arqs_of(cloud.api, extra) == []

    for server in [*servers, extra]:
        client.delete_server(cloud.api, server)
    assert all(client.arqs_of(cloud.api, s) == [] for s in servers)
    assert client.vf_usage(cloud.api, pool) == 0
    assert not any(cloud.handles().values())


def test_agent_and_conductor_restarts_lose_nothing(cloud: Cloud) -> None:
    tree = cloud.state["tree"]
    xdp_pool = cloud.pool_uuid(XDP_PF)
    size = len(tree.vfs(XDP_PF))
    first = cloud.boot("dpdk.large", "before-restarts")
    assert client.wait_server(cloud.api, first)["status"] == "ACTIVE"
    arqs_before = bound_vfs(cloud, first)
    allocations_before = client.allocations_of(cloud.api, first)
    handles_before = cloud.handles()

    # A free VF of another PF goes while the services restart: once its pool shrank in
    # Placement, the restarted agent's report went through the restarted conductor.
    before = set(tree.vfs(XDP_PF).values())
    tree.set_num_vfs(XDP_PF, size - 1)
    gone = before - set(tree.vfs(XDP_PF).values())
    assert len(gone) == 1
    restarted = stack("restart", "--work-dir", str(cloud.info.work_dir), "cyborg-conductor",
                      "cyborg-agent", "nova-conductor")
    assert restarted.returncode == 0, restarted.stderr
    assert "cyborg-agent: stopped, started again as" in restarted.stdout
    client.wait_for(lambda: pool_total(cloud, xdp_pool) == size - 1,
                    "the restarted agent's report of the smaller pool", 120)

    assert bound_vfs(cloud, first) == arqs_before
    assert client.allocations_of(cloud.api, first) == allocations_before
    assert cloud.handles() == {a: u for a, u in handles_before.items() if a not in gone}
    assert client.json_of(cloud.api.nova.get(f"/servers/{first}"),
                          "server")["server"]["status"] == "ACTIVE"

    # Both conductors work: another boot lands on other VFs.
    second = cloud.boot("dpdk.large", "after-restarts")
    assert client.wait_server(cloud.api, second)["status"] == "ACTIVE"
    taken = {vf_address(a["attach_handle_info"]) for a in bound_vfs(cloud, first)}
    new = {vf_address(a["attach_handle_info"]) for a in bound_vfs(cloud, second)}
    assert len(new) == 2 and not taken & new

    # The VF comes back (and the stack is left as the session found it).
    tree.set_num_vfs(XDP_PF, size)
    restarted = stack("restart", "--work-dir", str(cloud.info.work_dir), "cyborg-agent")
    assert restarted.returncode == 0, restarted.stderr
    client.wait_for(lambda: pool_total(cloud, xdp_pool) == size, "the pool growing back", 120)


def pool_total(cloud: Cloud, pool: str) -> int:
    """The pool's VF inventory total; -1 while it has no provider (the driver rebuilds a
    pool that lost a VF from the middle: deleted, then created again under the same uuid)."""
    answer = cloud.api.placement.get(f"/resource_providers/{pool}/inventories")
    if answer.status_code == 404:
        return -1
    inventory = client.json_of(answer, "inventory")["inventories"]
    return int(inventory.get(client.VF_RESOURCE_CLASS, {}).get("total", -1))


def test_a_vf_vanishing_under_a_server_is_held_until_the_server_goes(cloud: Cloud) -> None:
    """The driver's guard (docs/driver.md), on MariaDB: the server keeps its VF, the pool's
    inventory freezes at its usage, and once the server is deleted the pool shrinks."""
    tree = cloud.state["tree"]
    pool = cloud.pool_uuid(DPDK_PF)
    size = len(tree.vfs(DPDK_PF))
    server = cloud.boot("dpdk.large", "loses-a-vf")
    assert client.wait_server(cloud.api, server)["status"] == "ACTIVE"
    arqs = bound_vfs(cloud, server)
    gone = vf_address(arqs[0]["attach_handle_info"])

    tree.remove_function(gone)  # hot-unplug under the running server
    restarted = stack("restart", "--work-dir", str(cloud.info.work_dir), "cyborg-agent")
    assert restarted.returncode == 0, restarted.stderr
    log = Path(cloud.state["services"]["cyborg-agent"]["log"])
    client.wait_for(lambda: "1 attach handle(s) vanished" in log.read_text(),
                    "the agent's warning about the vanished VF", 120)
    # The guard freezes the pool's inventory at its usage: the report went through.
    client.wait_for(lambda: pool_total(cloud, pool) == 2, "the frozen inventory", 60)

    assert bound_vfs(cloud, server) == arqs
    assert cloud.handles()[gone] == 1  # MariaDB still has the row, in use
    refused = cloud.boot("dpdk.large", "no-room")
    assert "No valid host" in client.wait_server(cloud.api, refused)["fault"]["message"]

    client.delete_server(cloud.api, refused)
    client.delete_server(cloud.api, server)
    # Released held handles are let go by rebuilding the pool (docs/driver.md): one report
    # leaves it out, the next brings it back whole, one VF smaller, under the same uuid.
    for expected, what in ((-1, "the pool left out once the server is gone"),
                           (size - 1, "the pool back, one VF smaller")):
        restarted = stack("restart", "--work-dir", str(cloud.info.work_dir), "cyborg-agent")
        assert restarted.returncode == 0, restarted.stderr
        client.wait_for(lambda n=expected: pool_total(cloud, pool) == n, what, 120)
    assert gone not in cloud.handles()
    assert not any(cloud.handles().values())


@pytest.mark.parametrize(("action", "body"), [
    ("resize", {"resize": {"flavorRef": "FLAVOR"}}),
    ("cold migration", {"migrate": None}),
    ("live migration", {"os-migrateLive": {"host": None, "block_migration": "auto"}}),
    ("suspend", {"suspend": None}),
])
def test_nova_refuses_what_docs_profiles_says_it_refuses(cloud: Cloud, action: str,
                                                         body: dict[str, Any]) -> None:
    """The refusals of docs/profiles.md (cyborg_smartnic/profiles/nova_rules.py), for real."""
    assert action in FLAVOR_REFUSED
    server = cloud.boot("xdp.medium", f"refuse-{action.replace(' ', '-')}")
    assert client.wait_server(cloud.api, server)["status"] == "ACTIVE"
    arqs = bound_vfs(cloud, server)
    text = json.dumps(body).replace("FLAVOR", cloud.flavor("dpdk.large")["id"])
    answer = cloud.api.nova.post(f"/servers/{server}/action", json=json.loads(text))
    assert answer.status_code in (400, 409), answer.text
    assert "Feature not supported with instances that have accelerators" in answer.text
    assert client.json_of(cloud.api.nova.get(f"/servers/{server}"),
                          "server")["server"]["status"] == "ACTIVE"
    assert bound_vfs(cloud, server) == arqs
