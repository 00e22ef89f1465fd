"""profile check: matching compiled profiles against the driver's report of a generated host."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery.model import HugepagePool
from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.pools import ReportConfig
from cyborg_smartnic.profiles.check import (
    NOVA_PCI_NOTE,
    PoolOffer,
    check_all,
    check_profile,
    offers_from_report,
)
from cyborg_smartnic.profiles.compiler import GroupRequirement, HostRequirements, compile_all
from cyborg_smartnic.profiles.loader import load_profiles
from cyborg_smartnic.report import plan_report
from cyborg_smartnic.traits import physnet_trait

EXAMPLES = Path(__file__).parent.parent.parent / "profiles"
HOST = "compute-0.example.org"


def _host(tmp_path: Path, scenario: str) -> tuple[list[PoolOffer], tuple[HugepagePool, ...]]:
    tree = build_scenario(tmp_path, scenario)
    host = scan(tmp_path, ScanOptions(physnets=parse_physnet_mappings(tree.physnet_mappings())))
    devices = plan_report(host, ReportConfig(hostname=HOST))
    return offers_from_report(devices), host.hugepages


def test_example_host_serves_all_but_the_dpu_port(tmp_path: Path) -> None:
    offers, hugepages = _host(tmp_path, "example")
    compiled = compile_all(load_profiles([EXAMPLES]))
    verdicts = {v.profile: v for v in check_all([c.host for c in compiled], offers, hugepages)}
    assert {name: v.servable for name, v in verdicts.items()} == {
        "bluefield-dpu-port": None, "bluefield-nic-vfs": False, "dpdk-vfio": True,
        "e810-comms-gtp": True,
        "ovs-offload": None, "sriov-port": True, "upf-5g": True, "xdp-netdev": True}
    pool = f"{HOST}_0000:"
    assert verdicts["sriov-port"].assignment == (pool + "3b:00.0",)
    # Nova's PCI tracker picks these VFs: Cyborg's pools are not asked, and check says so
    assert verdicts["ovs-offload"].problems == (NOVA_PCI_NOTE,)
    assert verdicts["ovs-offload"].path == "nova-pci"
    assert verdicts["dpdk-vfio"].assignment == (pool + "5e:00.1",)
    assert verdicts["upf-5g"].assignment == (pool + "5e:00.0", pool + "5e:00.1")
    assert verdicts["xdp-netdev"].assignment == (pool + "18:00.0",)
    assert verdicts["bluefield-dpu-port"].problems == (NOVA_PCI_NOTE,)


def test_profile_traits_are_a_subset_of_the_report(tmp_path: Path) -> None:
    """The names a profile asks for are exactly the names the driver reports."""
    offers, hugepages = _host(tmp_path, "example")
    by_name = {o.name: o for o in offers}
    compiled = compile_all(load_profiles([EXAMPLES]))
    checked = 0
    for profile in compiled:
        verdict = check_profile(profile.host, offers, hugepages)
        if not verdict.servable or profile.device_profile is None:
            continue
        for group, dp_group, pool in zip(profile.host.groups,
                                         profile.device_profile["groups"],
                                         verdict.assignment, strict=True):
            assert pool is not None
            asked = {k.split(":", 1)[1] for k, v in dp_group.items() if v == "required"}
            assert asked == set(group.required_traits)
            assert asked <= by_name[pool].traits
            assert f"resources:{by_name[pool].resource_class}" in dp_group
            checked += 1
    assert checked == 6  # 5 servable Cyborg profiles (upf-5g has 2 groups)


def test_dpu_host_serves_the_dpu_port(tmp_path: Path) -> None:
    build_scenario(tmp_path, "bluefield2_dpu")
    mappings = ["physnet6:" + pf for pf in ("0000:af:00.0",)]
    host = scan(tmp_path, ScanOptions(physnets=parse_physnet_mappings(mappings)))
    offers = offers_from_report(plan_report(host, ReportConfig(HOST)))
    compiled = {c.name: c for c in compile_all(load_profiles([EXAMPLES]))}
    # the DPU's port is remote-managed: Nova's PCI tracker picks its VF, not Cyborg
    verdict = check_profile(compiled["bluefield-dpu-port"].host, offers, host.hugepages)
    assert verdict.servable is None and verdict.problems == (NOVA_PCI_NOTE,)
    # a Cyborg port on the DPU's physnet is served by its pool
    sriov = compiled["sriov-port"]
    moved = dataclasses.replace(sriov.host, groups=tuple(
        dataclasses.replace(g, required_traits=(physnet_trait("physnet6"),))
        for g in sriov.host.groups))
    assert check_profile(moved, offers, host.hugepages).assignment == (
        f"{HOST}_0000:af:00.0",)
    # sriov-port asks for physnet1, which this host does not map at all.
    plain = check_profile(sriov.host, offers, host.hugepages)
    assert not plain.servable
    assert f"no pool has {physnet_trait('physnet1')}" in " ".join(plain.problems)


def _group(count: int = 1, rc: str = "CUSTOM_SMARTNIC_VF", required: tuple[str, ...] = (),
           forbidden: tuple[str, ...] = ()) -> GroupRequirement:
    return GroupRequirement(vf_count=count, resource_class=rc, required_traits=required,
                            forbidden_traits=forbidden)


def _offer(name: str, capacity: int, *found: str, rc: str = "CUSTOM_SMARTNIC_VF") -> PoolOffer:
    return PoolOffer(name=name, resource_class=rc, traits=frozenset(found), capacity=capacity)


def test_capacity_shortfall_names_the_best_pool() -> None:
    req = HostRequirements(profile="p", groups=(_group(6, required=("CUSTOM_A",)),))
    verdict = check_profile(req, [_offer("a", 4, "CUSTOM_A"), _offer("b", 8, "CUSTOM_B")])
    assert verdict.problems == (
        "group 0 (6 x CUSTOM_SMARTNIC_VF): not enough VFs: the largest matching pool a has "
        "4, the group needs 6",)


def test_traits_present_but_never_together() -> None:
    req = HostRequirements(profile="p", groups=(_group(required=("CUSTOM_A", "CUSTOM_B")),))
    verdict = check_profile(req, [_offer("a", 4, "CUSTOM_A"), _offer("b", 4, "CUSTOM_B")])
    assert verdict.problems == (
        "group 0 (1 x CUSTOM_SMARTNIC_VF): no single pool has all required traits; closest a "
        "lacks CUSTOM_B",)


def test_forbidden_trait_everywhere() -> None:
    req = HostRequirements(profile="p", groups=(_group(forbidden=("CUSTOM_X",)),))
    verdict = check_profile(req, [_offer("a", 4, "CUSTOM_X")])
    assert verdict.problems == (
        "group 0 (1 x CUSTOM_SMARTNIC_VF): every pool with the required traits has forbidden "
        "CUSTOM_X",)


def test_resource_class_missing() -> None:
    req = HostRequirements(profile="p", groups=(_group(rc="CUSTOM_OTHER"),))
    assert check_profile(req, [_offer("a", 4)]).problems == (
        "group 0 (1 x CUSTOM_OTHER): no pool has resource class CUSTOM_OTHER (host has: "
        "CUSTOM_SMARTNIC_VF)",)
    assert check_profile(req, []).problems == (
        "group 0 (1 x CUSTOM_OTHER): no pool has resource class CUSTOM_OTHER (host has: "
        "no VF pool at all)",)


def test_group_policy_isolate_versus_none() -> None:
    groups = (_group(2), _group(2))
    one_pool = [_offer("a", 4)]
    isolate = check_profile(HostRequirements("p", groups, group_policy="isolate"), one_pool)
    assert not isolate.servable
    assert isolate.problems == (
        "groups: each group fits some pool, but not all at once, each from a different pool "
        "(4 VFs in total from pools a)",)
    shared = check_profile(HostRequirements("p", groups, group_policy="none"), one_pool)
    assert shared.servable and shared.assignment == ("a", "a")
    too_many = check_profile(HostRequirements("p", (_group(3), _group(2)), group_policy="none"),
                             one_pool)
    assert not too_many.servable
    two_pools = check_profile(HostRequirements("p", groups), [_offer("a", 2), _offer("b", 2)])
    assert two_pools.assignment == ("a", "b")


def _pages(node: int | None, size: int, total: int, free: int) -> HugepagePool:
    return HugepagePool(numa_node=node, size_kb=size, total=total, free=free, surplus=0)


def test_hugepages() -> None:
    group = (_group(),)
    offers = [_offer("a", 1)]
    pages = (_pages(0, 1048576, 8, 8), _pages(1, 1048576, 8, 6), _pages(0, 2048, 512, 512))
    fits = HostRequirements("p", group, hugepage_size_kb=1048576, hugepages_per_instance=8,
                            numa_nodes=1)
    assert check_profile(fits, offers, pages).servable
    split = HostRequirements("p", group, hugepage_size_kb=1048576, hugepages_per_instance=14,
                             numa_nodes=2)
    assert check_profile(split, offers, pages).problems == (
        "hugepages: one instance needs 7 free 1G page(s) on each of 2 NUMA node(s); free per "
        "node: 8, 6",)
    any_node = HostRequirements("p", group, hugepage_size_kb=1048576, hugepages_per_instance=20)
    assert check_profile(any_node, offers, pages).problems == (
        "hugepages: 14 free 1G page(s), one instance needs 20",)
    missing = HostRequirements("p", group, hugepage_size_kb=16384)
    assert check_profile(missing, offers, pages).problems == (
        "hugepages: no 16M pages reserved on this host (reserved sizes: 2M, 1G)",)
    global_only = (_pages(None, 2048, 100, 100),)
    assert check_profile(HostRequirements("p", group, hugepage_size_kb=2048,
                                          hugepages_per_instance=100), offers,
                         global_only).servable


def test_cli_check_example_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "check", "--example-host", "-f", "json", str(EXAMPLES)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["format"] == 1
    data = document["profiles"]
    assert all(None not in d["pools"] for d in data)  # no null pools
    assert [(d["profile"], d["path"], d["servable"], bool(d["pools"])) for d in data] == [
        ("bluefield-dpu-port", "nova-pci", None, False),
        ("bluefield-nic-vfs", "cyborg", False, False), ("dpdk-vfio", "cyborg", True, True),
        ("e810-comms-gtp", "cyborg", True, True), ("ovs-offload", "nova-pci", None, False),
        ("sriov-port", "cyborg", True, True), ("upf-5g", "cyborg", True, True),
        ("xdp-netdev", "cyborg", True, True)]
    # --require-all: the Nova-PCI profiles are not Cyborg's to serve; the BlueField one is
    assert main(["profile", "check", "--example-host", "--require-all", str(EXAMPLES)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("5 of 6 profile(s) can be served by this host's Cyborg pools (2 take "
                          "their VF from Nova's PCI tracker)\n")
    assert "| ovs-offload        | n/a      |" in out
    assert err.strip().splitlines()[-1] == ("cyborg-smartnic: error: this host cannot serve 1 "
                                            "profile(s): bluefield-nic-vfs")


def test_cli_check_sysfs_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = build_scenario(tmp_path / "host", "x710_legacy")
    conf = tmp_path / "cyborg.conf"
    conf.write_text("[smartnic]\nhostname = h1\nphysical_device_mappings = "
                    + ",".join(tree.physnet_mappings()) + "\n")
    assert main(["profile", "check", "--sysfs-root", str(tmp_path / "host"), "--config-file",
                 str(conf), str(EXAMPLES / "xdp.yaml"), str(EXAMPLES / "ovs-offload.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 of 1 profile(s) can be served by this host's Cyborg pools (1 take "
                          "their VF from Nova's PCI tracker)\n")
    assert "h1_0000:18:00.0" in out
    assert "its VF comes from Nova's PCI tracker" in out
    # a Cyborg profile asking for switchdev on this legacy X710 is told what is missing
    offload = tmp_path / "sw.yaml"
    offload.write_text("name: sw\ngroups:\n  - vf_count: 1\n    eswitch_mode: switchdev\n")
    assert main(["profile", "check", "--sysfs-root", str(tmp_path / "host"), "--config-file",
                 str(conf), str(offload)]) == 0
    assert "no pool has CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV" in capsys.readouterr().out
