"""The stack tier: the demo's code path on a real local stack, with assertions on each step.

Separate processes (RabbitMQ, Placement and Cyborg API under gunicorn, conductor, agent with
smartnic_driver, Nova stub) on the bundled example host; a device profile, allocation
candidates, a claim, an ARQ bound to a VF, the Nova event, host plan refusing to disturb the
bound VF, the release; then a stop that leaves nothing running.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cyborg_smartnic import demo, traits
from tests.fixtures.sysfs import build_scenario
from tests.stack.conftest import processes_in

pytestmark = [pytest.mark.stack, pytest.mark.usefixtures("rabbitmq_installed")]


def stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(demo.STACK_SCRIPT), *args], capture_output=True,
                          text=True, timeout=180, check=False)


def test_agent_reports_and_a_bind_lands_on_a_switchdev_vf(tmp_path: Path) -> None:
    # The bundled example host is generated from this scenario: use it to know the VFs.
    tree = build_scenario(tmp_path / "reference", "example")
    work = tmp_path / "stack"
    out = io.StringIO()
    try:
        result = demo.run(work, out, timeout=240, keep=True)

        # The agent's report: exactly the pools `cyborg-smartnic report` names, in Placement.
        assert result.stack is not None
        assert result.expected_providers
        assert set(result.providers) == result.expected_providers
        for provider in result.providers.values():
            assert provider["inventories"][traits.DEFAULT_RESOURCE_CLASS] > 0
            assert traits.OWNER_CYBORG in provider["traits"]

        # profile apply created every profile of profiles/ (a second apply changed nothing).
        assert demo.BIND_PROFILE in result.profiles
        rendered = json.loads(demo.run_tool(["profile", "render", str(demo.PROFILES_DIR)], "t"))
        assert set(result.profiles) == {p["device_profile"]["name"] for p in rendered}

        # Only the switchdev PF on physnet1 can serve ovs-offload.
        assert len(result.candidates) == 1
        chosen = result.providers[result.candidates[0]]
        assert traits.physnet_trait("physnet1") in chosen["traits"]
        assert traits.eswitch_trait("switchdev") in chosen["traits"]

        # The ARQ is bound to one of that PF's VFs, with the physnet Nova's port flow reads.
        bound = result.bound
        assert bound is not None
        assert bound.pf_address == "0000:3b:00.0"
        assert bound.address in tree.vfs("0000:3b:00.0").values()
        assert bound.physnet == "physnet1"
        assert bound.attach_info["physical_network"] == "physnet1"
        assert bound.eswitch_mode == "switchdev"
        assert bound.device_rp_uuid == chosen["uuid"]
        assert result.nova_events >= 1
        assert result.usage_after_release == 0
        # host plan saw the bound VF through the Cyborg API and refused to disturb it.
        assert bound.arq_uuid in result.host_plan_refusal
        assert "0 refused" in result.host_plan
        assert f"-> VF {bound.address} (physnet1, switchdev" in out.getvalue()

        # While it runs: status is clean and a second start is refused.
        status = stack("status", "--work-dir", str(work), "-f", "json")
        assert status.returncode == 0
        assert all(p["running"] for p in json.loads(status.stdout)["processes"])
        again = stack("start", "--work-dir", str(work))
        assert again.returncode == 1
        assert "a stack is already running" in again.stderr
    finally:
        stopped = stack("stop", "--work-dir", str(work))
    assert stopped.returncode == 0
    assert "cyborg-agent: stopped" in stopped.stdout
    assert processes_in(work) == []
    assert not (work / "host").exists()  # the unpacked example (looping symlinks) is gone
