"""Example profiles against the real Cyborg API and Placement (in process).

Every example profile with a Cyborg part is created through Cyborg's API and read back
unchanged; Placement's allocation candidates for its groups are non-empty exactly when
``profile check`` (run on the same generated host, offline) says the host can serve it, on the
same pools. Profiles whose port takes its VF from Nova's PCI tracker (OVS offload, DPU) have no
Cyborg part: ``create_cyborg_parts`` says which they are, and the tests assert Cyborg never
gets a device profile for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.pools import ReportConfig
from cyborg_smartnic.profiles.check import check_profile, offers_from_report
from cyborg_smartnic.profiles.compiler import CompiledProfile, compile_all
from cyborg_smartnic.profiles.loader import load_profiles
from cyborg_smartnic.report import plan_report
from tests.functional.harness import COMPUTE_HOST, InProcessCloud, request_groups_query

EXAMPLES = Path(__file__).parent.parent.parent / "profiles"
NOVA_PCI = {"ovs-offload": "direct", "bluefield-dpu-port": "remote-managed"}


def create_cyborg_parts(inproc: InProcessCloud,
                        compiled: list[CompiledProfile]) -> list[CompiledProfile]:
    """Create every device profile; return the profiles that have none (asserting why)."""
    without = []
    for profile in compiled:
        body = profile.device_profile
        if body is None:
            assert profile.port is not None and profile.path == "nova-pci", profile.name
            assert profile.port.vnic_type == NOVA_PCI[profile.name]
            without.append(profile)
            continue
        created = inproc.create_device_profile(body["name"], [dict(g) for g in body["groups"]],
                                              description=body["description"])
        assert created["name"] == profile.name
    listed = inproc.cyborg_api.get("/v2/device_profiles", expect=200).json()["device_profiles"]
    assert not {p["name"] for p in listed} & {p.name for p in without}
    assert sorted(p.name for p in without) == sorted(NOVA_PCI)
    return without


def _started(make_inproc: Callable[..., InProcessCloud], tmp_path: Path, scenario: str,
             mappings: list[str] | None = None) -> tuple[InProcessCloud, Path, list[str]]:
    root = tmp_path / "host"
    tree = build_scenario(root, scenario)
    physnets = mappings if mappings is not None else tree.physnet_mappings()
    inproc = make_inproc(sysfs_root=root,
                       smartnic={"physical_device_mappings": ",".join(physnets)})
    inproc.run_agent_cycle()
    return inproc, root, physnets


def _offline_verdicts(root: Path, physnets: list[str],
                      compiled: list[CompiledProfile]) -> dict[str, tuple[str | None, ...]]:
    """``profile check`` on the same tree: servable profile -> pools chosen."""
    host = scan(root, ScanOptions(physnets=parse_physnet_mappings(physnets)))
    offers = offers_from_report(plan_report(host, ReportConfig(COMPUTE_HOST)))
    verdicts = {}
    for profile in compiled:
        verdict = check_profile(profile.host, offers, host.hugepages)
        if verdict.servable:
            verdicts[profile.name] = verdict.assignment
        elif profile.device_profile is None:
            assert verdict.servable is None  # not Cyborg's to judge
    return verdicts


def _placement_matches(inproc: InProcessCloud,
                       compiled: list[CompiledProfile]) -> dict[str, list[tuple[str, ...]]]:
    """Profile -> every distinct set of pools Placement offers for its groups."""
    names = {view["uuid"]: name for name, view in inproc.provider_view().items()}
    found = {}
    for profile in compiled:
        if profile.device_profile is None:
            continue  # nothing in Cyborg or Placement to ask (create_cyborg_parts)
        body = inproc.cyborg_api.get(f"/v2/device_profiles?name={profile.name}",
                                    expect=200).json()["device_profiles"]
        (stored,) = [p for p in body if p["name"] == profile.name]
        response = inproc.placement.get(
            f"/allocation_candidates?{request_groups_query(stored['groups'])}", expect=(200, 400))
        if response.status_code == 400:
            # Placement refuses traits nobody ever reported: nothing can match (Nova would
            # answer "no valid host" the same way).
            assert "No such trait(s)" in response.text
            continue
        candidates = response.json()
        options = set()
        for request in candidates["allocation_requests"]:
            options.add(tuple(sorted(names[rp] for rp in request["allocations"]
                                     if rp in names)))
        if options:
            found[profile.name] = sorted(options)
    return found


def test_examples_through_the_api_match_what_check_says(
        make_inproc: Callable[..., InProcessCloud], tmp_path: Path) -> None:
    inproc, root, physnets = _started(make_inproc, tmp_path, "example")
    compiled = compile_all(load_profiles([EXAMPLES]))
    create_cyborg_parts(inproc, compiled)
    listed = {p["name"]: p for p in
              inproc.cyborg_api.get("/v2/device_profiles", expect=200).json()["device_profiles"]}
    for profile in compiled:
        if profile.device_profile is None:
            continue
        stored = listed[profile.name]
        assert stored["groups"] == [dict(g) for g in profile.device_profile["groups"]]
        assert stored["description"] == profile.device_profile["description"]

    matches = _placement_matches(inproc, compiled)
    offline = _offline_verdicts(root, physnets, compiled)
    assert set(matches) == set(offline) == {
        "dpdk-vfio", "e810-comms-gtp", "sriov-port", "upf-5g", "xdp-netdev"}
    # the port profile's VF is on the network's physnet: only physnet1's pool is offered
    assert matches["sriov-port"] == [(f"{COMPUTE_HOST}_0000:3b:00.0",)]
    for name, pools in offline.items():
        assert tuple(sorted(p for p in pools if p)) in matches[name], name
    # Each upf-5g group lands on its own E810 port (isolate, two physnets).
    assert matches["upf-5g"] == [(f"{COMPUTE_HOST}_0000:5e:00.0",
                                  f"{COMPUTE_HOST}_0000:5e:00.1")]


def test_a_host_without_the_hardware_matches_nothing_it_lacks(
        make_inproc: Callable[..., InProcessCloud], tmp_path: Path) -> None:
    inproc, root, physnets = _started(make_inproc, tmp_path, "bluefield2_dpu",
                                     mappings=["physnet6:0000:af:00.0"])
    compiled = compile_all(load_profiles([EXAMPLES]))
    create_cyborg_parts(inproc, compiled)
    matches = _placement_matches(inproc, compiled)
    offline = _offline_verdicts(root, physnets, compiled)
    # the DPU's own port is remote-managed (Nova's PCI tracker); no Cyborg profile here asks
    # for physnet6, so nothing matches the BlueField's pool
    assert set(matches) == set(offline) == set()
