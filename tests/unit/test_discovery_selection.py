"""``[smartnic] devices`` selectors and ``physical_device_mappings``: parsing and their effect
on a scan."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.selection import (
    KIND_ADDRESS,
    KIND_ID,
    KIND_NETDEV,
    parse_selectors,
    rejoin,
)
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.hostgen import build_scenario, scratch_dir
from cyborg_smartnic.pci import PciAddress


@pytest.fixture(scope="module")
def example() -> Iterator[Path]:
    with scratch_dir() as path:
        build_scenario(path, "example")
        yield path


# ---------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("items", "joined"), [
    (["ens1f0#0-3", "8"], ["ens1f0#0-3,8"]),
    (["ens1f0#0-3", "8", "10-11", "15b3:101d"], ["ens1f0#0-3,8,10-11", "15b3:101d"]),
    ([" 8086:* ", ""], ["8086:*"]),
    ([], []),
])
def test_rejoin(items: list[str], joined: list[str]) -> None:
    assert rejoin(items) == joined


@pytest.mark.parametrize(("text", "kind", "fields", "indexes"), [
    ("15b3:101d", KIND_ID, ("15b3", "101d", None, None), None),
    ("15B3:101D", KIND_ID, ("15b3", "101d", None, None), None),
    ("8086:*", KIND_ID, ("8086", None, None, None), None),
    ("0000:3b:00.0", KIND_ADDRESS, (None, None, "0000:3b:00.0", None), None),
    ("0000:3B:00.1#2", KIND_ADDRESS, (None, None, "0000:3b:00.1", None), {2}),
    ("ens1f0", KIND_NETDEV, (None, None, None, "ens1f0"), None),
    ("ens1f0#0-3,8", KIND_NETDEV, (None, None, None, "ens1f0"), {0, 1, 2, 3, 8}),
    ("8086:1592#4-5", KIND_ID, ("8086", "1592", None, None), {4, 5}),
    ("bond0.100", KIND_NETDEV, (None, None, None, "bond0.100"), None),
])
def test_parse(text: str, kind: str, fields: tuple[object, ...],
               indexes: set[int] | None) -> None:
    (selector,) = parse_selectors([text])
    assert selector.kind == kind
    address = str(selector.address) if selector.address else None
    assert (selector.vendor_id, selector.device_id, address, selector.netdev) == fields
    assert selector.vf_indexes == (None if indexes is None else frozenset(indexes))
    assert selector.text == text


@pytest.mark.parametrize(("items", "message"), [
    (["15b3:10"], "unknown selector '15b3:10'"),
    (["15b3:101d:1"], "unknown selector '15b3:101d:1'"),
    (["*"], "unknown selector '*'"),
    (["ens1f0 extra"], "unknown selector 'ens1f0 extra'"),
    (["averyveryverylongname0"], "unknown selector 'averyveryverylongname0'"),
    (["0000:3b:20.0"], "'0000:3b:20.0': invalid PCI address '0000:3b:20.0': slot (20)"),
    (["ens1f0#"], "'ens1f0#': '#' without VF ranges"),
    (["ens1f0#3-1"], "'ens1f0#3-1': VF range '3-1' runs backwards"),
    (["ens1f0#a"], "'ens1f0#a': VF range 'a' is not N or N-M"),
    (["ens1f0#1", "x:2"], "unknown selector 'x:2'"),
    (["ens1f0#0-70000"], "'ens1f0#0-70000': VF index 70000 is outside 0-65535"),
    (["4", "ens1f0"], "VF range '4' does not follow a selector with '#'"),
    (["ens1f0", "4"], "VF range '4' does not follow a selector with '#'"),
])
def test_unknown_or_bad_selectors_fail_closed(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_selectors(items)
    assert str(caught.value).startswith("[smartnic] devices: ")
    assert message in str(caught.value)


def test_matching() -> None:
    by_id, wildcard, by_address, by_netdev = parse_selectors(
        ["15b3:101d", "8086:*", "0000:3b:00.1", "ens2f0#0-1"])
    address = PciAddress.parse("0000:3b:00.1")
    assert by_id.matches("15b3", "101d", address, None)
    assert not by_id.matches("15b3", "101f", address, None)
    assert wildcard.matches("8086", "1592", None, None) and wildcard.is_wildcard
    assert not wildcard.matches("15b3", "101d", None, None)
    assert by_address.matches("15b3", "101d", address, None)
    assert not by_address.matches("15b3", "101d", PciAddress.parse("0000:3b:00.0"), None)
    assert by_netdev.matches(None, None, None, "ens2f0")
    assert not by_netdev.matches("8086", "1592", None, None)
    assert by_netdev.allows_vf(1) and not by_netdev.allows_vf(2)
    assert by_id.allows_vf(100)


# ---------------------------------------------------------------------- effect on a scan
def _summary(root: Path, devices: list[str]) -> tuple[dict[str, list[int]], dict[str, str]]:
    host = scan(root, ScanOptions(selectors=parse_selectors(devices), hostname="h"))
    pfs = {str(pf.address): [vf.index for vf in pf.virtual_functions]
           for pf in host.physical_functions}
    return pfs, {s.address: s.reason for s in host.skipped}


def test_netdev_selector_with_ranges(example: Path) -> None:
    pfs, skipped = _summary(example, ["ens1f0#0-1,3"])
    assert pfs == {"0000:3b:00.0": [0, 1, 3]}
    assert skipped["0000:3b:00.4"] == "VF index 2 not in selector ens1f0#0-1,3"
    assert skipped["0000:3b:00.1"] == ("ConnectX-6 Dx (15b3:101d) is not selected by "
                                       "[smartnic] devices (ens1f0#0-1,3)")
    assert skipped["0000:5e:00.0"].startswith("E810 (8086:1592) is not selected")
    # noise that matches nothing stays silent; the uncatalogued I350 is a network PF
    assert "0000:d8:00.0" not in skipped and "0000:00:1c.0" not in skipped
    assert skipped["0000:01:00.0"] == ("8086:1521 is not selected by [smartnic] devices "
                                       "(ens1f0#0-1,3)")


def test_two_selectors_on_one_pf_union_their_ranges(example: Path) -> None:
    pfs, skipped = _summary(example, ["ens2f0#0-1", "0000:5e:00.0#6"])
    assert pfs == {"0000:5e:00.0": [0, 1, 6]}
    assert skipped["0000:5e:01.2"] == "VF index 2 not in selectors ens2f0#0-1, 0000:5e:00.0#6"


def test_id_and_wildcard_selectors(example: Path) -> None:
    pfs, _ = _summary(example, ["15b3:101d"])
    assert sorted(pfs) == ["0000:3b:00.0", "0000:3b:00.1"]
    pfs, skipped = _summary(example, ["8086:*"])
    # every Intel SR-IOV network PF, including the uncatalogued I350 LOM
    assert sorted(pfs) == ["0000:01:00.0", "0000:18:00.0", "0000:18:00.1", "0000:5e:00.0",
                           "0000:5e:00.1"]
    # bridges and the host bridge are Intel too, but a wildcard does not list non-NICs
    assert not any(a.startswith("0000:00:") for a in skipped)


def test_selected_uncatalogued_pf_is_named_from_ids(example: Path) -> None:
    host = scan(example, ScanOptions(selectors=parse_selectors(["eno1"]), hostname="h"))
    (pf,) = host.physical_functions
    assert (str(pf.address), pf.vendor, pf.model, pf.model_key) == (
        "0000:01:00.0", "intel", "8086:1521", "8086_1521")
    assert (pf.total_vfs, pf.num_vfs, pf.vf_device_id, pf.driver) == (7, 0, "1520", "igb")


def test_selecting_something_that_is_not_a_nic(example: Path) -> None:
    _, skipped = _summary(example, ["0000:00:1c.0", "1af4:1041"])
    assert skipped["0000:00:1c.0"] == ("selected by [smartnic] devices but it is not an "
                                       "SR-IOV network function")
    assert skipped["0000:00:03.0"] == ("selected by [smartnic] devices but 1af4:1041 has no "
                                       "SR-IOV capability (no sriov_totalvfs)")


def test_selector_matching_nothing_selects_nothing(example: Path) -> None:
    pfs, skipped = _summary(example, ["ens9f9"])
    assert pfs == {}
    assert len([r for r in skipped.values() if "is not selected" in r]) == 7


def test_extra_model_makes_a_pf_count(example: Path) -> None:
    from cyborg_smartnic.catalog import Catalog, parse_extra_model

    catalog = Catalog().with_extra((parse_extra_model("8086:1521:1520=I350 LOM"),))
    host = scan(example, ScanOptions(catalog=catalog, hostname="h"))
    pf = host.find_pf(PciAddress.parse("0000:01:00.0"))
    assert pf is not None and (pf.model, pf.model_key, pf.vendor) == (
        "I350 LOM", "I350_LOM", "intel")
    assert host.skipped == ()


# ---------------------------------------------------------------------- physnets
def test_physnet_mappings_parse_and_lookup() -> None:
    mapping = parse_physnet_mappings(["physnet1:ens1f0", "physnet2:0000:3B:00.1",
                                      "physnet1:ens2f0"])
    assert mapping.lookup(PciAddress.parse("0000:3b:00.1"), "ens1f1") == "physnet2"
    assert mapping.lookup(PciAddress.parse("0000:3b:00.0"), "ens1f0") == "physnet1"
    assert mapping.lookup(PciAddress.parse("0000:5e:00.0"), "ens2f0") == "physnet1"
    assert mapping.lookup(PciAddress.parse("0000:5e:00.1"), None) is None
    assert mapping and not parse_physnet_mappings([])


def test_physnet_address_wins_over_netdev() -> None:
    mapping = parse_physnet_mappings(["a:ens1f0", "b:0000:3b:00.0"])
    assert mapping.lookup(PciAddress.parse("0000:3b:00.0"), "ens1f0") == "b"


@pytest.mark.parametrize(("items", "message"), [
    (["physnet1"], "'physnet1' is not PHYSNET:DEVICE"),
    (["physnet1:"], "'physnet1:' is not PHYSNET:DEVICE"),
    ([":ens1f0"], "physnet '' must be"),
    (["phys net:ens1f0"], "physnet 'phys net' must be"),
    (["physnet1:0000:3b:00.9"], "invalid PCI address '0000:3b:00.9'"),
    (["physnet1:ens 1"], "'ens 1' is neither a netdev name nor a PCI address"),
    (["a:ens1f0", "b:ens1f0"], "ens1f0 is mapped twice (a, b)"),
    (["a:0000:3b:00.0", "b:0000:3B:00.0"], "0000:3B:00.0 is mapped twice (a, b)"),
])
def test_bad_physnet_mappings(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_physnet_mappings(items)
    assert str(caught.value).startswith("[smartnic] physical_device_mappings: ")
    assert message in str(caught.value)
