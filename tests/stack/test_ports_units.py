"""The stack's Neutron pieces that need no running service: physnets, agent states, ports."""

from __future__ import annotations

import pytest

from deploy.stacklib import neutron, neutron_agents, neutron_ports
from deploy.stacklib.procs import StackError


def test_physnets_come_from_physical_device_mappings_in_order_once() -> None:
    options = {"physical_device_mappings": "physnet2:ens1f1, physnet1:ens1f0,physnet2:ens2f0"}
    assert neutron.physnets(options) == ["physnet2", "physnet1"]
    values = neutron.template_values(options)
    assert values == {"physnets": "physnet2,physnet1",
                      "vlan_ranges": "physnet2:100:199,physnet1:100:199"}


def test_a_host_without_physnets_gives_ml2_none() -> None:
    assert neutron.template_values({}) == {"physnets": "", "vlan_ranges": ""}


def test_agent_states_cover_every_physnet_for_both_agent_types() -> None:
    states = neutron_agents.agent_states("compute-0", ["physnet1", "physnet3"])
    by_type = {s["agent_type"]: s for s in states}
    assert set(by_type) == set(neutron.AGENT_TYPES)
    nic = by_type[neutron_agents.NIC_SWITCH]["configurations"]
    ovs = by_type[neutron_agents.OPEN_VSWITCH]["configurations"]
    assert set(nic["device_mappings"]) == set(ovs["bridge_mappings"]) == {"physnet1",
                                                                          "physnet3"}
    assert all(s["host"] == "compute-0" and s["configurations"]["stand_in"] for s in states)


def test_rendered_cyborg_port_arguments_become_a_port_body() -> None:
    request = neutron_ports.port_request(["--vnic-type", "accelerator-direct",
                                          "--device-profile", "sriov-port",
                                          "--network", "provider-physnet1"])
    assert request.cyborg_scheduled
    assert neutron_ports.port_body(request, "NET", "PROJECT", "p") == {"port": {
        "name": "p", "network_id": "NET", "project_id": "PROJECT",
        "binding:vnic_type": "accelerator-direct", "device_profile": "sriov-port"}}


def test_rendered_offload_port_arguments_carry_the_binding_profile() -> None:
    request = neutron_ports.port_request(["--vnic-type", "direct", "--network", "n",
                                          "--binding-profile",
                                          '{"capabilities": ["switchdev"]}'])
    assert not request.cyborg_scheduled
    body = neutron_ports.port_body(request, "NET", "PROJECT", "p", host="h")["port"]
    assert body["binding:profile"] == {"capabilities": ["switchdev"]}
    assert body["binding:host_id"] == "h"
    assert "device_profile" not in body


@pytest.mark.parametrize(("arguments", "message"), [
    (["--vnic-type"], "has no value"),
    (["--fixed-ip", "x"], "not one profiles render"),
    (["--binding-profile", "[1]"], "expected JSON or KEY=VALUE"),
    (["--binding-profile", "{1"], "not JSON"),
])
def test_bad_port_arguments_are_one_error(arguments: list[str], message: str) -> None:
    with pytest.raises(StackError, match=message):
        neutron_ports.port_request(arguments)


def test_port_profiles_read_the_versioned_render_document() -> None:
    document = {"format": 1, "profiles": [
        {"name": "a", "port_arguments": ["--vnic-type", "accelerator-direct",
                                         "--device-profile", "a", "--network", "n"]},
        {"name": "b", "port_arguments": None}]}
    assert list(neutron_ports.port_profiles(document)) == ["a"]
    with pytest.raises(StackError, match="no"):
        neutron_ports.port_profiles([{"name": "a"}])
