"""host.yaml loading: the schema, cross-field rules and the one-line-per-problem errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyborg_smartnic.host.config import (
    DEFAULT_DRIVER,
    InvalidHostConfig,
    load_host_config,
    parse_ranges,
    parse_size_kb,
)
from cyborg_smartnic.pci import PciAddress

GOOD = """\
devices:
  - address: "0000:3B:00.0"
    vf_count: 16
    vf_drivers:
      "0-7": vfio-pci
      "8-15": default
    reserved_vfs: "12-15"
    eswitch_mode: switchdev
    flow_steering_mode: smfs
    physnet: physnet1
  - netdev: ens2f0
    vf_count: 4
    firmware_mode: comms
  - select: "8086:1572"
    vf_count: 0
hugepages:
  - node: 0
    size: 1G
    count: 4
  - size: 2M
    count: 1024
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text(text)
    return path


def test_good_config_converts_every_field(tmp_path: Path) -> None:
    config = load_host_config(_write(tmp_path, GOOD))
    first, second, third = config.devices
    assert first.address == PciAddress.parse("0000:3b:00.0")
    assert first.vf_count == 16
    assert first.driver_for(3) == "vfio-pci"
    assert first.driver_for(9) == DEFAULT_DRIVER
    assert first.reserved_vfs == (12, 13, 14, 15)
    assert (first.eswitch_mode, first.flow_steering_mode, first.physnet) == (
        "switchdev", "smfs", "physnet1")
    assert (first.origin.line, first.origin.field) == (2, "devices[0].address")
    assert second.netdev == "ens2f0" and second.firmware_mode == "comms"
    assert third.select == "8086:1572" and third.vf_count == 0
    node0, global_pool = config.hugepages
    assert (node0.numa_node, node0.size_kb, node0.count) == (0, 1048576, 4)
    assert (global_pool.numa_node, global_pool.size_kb, global_pool.label) == (
        None, 2048, "global 2048kB")


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_host_config(_write(tmp_path, ""))
    assert config.devices == () and config.hugepages == ()


def test_every_problem_is_listed_with_file_line_and_field(tmp_path: Path) -> None:
    text = """\
devices:
  - address: "0000:3b:00.0"
    vf_count: 8
    vf_drivers:
      "0-5": vfio-pci
      "4-9": iavf
    reserved_vfs: "7-12"
  - vf_count: 2
  - address: "0000:3b:00.0"
    netdev: ens1f0
  - select: "ens1f0#0-3"
hugepages:
  - node: 0
    size: 3M
    count: 1
"""
    with pytest.raises(InvalidHostConfig) as caught:
        load_host_config(_write(tmp_path, text))
    lines = caught.value.details.splitlines()
    host = str(tmp_path / "host.yaml")
    assert f'{host}:6:7: devices[0].vf_drivers.4-9: overlaps the range \'0-5\'' in lines
    assert any(line.startswith(f'{host}:6:7: devices[0].vf_drivers.4-9: VF 9 does not')
               for line in lines)
    assert any(line.startswith(f"{host}:7:5: devices[0].reserved_vfs: VF 12 does not exist")
               for line in lines)
    assert f"{host}:8:5: devices[1]: needs one of address, netdev or select" in lines
    assert any("devices[2]: give only one of address, netdev or select" in line
               for line in lines)
    assert any(":11:5: devices[3].select: a host entry selects whole PFs" in line
               for line in lines)
    assert any(":14:5: hugepages[0].size: '3M' is not a hugepage size Linux offers" in line
               for line in lines)
    assert ":9:5: devices[2].address: '0000:3b:00.0' is already configured at line 2" in (
        caught.value.details)
    assert len(caught.value.errors) == len(lines) == 8


def test_schema_errors_point_at_the_key(tmp_path: Path) -> None:
    text = """\
devices:
  - address: "0000:3b:00.0"
    eswitch_mode: offload
    vf_cout: 3
    vf_drivers:
      "0-1": "vfio pci"
"""
    with pytest.raises(InvalidHostConfig) as caught:
        load_host_config(_write(tmp_path, text))
    text_out = caught.value.details
    assert ':3:5: devices[0].eswitch_mode: "offload" is not one of: "legacy", "switchdev"' \
        in text_out
    assert ":4:5: devices[0].vf_cout: unknown key 'vf_cout'; did you mean 'vf_count'?" \
        in text_out
    assert ':6:7: devices[0].vf_drivers.0-1: not a kernel driver name' in text_out


def test_bad_pci_address_and_duplicates(tmp_path: Path) -> None:
    text = """\
devices:
  - address: "0000:3b:00.9"
  - netdev: ens1f0
  - netdev: ens1f0
hugepages:
  - {node: 1, size: 2048, count: 1}
  - {node: 1, size: 2M, count: 2}
"""
    with pytest.raises(InvalidHostConfig) as caught:
        load_host_config(_write(tmp_path, text))
    out = caught.value.details
    assert ":2:5: devices[0].address: invalid PCI address '0000:3b:00.9'" in out
    assert ":4:5: devices[2].netdev: 'ens1f0' is already configured at line 3" in out
    assert ":7:5: hugepages[1]: node1 2048kB pages are already configured at line 6" in out


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    from cyborg_smartnic.errors import SourceError

    with pytest.raises(SourceError, match=r"host.yaml:3:1: yaml: syntax error"):
        load_host_config(_write(tmp_path, "devices:\n  - address: [\n"))


@pytest.mark.parametrize(("text", "expected"), [
    ("0-3", (0, 1, 2, 3)), ("5", (5,)), ("0-1, 4,6-7", (0, 1, 4, 6, 7)), (3, (3,)),
])
def test_parse_ranges(text: str | int, expected: tuple[int, ...]) -> None:
    assert parse_ranges(text) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("3-1", "VF range '3-1' runs backwards"), ("a-b", "VF range 'a-b' is not N or N-M"),
    ("", "'' is not a VF index list like '0-7' or '0-3,8'"),
    ("1-", "VF range '1-' is not N or N-M"), ("5000", "VF index 5000 is outside 0-4095"),
    (-1, "VF range '-1' is not N or N-M"),
    (True, "True is not a VF index list like '0-7' or '0-3,8'")])
def test_parse_ranges_refuses(text: str | int, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_ranges(text)
    assert str(caught.value) == reason


@pytest.mark.parametrize(("text", "kb"), [
    ("2M", 2048), ("1G", 1048576), ("2048kB", 2048), (2048, 2048), ("1g", 1048576),
])
def test_parse_size(text: str | int, kb: int) -> None:
    assert parse_size_kb(text) == kb


@pytest.mark.parametrize("text", ["3M", "huge", "1T", 1000])
def test_parse_size_refuses(text: str | int) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_size_kb(text)


def test_select_uses_the_devices_selector_syntax(tmp_path: Path) -> None:
    with pytest.raises(InvalidHostConfig) as caught:
        load_host_config(_write(tmp_path, "devices:\n  - select: not a selector\n"))
    assert ":2:5: devices[0].select: unknown selector 'not a selector'" in caught.value.details
