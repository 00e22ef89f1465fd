"""Real Neutron in the shared stack: ports from profiles/, bound per path, booted with.

Neutron's API and RPC server, ML2 and its sriovnicswitch and openvswitch drivers are real;
only the agents' state reports come from a stand-in (deploy/stacklib/neutron_agents.py).
Each test deletes the ports and servers it made.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy import demo
from deploy.stacklib import client, neutron, neutron_ports, noauth
from deploy.stacklib.client import Clients, StackInfo
from deploy.stacklib.neutron_ports import PortRequest
from tests.stack.conftest import REPO, SHARED
from tests.stack.test_servers import vf_address

pytestmark = [pytest.mark.stack, SHARED]


class Net:
    """The stack's Neutron, as its operator (noauth: every call is admin)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.url = str(state["network_url"])
        self.host = str(state["hostname"])
        self.networks: dict[str, str] = dict(state["provider_networks"])
        self.made: list[str] = []

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             expect: int = 200) -> Any:
        status, answer = neutron.api(self.url, method, path, body)
        assert status == expect, f"{method} {path}: HTTP {status} {answer}"
        return answer

    def network_id(self, name: str) -> str:
        found = self.call("GET", f"/v2.0/networks?name={name}")["networks"]
        assert len(found) == 1, f"no single network {name}: {found}"
        return str(found[0]["id"])

    def create_port(self, request: PortRequest, name: str, host: str | None = None,
                    network_id: str | None = None) -> dict[str, Any]:
        assert request.network is not None or network_id is not None
        body = neutron_ports.port_body(request, network_id or self.network_id(
            str(request.network)), noauth.PROJECT_ID, name, host)
        port = self.call("POST", "/v2.0/ports", body, expect=201)["port"]
        self.made.append(str(port["id"]))
        return dict(port)

    def port(self, port_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v2.0/ports/{port_id}")["port"])

    def cleanup(self) -> None:
        for port_id in self.made:
            status, _ = neutron.api(self.url, "DELETE", f"/v2.0/ports/{port_id}")
            assert status in (204, 404)


@pytest.fixture(scope="module")
def rendered() -> dict[str, PortRequest]:
    """Port profiles of profiles/ as `profile render -f json` prints them."""
    done = subprocess.run([str(Path(sys.executable).parent / "cyborg-smartnic"), "profile",
                           "render", "-f", "json", str(REPO / "profiles")],
                          capture_output=True, text=True, timeout=60, check=True,
                          stdin=subprocess.DEVNULL)
    return neutron_ports.port_profiles(json.loads(done.stdout))


@pytest.fixture
def net(shared_stack: dict[str, Any]) -> Iterator[Net]:
    found = Net(shared_stack)
    try:
        yield found
    finally:
        found.cleanup()


def cyborg_port_profile(rendered: dict[str, PortRequest], net: Net) -> tuple[str, PortRequest]:
    """A profile of profiles/ whose port Cyborg schedules, on a physnet of the stack host."""
    names = {neutron.provider_network_name(p) for p in net.networks}
    found = sorted((name, r) for name, r in rendered.items()
                   if r.cyborg_scheduled and r.network in names)
    assert found, f"profiles/ has no accelerator-direct port profile on {sorted(names)}"
    return found[0]


def test_one_flat_network_with_a_dhcp_less_subnet_per_physnet(net: Net,
                                                               shared_stack: dict[str, Any]
                                                               ) -> None:
    assert sorted(net.networks) == sorted(shared_stack["physnets"])
    for physnet, network_id in net.networks.items():
        network = net.call("GET", f"/v2.0/networks/{network_id}")["network"]
        assert (network["provider:network_type"], network["provider:physical_network"],
                network["name"]) == ("flat", physnet, neutron.provider_network_name(physnet))
        subnets = net.call("GET", f"/v2.0/subnets?network_id={network_id}")["subnets"]
        assert [s["enable_dhcp"] for s in subnets] == [False]


def test_ml2_counts_the_standin_agents_alive_on_the_compute_host(net: Net) -> None:
    agents = net.call("GET", f"/v2.0/agents?host={net.host}")["agents"]
    alive = {a["agent_type"]: a for a in agents if a["alive"]}
    assert set(alive) == set(neutron.AGENT_TYPES)
    physnets = set(net.networks)
    assert set(alive["NIC Switch agent"]["configurations"]["device_mappings"]) == physnets
    assert set(alive["Open vSwitch agent"]["configurations"]["bridge_mappings"]) == physnets


def test_neutron_accepts_a_port_with_the_profiles_device_profile(
        net: Net, rendered: dict[str, PortRequest]) -> None:
    name, request = cyborg_port_profile(rendered, net)
    port = net.create_port(request, f"test-{name}")
    assert (port["binding:vnic_type"], port["device_profile"]) == (request.vnic_type, name)
    assert port["binding:vif_type"] == "unbound"
    assert len(port["fixed_ips"]) == 1  # Nova needs one; the subnet has no DHCP
    assert net.port(port["id"])["device_profile"] == name


@pytest.mark.parametrize(("vnic_type", "binding_profile", "vif_type", "driver"), [
    ("accelerator-direct", {}, "hw_veb", "sriovnicswitch"),  # Cyborg's VF: SR-IOV
    ("direct", {"capabilities": ["switchdev"]}, "ovs", "openvswitch"),  # OVS offload
    ("direct", {}, "hw_veb", "sriovnicswitch"),  # Nova's VF, legacy SR-IOV
    ("normal", {}, "ovs", "openvswitch"),
])
def test_ml2_binds_each_path_with_its_driver(net: Net, vnic_type: str,
                                             binding_profile: dict[str, Any], vif_type: str,
                                             driver: str) -> None:
    request = PortRequest(vnic_type=vnic_type, binding_profile=binding_profile,
                          device_profile="any" if vnic_type == "accelerator-direct" else None)
    port = net.create_port(request, f"test-bind-{vnic_type}", host=net.host,
                           network_id=net.networks[sorted(net.networks)[0]])
    assert port["binding:vif_type"] == vif_type
    assert port["binding:vif_details"]["bound_drivers"] == {"0": driver}


# What docs/profiles.md's table says Neutron binds for each port shape profiles render.
EXPECTED_BINDING = {("accelerator-direct", ()): ("hw_veb", "sriovnicswitch"),
                    ("direct", ("switchdev",)): ("ovs", "openvswitch")}


def test_every_rendered_port_profile_on_this_host_binds_as_documented(
        net: Net, rendered: dict[str, PortRequest]) -> None:
    names = {neutron.provider_network_name(p) for p in net.networks}
    on_host = {name: r for name, r in rendered.items() if r.network in names}
    shapes = {(r.vnic_type, tuple(r.binding_profile.get("capabilities", ())))
              for r in on_host.values()}
    assert shapes == set(EXPECTED_BINDING)  # sriov-port and ovs-offload on physnet1
    for name, request in on_host.items():
        port = net.create_port(request, f"test-rendered-{name}", host=net.host)
        shape = (request.vnic_type, tuple(request.binding_profile.get("capabilities", ())))
        assert (port["binding:vif_type"],
                port["binding:vif_details"]["bound_drivers"]["0"]) == EXPECTED_BINDING[shape]


def test_no_ml2_driver_of_neutron_29_binds_accelerator_direct_physical(net: Net) -> None:
    """sriovnicswitch lists direct, macvtap, direct-physical and accelerator-direct only
    (neutron 29.0.0, mech_sriov/mech_driver.py); nothing else takes the -physical type."""
    port = net.create_port(PortRequest(vnic_type="accelerator-direct-physical",
                                       device_profile="any"), "test-accel-physical",
                           host=net.host, network_id=net.networks[sorted(net.networks)[0]])
    assert port["binding:vif_type"] == "binding_failed"


def test_a_host_without_live_agents_fails_the_binding(net: Net) -> None:
    port = net.create_port(PortRequest(vnic_type="direct", binding_profile={
        "capabilities": ["switchdev"]}), "test-no-agent", host="no-such-host",
        network_id=net.networks[sorted(net.networks)[0]])
    assert port["binding:vif_type"] == "binding_failed"


@pytest.fixture
def port_flavor(shared_stack: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A flavor without accelerators: the port's device profile brings the VF."""
    api = Clients(StackInfo.from_state(shared_stack))
    flavor = client.json_of(api.nova.post("/flavors", json={"flavor": {
        "name": "test.port", "vcpus": 1, "ram": 512, "disk": 1}}), "flavor")["flavor"]
    try:
        yield dict(flavor)
    finally:
        api.nova.delete(f"/flavors/{flavor['id']}")


def test_boot_with_a_profile_port_binds_the_arq_and_the_port_to_one_vf(
        net: Net, rendered: dict[str, PortRequest], shared_stack: dict[str, Any],
        port_flavor: dict[str, Any]) -> None:
    info = StackInfo.from_state(shared_stack)
    api = Clients(info)
    name, request = cyborg_port_profile(rendered, net)
    port = net.create_port(request, f"test-boot-{name}")
    physnet = next(p for p, n in net.networks.items() if n == port["network_id"])
    created = client.json_of(api.nova.post("/servers", json={"server": {
        "name": f"test-port-{name}", "flavorRef": port_flavor["id"], "imageRef": info.image_id,
        "networks": [{"port": port["id"]}]}}), "boot", (202,))
    server_id = str(created["server"]["id"])
    try:
        server = client.wait_server(api, server_id)
        assert server["status"] == "ACTIVE", server.get("fault")
        arqs = client.arqs_of(api, server_id)
        assert [(a["state"], a["device_profile_name"]) for a in arqs] == [("Bound", name)]
        bound = net.port(port["id"])
        assert bound["binding:vif_type"] == "hw_veb"
        assert bound["binding:vif_details"]["bound_drivers"] == {"0": "sriovnicswitch"}
        assert (bound["device_id"], bound["binding:host_id"]) == (server_id, info.hostname)
        profile = bound["binding:profile"]
        assert profile["arq_uuid"] == arqs[0]["uuid"]
        assert profile["pci_slot"] == vf_address(arqs[0]["attach_handle_info"])
        # The profile's physnet trait is what keeps the VF on the network's physnet.
        assert profile["physical_network"] == physnet
        assert arqs[0]["attach_handle_info"]["physical_network"] == physnet
        assert client.allocations_of(api, server_id)
    finally:
        client.delete_server(api, server_id)
    assert client.arqs_of(api, server_id) == []
    assert client.allocations_of(api, server_id) == {}
    released = net.port(port["id"])
    assert (released["binding:vif_type"], released["binding:profile"],
            released["device_id"]) == ("unbound", {}, "")


def test_the_demos_port_step_boots_with_a_rendered_port(shared_stack: dict[str, Any]) -> None:
    info = StackInfo.from_state(shared_stack)
    out = io.StringIO()
    booted = demo.boot_with_profile_port(info, Clients(info), out)
    assert (booted.status, booted.vif_type, booted.bound_by) == ("ACTIVE", "hw_veb",
                                                                 "sriovnicswitch")
    assert booted.binding_profile["pci_slot"] == vf_address(booted.arqs[0]["attach_handle_info"])
    assert booted.released["binding:vif_type"] == "unbound"
    assert "openstack port create --vnic-type accelerator-direct" in out.getvalue()


def test_the_ovs_offload_port_stops_at_novas_pci_claim_with_the_fake_driver(
        net: Net, rendered: dict[str, PortRequest], shared_stack: dict[str, Any],
        port_flavor: dict[str, Any]) -> None:
    """Where the Nova-PCI path stops here (docs/deploy.md): the direct + switchdev port asks
    Nova's PCI tracker for a VF on the network's physnet, and the fake virt driver reports
    no PCI device, so the claim fails and the server ends in ERROR, its port unbound."""
    info = StackInfo.from_state(shared_stack)
    api = Clients(info)
    request = rendered["ovs-offload"]
    assert (request.vnic_type, request.device_profile) == ("direct", None)
    port = net.create_port(request, "test-ovs-offload")
    log = Path(shared_stack["logs"]) / "nova-scheduler.log"
    mark = log.stat().st_size
    created = client.json_of(api.nova.post("/servers", json={"server": {
        "name": "test-ovs-offload", "flavorRef": port_flavor["id"], "imageRef": info.image_id,
        "networks": [{"port": port["id"]}]}}), "boot", (202,))
    server_id = str(created["server"]["id"])
    try:
        server = client.wait_server(api, server_id)
        assert server["status"] == "ERROR"
        with open(log, "rb") as text:
            text.seek(mark)
            seen = text.read().decode(errors="replace")
        assert "PciDeviceRequestFailed" in seen
        assert "physical_network='physnet1'" in seen
        assert client.arqs_of(api, server_id) == []  # no Cyborg device profile on this path
    finally:
        client.delete_server(api, server_id)
    assert net.port(port["id"])["binding:vif_type"] == "unbound"
