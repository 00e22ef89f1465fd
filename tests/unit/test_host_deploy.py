"""The boot-time systemd unit and the Ansible role: they parse and say what the docs claim."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).parents[2]
UNIT = REPO / "deploy" / "systemd" / "cyborg-smartnic-host.service"
ANSIBLE = REPO / "deploy" / "ansible"
ROLE = ANSIBLE / "roles" / "cyborg_smartnic_host"


def unit_entries() -> dict[str, list[str]]:
    """``Key`` -> every value (systemd allows repeated keys such as Before=)."""
    entries: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).extend(value.split())
    return entries


def test_unit_runs_apply_once_before_the_consumers() -> None:
    entries = unit_entries()
    assert entries["Type"] == ["oneshot"] and entries["RemainAfterExit"] == ["yes"]
    assert entries["ExecStart"] == ["/usr/bin/cyborg-smartnic", "host", "apply", "--yes",
                                    "/etc/cyborg-smartnic/host.yaml"]
    assert {"openvswitch-switch.service", "ovs-vswitchd.service", "nova-compute.service",
            "cyborg-agent.service", "devstack@cyborg-agent.service",
            "devstack@n-cpu.service"} <= set(entries["Before"])
    assert {"systemd-udev-settle.service", "network-pre.target"} <= set(entries["After"])
    assert entries["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    command = os.path.join(os.path.dirname(sys.executable), "cyborg-smartnic")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/bin/cyborg-smartnic", command))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert unit.name not in done.stderr, done.stderr  # no warnings about our unit


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_every_ansible_file_is_yaml() -> None:
    files = sorted(ANSIBLE.rglob("*.yml"))
    assert len(files) >= 4
    for path in files:
        assert load(path) is not None, path


def test_playbook_rolls_out_in_batches_and_stops_at_the_first_failure() -> None:
    (play,) = load(ANSIBLE / "playbook-host.yml")
    assert play["max_fail_percentage"] == 0 and play["any_errors_fatal"] is True
    assert "serial" in play and play["become"] is True
    assert play["roles"] == [{"role": "cyborg_smartnic_host"}]


def _tasks() -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for task in load(ROLE / "tasks" / "main.yml"):
        flat.append(task)
        flat.extend(task.get("block", []) + task.get("always", []))
    return flat


def test_check_mode_only_plans() -> None:
    by_name = {t["name"]: t for t in _tasks()}
    plan = by_name["Plan host changes (read-only)"]
    assert plan["check_mode"] is False and plan["changed_when"] is False
    assert "'plan'" in plan["ansible.builtin.command"]["argv"]
    apply = by_name["Apply host changes"]
    argv = apply["ansible.builtin.command"]["argv"]
    assert argv[1:4] == ["host", "apply", "--yes"]
    assert "check_mode" not in apply  # command tasks are skipped in --check
    assert by_name["Install host.yaml"].get("check_mode") is not False
    assert by_name["Check the host after the change"]["when"] == "not ansible_check_mode"
    writes_in_check_mode = [t["name"] for t in _tasks() if t.get("check_mode") is False]
    assert writes_in_check_mode == ["Create a staging file", "Copy host.yaml to the staging "
                                    "file", "Plan host changes (read-only)",
                                    "Remove the staging file"]


def test_role_default_unit_path_points_at_the_unit() -> None:
    defaults = load(ROLE / "defaults" / "main.yml")
    relative = defaults["cyborg_smartnic_unit_src"].replace("{{ role_path }}", str(ROLE))
    assert Path(relative).resolve() == UNIT.resolve()
