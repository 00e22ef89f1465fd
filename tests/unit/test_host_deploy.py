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
    # found in systemd's search path, not pinned to /usr/bin (a venv install uses a drop-in)
    # --resume finishes an apply a firmware reboot interrupted (host.firmware_resume)
    assert entries["ExecStart"] == ["cyborg-smartnic", "host", "apply", "--yes", "--resume",
                                    "/etc/cyborg-smartnic/host.yaml"]
    assert {"openvswitch-switch.service", "ovs-vswitchd.service", "nova-compute.service",
            "cyborg-agent.service", "devstack@cyborg-agent.service",
            "devstack@n-cpu.service"} <= set(entries["Before"])
    assert {"systemd-udev-trigger.service", "network-pre.target"} <= set(entries["After"])
    everything = " ".join(value for values in entries.values() for value in values)
    assert "udev-settle" not in everything  # deprecated by systemd
    assert entries["Documentation"] == ["man:cyborg-smartnic(1)"]
    assert entries["WantedBy"] == ["multi-user.target"]


def test_unit_passes_os_cloud_and_lets_the_apply_roll_back() -> None:
    entries = unit_entries()
    # OS_CLOUD from this file is what --os-cloud defaults to
    assert entries["EnvironmentFile"] == ["-/etc/cyborg-smartnic/host-apply.env"]
    from cyborg_smartnic.cli.main import build_parser

    os.environ["OS_CLOUD"] = "site-cloud"
    try:
        args = build_parser().parse_args(["host", "apply", "--yes", "x.yaml"])
    finally:
        del os.environ["OS_CLOUD"]
    assert args.os_cloud == "site-cloud"
    # on timeout only the CLI gets SIGTERM (its privsep daemon stays for the rollback) and
    # the rollback gets its own time before anything is killed
    assert entries["KillMode"] == ["mixed"]
    assert entries["TimeoutStartSec"] == ["15min"] and entries["TimeoutStopSec"] == ["10min"]


def test_docs_state_the_units_timeouts() -> None:
    text = (REPO / "docs" / "host.md").read_text()
    entries = unit_entries()
    for key in ("TimeoutStartSec", "TimeoutStopSec", "KillMode"):
        assert f"{key}={entries[key][0]}" in text, key
    assert "exits 143" in text and "exits 130" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    command = os.path.join(os.path.dirname(sys.executable), "cyborg-smartnic")
    unit = tmp_path / UNIT.name
    # this machine has no cyborg-smartnic in systemd's search path, only the venv's
    unit.write_text(UNIT.read_text().replace("ExecStart=cyborg-smartnic ",
                                             f"ExecStart={command} "))
    # --man=no: the man page comes with an installed package, not with this checkout
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, check=False, timeout=60)
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
    argv = render_argv(apply, cyborg_smartnic_os_cloud="")
    assert argv[1:4] == ["host", "apply", "--yes"]
    assert "check_mode" not in apply  # command tasks are skipped in --check
    assert by_name["Install host.yaml"].get("check_mode") is not False
    assert by_name["Check the host after the change"]["when"] == "not ansible_check_mode"
    writes_in_check_mode = [t["name"] for t in _tasks() if t.get("check_mode") is False]
    assert writes_in_check_mode == ["Create a staging file", "Copy host.yaml to the staging "
                                    "file", "Plan host changes (read-only)",
                                    "Remove the staging file"]


def render_argv(task: dict[str, Any], **variables: Any) -> list[str]:
    """A task's ``argv`` template rendered with the role defaults (plain Jinja2 suffices for
    the tasks this renders: no Ansible-only filters)."""
    import jinja2

    values = {**load(ROLE / "defaults" / "main.yml"),
              "cyborg_smartnic_host_config_dest": "/etc/cyborg-smartnic/host.yaml", **variables}
    template = task["ansible.builtin.command"]["argv"]
    rendered = jinja2.Environment(autoescape=False).from_string(  # noqa: S701 - YAML, not HTML
        template).render(values)
    result = yaml.safe_load(rendered.replace("'", '"'))
    assert isinstance(result, list)
    return [str(item) for item in result]


def test_role_passes_os_cloud_when_configured() -> None:
    by_name = {t["name"]: t for t in _tasks()}
    apply = by_name["Apply host changes"]
    assert render_argv(apply, cyborg_smartnic_os_cloud="") == [
        "cyborg-smartnic", "host", "apply", "--yes", "-f", "json",
        "/etc/cyborg-smartnic/host.yaml"]
    # the role never drains unless asked (cyborg_smartnic_drain is false by default)
    assert render_argv(apply, cyborg_smartnic_os_cloud="site") == [
        "cyborg-smartnic", "host", "apply", "--yes", "-f", "json", "--os-cloud", "site",
        "/etc/cyborg-smartnic/host.yaml"]
    assert render_argv(apply, cyborg_smartnic_os_cloud="site", cyborg_smartnic_drain=True
                       ) == ["cyborg-smartnic", "host", "apply", "--yes", "-f", "json",
                             "--os-cloud", "site", "--drain", "--drain-timeout", "600",
                             "/etc/cyborg-smartnic/host.yaml"]
    plan = by_name["Plan host changes (read-only)"]
    staged = {"path": "/tmp/h.yaml"}
    assert "--drain" not in render_argv(plan, cyborg_smartnic_os_cloud="site",
                                        cyborg_smartnic_staged=staged)
    assert "--drain" in render_argv(plan, cyborg_smartnic_os_cloud="site",
                                    cyborg_smartnic_drain=True, cyborg_smartnic_staged=staged)
    guard = by_name["A drain goes through Nova, so it needs a cloud"]["ansible.builtin.assert"]
    assert "cyborg_smartnic_os_cloud | length > 0" in guard["that"]
    for name in ("Plan host changes (read-only)", "Check the host after the change"):
        template = by_name[name]["ansible.builtin.command"]["argv"]
        assert "['--os-cloud', cyborg_smartnic_os_cloud] if cyborg_smartnic_os_cloud" \
            in template, name
    env = by_name["Tell the boot-time unit which cloud to ask (OS_CLOUD, as --os-cloud)"]
    assert env["ansible.builtin.copy"]["dest"] == "/etc/cyborg-smartnic/host-apply.env"
    assert "'OS_CLOUD=' ~ cyborg_smartnic_os_cloud" in env["ansible.builtin.copy"]["content"]
    dropin = by_name["Point the boot-time unit at the command given by its full path"]
    assert "cyborg_smartnic_command is match('/')" in dropin["when"]


def test_role_default_unit_path_points_at_the_unit() -> None:
    defaults = load(ROLE / "defaults" / "main.yml")
    relative = defaults["cyborg_smartnic_unit_src"].replace("{{ role_path }}", str(ROLE))
    assert Path(relative).resolve() == UNIT.resolve()
