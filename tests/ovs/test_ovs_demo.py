"""deploy/ovs_demo.py, the OVS part ``make demo`` shows, runs end to end."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "ovs_demo.py"


@pytest.mark.skipif(os.geteuid() != 0, reason="host apply starts the privsep daemon as root")
def test_ovs_demo_shows_plan_apply_doctor_and_cost() -> None:
    spec = importlib.util.spec_from_file_location("ovs_demo", DEMO)
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = io.StringIO()
    assert demo.run(out) == 0
    text = out.getvalue()
    plan = text.split("$ cyborg-smartnic host apply")[0]
    # the OVS steps follow the PF steps, the restart is manual and disruptive
    assert plan.index("bind_driver") < plan.index("set_ovs_config | Open_vSwitch hw-offload")
    assert "| manual         | ovs-vswitchd" in plan and "MANUAL DISRUPTIVE" in plan
    assert "Applied 2 step(s): 2 changed the host" in text
    assert "not in effect" in text and "[ ok ] ovs hw-offload" in text
    assert "[FAIL] tc ens1f0_1: 1 of 3 flower filter(s) not_in_hw" in text
    assert "a SmartNIC does not pay for OVS alone on this host" in text
