"""The demo's steps on the session's stack: every servable flavor boots on the right pool.

`make demo` (CI runs it) starts and stops its own stack; here the same steps run on the
shared one (`demo.run(..., start=False)`) and each step's outcome is checked.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic import traits
from deploy import demo
from tests.stack.conftest import SHARED

pytestmark = [pytest.mark.stack, SHARED]

# profile -> the physnet of each VF its server gets (profiles/*.yaml)
SERVABLE = {"dpdk-vfio": ["physnet4", "physnet4"], "e810-comms-gtp": ["physnet4", "physnet4"],
            "upf-5g": ["physnet3", "physnet4"], "xdp-netdev": ["physnet5"]}


def test_demo_boots_every_servable_flavor_and_frees_its_vfs(shared_stack: dict[str, Any]
                                                            ) -> None:
    out = io.StringIO()
    result = demo.run(Path(shared_stack["work_dir"]), out, start=False)

    # The agent's report: exactly the pools `cyborg-smartnic report` names, in Placement.
    assert result.expected_providers
    assert set(result.providers) == result.expected_providers
    for provider in result.providers.values():
        assert provider["inventories"][traits.DEFAULT_RESOURCE_CLASS] > 0
        assert traits.OWNER_CYBORG in provider["traits"]
    rendered = json.loads(demo.run_tool(["profile", "render", str(demo.PROFILES_DIR)], "t"))
    assert set(result.profiles) == {p["device_profile"]["name"] for p in rendered["profiles"]
                                    if p["device_profile"]}
    # the ports whose VF Nova's PCI tracker picks have no Cyborg device profile at all
    assert {p["name"] for p in rendered["profiles"] if p["device_profile"] is None} == {
        "ovs-offload", "bluefield-dpu-port"}
    assert not set(result.profiles) & {"ovs-offload", "bluefield-dpu-port"}

    # One server per flavor the host can serve, each on VFs of the physnets it asked for.
    by_profile = {boot.profile: boot for boot in result.boots}
    assert set(by_profile) == {*SERVABLE, demo.PLAN_PROFILE}
    for profile, physnets in SERVABLE.items():
        boot = by_profile[profile]
        assert boot.status == "ACTIVE", boot.fault
        assert sorted(vf.physnet or "" for vf in boot.vfs) == physnets
        assert len({vf.address for vf in boot.vfs}) == len(physnets)
        assert "resourcesdevice_profile_0=CUSTOM_SMARTNIC_VF" in boot.scheduler_query
        assert boot.arqs_after_delete == 0
        assert set(boot.usage_after_delete.values()) == {0}
    upf = by_profile["upf-5g"]
    assert len({vf.pool for vf in upf.vfs}) == 2  # group_policy=isolate: two pools
    assert "group_policy=isolate" in upf.scheduler_query

    # host plan refused to resize the PF under the sriov-port server, then passed.
    planned = by_profile[demo.PLAN_PROFILE]
    (vf,) = planned.vfs
    assert (vf.pf_address, vf.physnet, vf.eswitch_mode) == ("0000:3b:00.0", "physnet1",
                                                           "switchdev")
    assert vf.arq_uuid in result.host_plan_refusal
    # host plan --drain: the drain first, that server BLOCKED by Nova's accelerator rule
    assert result.drain_plan.startswith("Drain of ")
    assert planned.server_id in result.drain_plan and "BLOCKED" in result.drain_plan
    assert "ForbiddenWithAccelerators" in result.drain_plan
    assert "0 refused" in result.host_plan

    # The profile the host cannot serve: NoValidHost, with profile check's reasons shown.
    assert result.refused is not None
    assert result.refused.status == "ERROR"
    assert "No valid host" in result.refused.fault
    assert "no pool has CUSTOM_SMARTNIC_MODEL_BLUEFIELD_2" in out.getvalue()
