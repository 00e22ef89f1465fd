"""host.yaml's ``ovs:`` section: conversion, and one FILE:LINE:COL line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.host.config import InvalidHostConfig, load_host_config

GOOD = """\
ovs:
  hw_offload: true
  tc_policy: skip_sw
  max_idle: 30000
  uplinks:
    - netdev: ens1f0
      bridge: br-phys
    - netdev: ens1f1
"""


def _load(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text(text)
    return path


def test_ovs_section_converts(tmp_path: Path) -> None:
    ovs = load_host_config(_load(tmp_path, GOOD)).ovs
    assert ovs is not None
    assert (ovs.bridge, ovs.hw_offload, ovs.tc_policy, ovs.max_idle_ms) == (
        "br-int", True, "skip_sw", 30000)
    assert [(u.netdev, u.bridge) for u in ovs.uplinks] == [("ens1f0", "br-phys"),
                                                          ("ens1f1", "br-int")]
    assert ovs.uplinks[1].origin.line == 8
    assert ovs.representors == "neutron"


def test_no_ovs_section_is_none(tmp_path: Path) -> None:
    assert load_host_config(_load(tmp_path, "devices: []\n")).ovs is None


@pytest.mark.parametrize(("text", "expected"), [
    ("ovs:\n  tc_policy: skip_hardware\n",
     "host.yaml:2:3: ovs.tc_policy:"),
    ("ovs:\n  max_idle: 100\n",
     "host.yaml:2:3: ovs.max_idle: max_idle is in milliseconds, 500-3600000"),
    ("ovs:\n  hw_offload: yes please\n", "host.yaml:2:3: ovs.hw_offload: expected"),
    ("ovs:\n  tc_policy: skip_sw\n",
     "host.yaml:2:3: ovs.tc_policy: tc_policy only applies with hw_offload: true"),
    ("ovs:\n  hw_offload: true\n  uplinks:\n    - netdev: ens1f0\n    - netdev: ens1f0\n",
     "host.yaml:5:7: ovs.uplinks[1].netdev: 'ens1f0' is already listed at line 4"),
    ("ovs:\n  uplinks:\n    - netdev: this-name-is-far-too-long\n",
     "host.yaml:3:7: ovs.uplinks[0].netdev: not a network interface name"),
    ("ovs:\n  hw_ofload: true\n",
     "host.yaml:2:3: ovs.hw_ofload: unknown key 'hw_ofload'; did you mean 'hw_offload'?"),
])
def test_bad_ovs_section_names_file_line_and_field(tmp_path: Path, text: str,
                                                   expected: str) -> None:
    with pytest.raises(InvalidHostConfig) as raised:
        load_host_config(_load(tmp_path, text))
    lines = [str(e) for e in raised.value.errors]
    assert len(lines) == 1, lines
    assert lines[0].startswith(str(tmp_path / expected)), lines[0]


def test_cli_reports_a_bad_ovs_section_in_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _load(tmp_path, "ovs:\n  max_idle: -5\n")
    assert main(["host", "plan", "--example-host", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:3: ovs.max_idle: max_idle is in milliseconds" in err
    assert "Traceback" not in err
