"""``scan_function``: one PCI function read exactly as the full ``scan`` reads it.

The property: on every fixture host (scenarios and pathologies, with and without
``[smartnic] devices`` selectors), reading each listed function on its own gives the full
scan's PF for that address and, together, exactly the full scan's ``Skipped`` rows. Plus: it
never lists the host, and an absent or vanishing PF comes back empty or skipped, not raised;
``host apply`` re-reads through it instead of scanning the whole host.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.cli.common import load_config
from cyborg_smartnic.discovery.model import Host, Skipped
from cyborg_smartnic.discovery.scan import (
    FunctionScan,
    ScanOptions,
    scan,
    scan_function,
    scan_hugepages,
)
from cyborg_smartnic.discovery.selection import parse_selectors
from cyborg_smartnic.discovery.sysfs import SysfsReader
from cyborg_smartnic.errors import InvalidPciAddress
from cyborg_smartnic.host import inuse
from cyborg_smartnic.host.apply import ApplyOptions, Executor
from cyborg_smartnic.host.config import load_host_config
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.reader import HostReader
from cyborg_smartnic.host.steps import BIND_DRIVER, SET_HUGEPAGES, SET_NUMVFS
from cyborg_smartnic.hostgen import (
    BYSTANDER_PF,
    PATHOLOGIES,
    PATHOLOGY_PF,
    SCENARIOS,
    build_pathology,
    build_scenario,
    pathology_base,
    scratch_dir,
)
from cyborg_smartnic.hostgen.kernel import emulated_kernel
from cyborg_smartnic.pci import PciAddress

DEFAULT = ScanOptions(hostname="h")
# picks PFs by id, wildcard vendor, address and netdev, with VF ranges: exercises the
# "not selected", "VF index not in selector" and "selected but not SR-IOV" rows
SELECTED = ScanOptions(hostname="h", selectors=parse_selectors(
    ["15b3:101d#0-1", "8086:*", "0000:3b:00.1#1,3", "ens3f0#0", "0000:00:1f.3"]))
OPTIONS = {"default": DEFAULT, "selected": SELECTED}


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


def _names(root: Path) -> list[str]:
    return sorted(os.listdir(root / "sys/bus/pci/devices"))


def assert_same_as_full_scan(root: Path, options: ScanOptions) -> Host:
    full = scan(root, options)
    one = {name: scan_function(root, name, options) for name in _names(root)}

    assert {name for name, got in one.items() if got.pf is not None} == {
        str(pf.address) for pf in full.physical_functions}
    for pf in full.physical_functions:
        assert one[str(pf.address)].pf == pf
    rows: list[Skipped] = [row for name in _names(root) for row in one[name].skipped]
    assert sorted(rows, key=lambda s: s.address) == list(full.skipped)
    return full


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_matches_the_full_scan(root: Path, scenario: str, options: str) -> None:
    build_scenario(root, scenario)
    full = assert_same_as_full_scan(root, OPTIONS[options])
    if scenario in ("example", "cx6dx_switchdev", "e810_comms", "x710_legacy"):
        assert full.physical_functions  # the property was checked on real PFs


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("pathology", sorted(PATHOLOGIES))
def test_every_pathology_matches_the_full_scan(root: Path, pathology: str, options: str) -> None:
    build_pathology(root, pathology)
    full = assert_same_as_full_scan(root, OPTIONS[options])
    assert full.find_pf(PciAddress.parse(BYSTANDER_PF)) is not None


def test_pathology_rows_stay_with_the_broken_pf(root: Path) -> None:
    build_pathology(root, "duplicate_virtfn")
    got = scan_function(root, PciAddress.parse(PATHOLOGY_PF), DEFAULT)
    assert got.pf is not None and [vf.index for vf in got.pf.virtual_functions] == [0, 1, 2, 3]
    assert [s.reason for s in got.skipped] == [
        "virtfn03 -> 0000:3b:00.2 repeats VF index 3 (kept virtfn3 -> 0000:3b:00.5)",
        "virtfn4 -> 0000:3b:00.3 points to a VF already listed by virtfn1; ignored"]
    assert scan_function(root, BYSTANDER_PF, DEFAULT).skipped == ()


def test_reads_only_the_pf_and_its_vfs(root: Path) -> None:
    tree = build_scenario(root, "example")
    touched: list[tuple[str, str]] = []
    reader = SysfsReader(root, hook=lambda op, path: touched.append((op, path)))

    got = scan_function(root, PATHOLOGY_PF, DEFAULT, reader=reader)

    vfs = tree.vfs(PATHOLOGY_PF)
    assert got.pf is not None and len(got.pf.virtual_functions) == len(vfs) > 0
    devices = f"{root}/sys/bus/pci/devices"
    assert ("listdir", devices) not in touched and ("listdir", devices + "/") not in touched
    own = {PATHOLOGY_PF, *vfs.values()}
    under = {path[len(devices) + 1:].split("/", 1)[0] for _, path in touched
             if path.startswith(devices + "/")}
    assert under == own


def test_absent_pf_is_empty_not_an_error(root: Path) -> None:
    build_scenario(root, "example")
    assert scan_function(root, "0000:99:00.0", DEFAULT) == FunctionScan(None, ())
    assert scan_function(root / "nothing-here", PATHOLOGY_PF, DEFAULT) == FunctionScan(None, ())


def test_unplugged_pf_is_empty(root: Path) -> None:
    tree = pathology_base(root)
    for vf in tree.vfs(PATHOLOGY_PF).values():
        tree.remove_function(vf)
    tree.remove_function(PATHOLOGY_PF)
    assert scan_function(root, PATHOLOGY_PF, DEFAULT) == FunctionScan(None, ())
    assert scan_function(root, BYSTANDER_PF, DEFAULT).pf is not None


def test_pf_vanishing_mid_read_is_skipped_with_the_reason(root: Path) -> None:
    tree = pathology_base(root)
    fired: list[str] = []

    def hook(op: str, path: str) -> None:
        if path.endswith(f"{PATHOLOGY_PF}/sriov_numvfs") and not fired:
            fired.append(path)
            for vf in tree.vfs(PATHOLOGY_PF).values():
                tree.remove_function(vf)
            tree.remove_function(PATHOLOGY_PF)

    got = scan_function(root, PATHOLOGY_PF, DEFAULT, reader=SysfsReader(root, hook=hook))
    assert fired
    assert got == FunctionScan(None, (Skipped(PATHOLOGY_PF, "disappeared during the scan"),))


def test_vf_vanishing_mid_read_costs_that_vf(root: Path) -> None:
    tree = pathology_base(root)
    victim = tree.vfs(PATHOLOGY_PF)[3]

    def hook(op: str, path: str) -> None:
        if path.endswith(f"{victim}/device") and tree.device_path(victim).exists():
            tree.remove_function(victim)

    got = scan_function(root, PATHOLOGY_PF, DEFAULT, reader=SysfsReader(root, hook=hook))
    assert got.pf is not None and [vf.index for vf in got.pf.virtual_functions] == [0, 1, 2]
    assert got.skipped == (Skipped(victim, "VF 3 of 0000:3b:00.0 disappeared during the scan"),)


def test_vf_address_gives_nothing(root: Path) -> None:
    """A VF is read through its PF, as in the full scan; on its own it is not a PF."""
    tree = pathology_base(root)
    assert scan_function(root, tree.vfs(PATHOLOGY_PF)[0], DEFAULT) == FunctionScan(None, ())


def test_not_a_pci_address_is_refused(root: Path) -> None:
    pathology_base(root)
    with pytest.raises(InvalidPciAddress):
        scan_function(root, "../../../etc", DEFAULT)


def test_hugepages_alone_match_the_full_scan(root: Path) -> None:
    build_scenario(root, "example")
    pools = scan_hugepages(root)
    assert {p.numa_node for p in pools} == {None, 0, 1} and len(pools) == 6
    assert pools == scan(root, DEFAULT).hugepages


def test_host_apply_rereads_one_pf_or_the_pools_never_the_whole_host(root: Path) -> None:
    """What ``scan_function`` is for: ``host apply`` wired as the CLI wires it converges the
    example host without a single full scan after planning."""
    tree = build_scenario(root / "host", "example")
    config = load_host_config(Path(__file__).parents[2] / "deploy" / "host.example.yaml")
    reader = HostReader(load_config(argparse.Namespace(sysfs_root=str(tree.root), config_file=[])),
                        config)
    host = reader.read()
    first = plan(config, host, inuse.detect(reader.root, host))
    kinds = {step.kind for step in first.actions}
    assert {SET_NUMVFS, BIND_DRIVER, SET_HUGEPAGES} <= kinds
    full_scans: list[int] = []

    def full() -> Host:
        full_scans.append(1)
        return reader.read()

    with emulated_kernel(tree) as kernel:
        result = Executor(reader.root, full, lambda h: inuse.detect(reader.root, h),
                          ApplyOptions(), sleep=kernel.sleep, clock=kernel.clock,
                          scan_pf=reader.read_pf, scan_hugepages=reader.read_hugepages
                          ).apply(first)
        assert result.ok, result.error
        assert full_scans == []
        assert kernel.hugepages(0, 1048576) == 16
        host = reader.read()
        assert plan(config, host, inuse.detect(reader.root, host)).steps == ()
