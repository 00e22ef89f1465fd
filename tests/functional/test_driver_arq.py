"""Device profile -> allocation candidates -> ARQ bind/unbind, against the real services.

The host: a ConnectX-6 Dx in switchdev and an E810 in legacy mode, both cabled to physnet1,
and an X710 on physnet2. Profiles pick a pool by physnet, eswitch mode and vendor traits, as an
operator's profile would; Nova's part (allocation candidates, claim, bind) is done the way Nova
does it, through Placement's and Cyborg's APIs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.pci import PciAddress
from tests.functional.harness import InProcessCloud

RC = "CUSTOM_SMARTNIC_VF"
CX6, E810, X710 = "0000:3b:00.0", "0000:5e:00.0", "0000:18:00.0"


def build_host(tree: SysfsTree) -> None:
    tree.add_pf(CX6, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", numa_node=0, total_vfs=8,
        num_vfs=4, vf_driver="vfio-pci", eswitch="switchdev", fw_version="22.36.1010", vf_offset=2))
    tree.add_pf(E810, PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", numa_node=1, total_vfs=16,
        num_vfs=4, eswitch="legacy", fw_version="4.40", fw_mode="comms"))
    tree.add_pf(X710, PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f0", numa_node=0, total_vfs=8,
        num_vfs=2, eswitch="legacy", fw_version="9.20"))


@pytest.fixture
def cloud(make_inproc: Callable[..., InProcessCloud]) -> InProcessCloud:
    inproc = make_inproc(smartnic={
        "physical_device_mappings": "physnet1:ens1f0,physnet1:ens2f0,physnet2:ens3f0"})
    build_host(SysfsTree(inproc.sysfs_root))
    inproc.run_agent_cycle()
    return inproc


def rp_of(inproc: InProcessCloud, pf: str) -> str:
    return inproc.provider_view()[f"{inproc.hostname}_{pf}"]["uuid"]


@pytest.mark.parametrize(("group", "expected_pf"), [
    ({"trait:CUSTOM_PHYSNET_PHYSNET1": "required",
      "trait:CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV": "required"}, CX6),
    ({"trait:CUSTOM_PHYSNET_PHYSNET1": "required",
      "trait:CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV": "forbidden"}, E810),
    ({"trait:CUSTOM_SMARTNIC_VENDOR_INTEL": "required",
      "trait:CUSTOM_PHYSNET_PHYSNET2": "required"}, X710),
    ({"trait:CUSTOM_SMARTNIC_FW_COMMS": "required"}, E810),
    ({"trait:CUSTOM_SMARTNIC_VENDOR_NVIDIA": "required",
      "trait:CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI": "required"}, CX6),
])
def test_allocation_candidates_pick_the_right_pool(cloud: InProcessCloud, group: dict[str, str],
                                                   expected_pf: str) -> None:
    profile = cloud.create_device_profile(f"p-{uuid.uuid4().hex[:8]}",
                                          [{f"resources:{RC}": "1", **group}])
    candidates = cloud.allocation_candidates(profile["groups"])
    chosen = {rp for request in candidates["allocation_requests"]
              for rp in request["allocations"]}
    assert chosen == {rp_of(cloud, expected_pf)}, json.dumps(candidates, indent=1)


def test_a_group_can_ask_for_several_vfs_of_one_pool(cloud: InProcessCloud) -> None:
    profile = cloud.create_device_profile("four-vfs", [{
        f"resources:{RC}": "4", "trait:CUSTOM_PHYSNET_PHYSNET1": "required"}])
    candidates = cloud.allocation_candidates(profile["groups"])
    chosen = sorted(rp for r in candidates["allocation_requests"] for rp in r["allocations"])
    assert chosen == sorted([rp_of(cloud, CX6), rp_of(cloud, E810)])
    too_many = cloud.allocation_candidates([{f"resources:{RC}": "5",
                                             "trait:CUSTOM_PHYSNET_PHYSNET1": "required"}])
    assert too_many["allocation_requests"] == []


def test_arq_bind_gives_a_vf_of_the_chosen_pool_and_unbind_returns_it(
        cloud: InProcessCloud) -> None:
    profile = cloud.create_device_profile("ovs-offload", [{
        f"resources:{RC}": "1", "trait:CUSTOM_PHYSNET_PHYSNET1": "required",
        "trait:CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV": "required"}])
    (request,) = cloud.allocation_candidates(profile["groups"])["allocation_requests"]
    instance = str(uuid.uuid4())
    cloud.claim(instance, request)
    (device_rp,) = request["allocations"]
    (arq,) = cloud.create_arqs("ovs-offload")
    assert arq["state"] == "Initial"

    cloud.bind_arq(arq["uuid"], device_rp, instance)
    bound = cloud.get_arq(arq["uuid"])
    assert bound["state"] == "Bound"
    assert bound["device_rp_uuid"] == device_rp
    assert bound["attach_handle_type"] == "PCI"
    info = bound["attach_handle_info"]  # the API answers the attach_info JSON parsed
    assert info["physical_network"] == "physnet1"
    pool = f"{cloud.hostname}_{CX6}"
    (handle,) = [ah for ah in cloud.attach_handles() if json.loads(ah["attach_info"]) == info]
    assert handle["deployable"] == pool
    assert handle["in_use"] is True
    address = str(PciAddress.from_attach_info(info))
    assert (cloud.sysfs_root / "sys/bus/pci/devices" / address / "physfn").resolve().name == CX6
    assert cloud.nova.events == [{"name": "accelerator-request-bound", "server_uuid": instance,
                                  "tag": arq["uuid"], "status": "completed", "code": 200}]
    assert cloud.provider_view()[pool]["usages"] == {RC: 1}

    # A report cycle while the VF is in use changes nothing.
    mark = cloud.placement_log.mark()
    cloud.run_agent_cycle()
    assert cloud.placement_log.writes(mark) == []
    assert {ah["attach_info"]: ah["in_use"] for ah in cloud.attach_handles()}[
        handle["attach_info"]] is True

    cloud.unbind_arq(arq["uuid"])
    unbound = cloud.get_arq(arq["uuid"])
    assert unbound["state"] == "Unbound" and not unbound["attach_handle_info"]
    assert not any(ah["in_use"] for ah in cloud.attach_handles())
    cloud.release(instance)
    assert cloud.provider_view()[pool]["usages"] == {RC: 0}


def test_bind_needs_a_service_token(cloud: InProcessCloud) -> None:
    profile = cloud.create_device_profile("plain", [{f"resources:{RC}": "1"}])
    request = cloud.allocation_candidates(profile["groups"])["allocation_requests"][0]
    (device_rp,) = request["allocations"]
    (arq,) = cloud.create_arqs("plain")
    cloud.bind_arq(arq["uuid"], device_rp, str(uuid.uuid4()),
                   headers={"X-Service-Roles": ""}, expect=403)
    assert cloud.get_arq(arq["uuid"])["state"] == "Initial"
    assert not any(ah["in_use"] for ah in cloud.attach_handles())


def test_every_vf_of_a_pool_can_be_bound_once(cloud: InProcessCloud) -> None:
    profile = cloud.create_device_profile("x710", [{
        f"resources:{RC}": "1", "trait:CUSTOM_PHYSNET_PHYSNET2": "required"}])
    seen = set()
    for _ in range(2):
        (request,) = cloud.allocation_candidates(profile["groups"])["allocation_requests"]
        instance = str(uuid.uuid4())
        cloud.claim(instance, request)
        (arq,) = cloud.create_arqs("x710")
        cloud.bind_arq(arq["uuid"], next(iter(request["allocations"])), instance)
        seen.add(json.dumps(cloud.get_arq(arq["uuid"])["attach_handle_info"], sort_keys=True))
    assert len(seen) == 2
    assert cloud.allocation_candidates(profile["groups"])["allocation_requests"] == []
