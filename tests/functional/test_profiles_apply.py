"""``cyborg-smartnic profile apply`` through openstacksdk against the real Cyborg API (in
process) and the Nova stand-in (tests/functional/nova_standin.py), configured by a
clouds.yaml like an operator's. The stack tier applies the same profiles to the real Nova.

openstacksdk talks HTTP with requests; wsgi-intercept routes ``cyborg-apply.test`` to a fresh
instance of Cyborg's API app (same database and conductor as the in-process cloud) and
``nova-apply.test`` to the Nova stand-in. Each is wrapped to count requests and, for the
fault tests, to answer chosen requests with an error before or after the real app ran.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from wsgi_intercept import interceptor

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.profiles.plan import MARK_KEYS, MARK_PROFILE
from tests.functional.harness import InProcessCloud, RequestLog

EXAMPLES = Path(__file__).parent.parent.parent / "profiles"
CYBORG = "http://cyborg-apply.test/accelerator"
NOVA = "http://nova-apply.test"


@dataclass
class Fault:
    """Answer the ``nth`` matching request (1-based) with ``status``; ``after`` runs the real
    app first (the change happens, the answer is lost, as with a proxy timeout)."""

    method: str
    path_prefix: str
    status: int
    nth: int = 1
    after: bool = False
    times: int = 1
    seen: int = 0


@dataclass
class Faulty:
    faults: list[Fault] = field(default_factory=list)

    def wrap(self, app: Any) -> Any:
        def _call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
            for fault in self.faults:
                if method == fault.method and path.startswith(fault.path_prefix):
                    fault.seen += 1
                    if fault.nth <= fault.seen < fault.nth + fault.times:
                        if fault.after:
                            list(app(environ, lambda *a: None))
                        start_response(f"{fault.status} Injected", [
                            ("Content-Type", "application/json")])
                        return [b'{"error": "injected"}']
            return app(environ, start_response)

        return _call


@dataclass
class Cloud:
    inproc: InProcessCloud
    clouds_yaml: Path
    cyborg_log: RequestLog
    nova_log: RequestLog
    faults: Faulty

    def writes(self) -> list[tuple[str, str, int]]:
        return self.cyborg_log.writes() + self.nova_log.writes()

    def profiles(self) -> dict[str, dict[str, Any]]:
        data = self.inproc.cyborg_api.get("/v2/device_profiles", expect=200).json()
        return {p["name"]: p for p in data["device_profiles"]}

    def flavor_specs(self) -> dict[str, dict[str, str]]:
        return {f.name: dict(f.extra_specs) for f in self.inproc.nova.flavors.values()}


@pytest.fixture
def cloud(inproc: InProcessCloud, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    from cyborg.api import app as api_app

    cyborg_log, nova_log, faults = RequestLog(), RequestLog(), Faulty()
    cyborg_app = cyborg_log.wrap(faults.wrap(api_app.load_app()))
    nova_app = nova_log.wrap(faults.wrap(inproc.nova))
    intercepts = [interceptor.RequestsInterceptor(lambda: cyborg_app, url=CYBORG),
                  interceptor.RequestsInterceptor(lambda: nova_app, url=NOVA)]
    for item in intercepts:
        item.install_intercept()
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"lab": {
        "auth_type": "none",
        "accelerator_endpoint_override": f"{CYBORG}/v2",
        "compute_endpoint_override": f"{NOVA}/v2.1",
    }}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    try:
        yield Cloud(inproc, clouds, cyborg_log, nova_log, faults)
    finally:
        for item in intercepts:
            item.uninstall_intercept()


def _apply(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["profile", "apply", "--os-cloud", "lab", "--retry-delay", "0", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def files(tmp_path: Path) -> Path:
    target = tmp_path / "profiles"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def test_apply_creates_then_second_run_writes_nothing(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _apply(capsys, "--dry-run", str(files))
    assert code == 0
    assert "+ profile dpdk-vfio: create 1 group(s)" in out
    assert "+ flavor dpdk.large: create 8 vcpus, 8192 MiB RAM, 20 GiB disk" in out
    assert out.rstrip().endswith("Dry run: 14 change(s) not applied.")
    # the profiles with no Cyborg part are said so, not skipped silently
    assert ("  profile ovs-offload: no Cyborg device profile (its direct port's VF comes from "
            "Nova's PCI tracker); only its flavors are set") in out.splitlines()
    assert "  profile bluefield-dpu-port: no Cyborg device profile (its remote-managed port's" \
        in out
    assert cloud.writes() == []

    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0, out
    assert out.rstrip().endswith("Applied 14 change(s).")
    profiles = cloud.profiles()
    assert sorted(profiles) == ["bluefield-nic-vfs", "dpdk-vfio", "e810-comms-gtp", "sriov-port",
                                "upf-5g", "xdp-netdev"]
    assert profiles["upf-5g"]["groups"] == [
        {"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_PHYSNET_PHYSNET3": "required",
         "trait:CUSTOM_SMARTNIC_FW_COMMS": "required"},
        {"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_PHYSNET_PHYSNET4": "required"}]
    assert profiles["xdp-netdev"]["description"].endswith("[managed-by: cyborg-smartnic]")
    specs = cloud.flavor_specs()
    assert sorted(specs) == ["dpdk.large", "gtp.medium", "upf.xlarge", "xdp.medium"]
    assert specs["upf.xlarge"] == {
        "accel:device_profile": "upf-5g", "group_policy": "isolate",
        "hw:cpu_policy": "dedicated", "hw:mem_page_size": "1GB", "hw:numa_nodes": "1",
        MARK_PROFILE: "upf-5g",
        MARK_KEYS: "accel:device_profile,group_policy,hw:cpu_policy,hw:mem_page_size,"
                   "hw:numa_nodes"}
    flavor = next(f for f in cloud.inproc.nova.flavors.values() if f.name == "dpdk.large")
    assert (flavor.vcpus, flavor.ram, flavor.disk) == (8, 8192, 20)
    assert sorted(m for m, _, _ in cloud.writes()) == ["POST"] * 14

    mark = (cloud.cyborg_log.mark(), cloud.nova_log.mark())
    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0
    assert out.rstrip().endswith("Nothing to change.")
    assert "= profile dpdk-vfio: unchanged" in out and "= flavor dpdk.large: unchanged" in out
    assert cloud.cyborg_log.writes(mark[0]) == [] and cloud.nova_log.writes(mark[1]) == []


def test_change_replaces_and_unsets_only_what_it_set(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _apply(capsys, "--yes", str(files))[0] == 0
    old_uuid = cloud.profiles()["dpdk-vfio"]["uuid"]
    flavor = next(f for f in cloud.inproc.nova.flavors.values() if f.name == "dpdk.large")
    flavor.extra_specs["hw:watchdog_action"] = "reset"  # an operator's own key
    dpdk = files / "dpdk.yaml"
    dpdk.write_text(dpdk.read_text().replace("vf_count: 2", "vf_count: 3")
                    .replace("  numa_nodes: 1\n", ""))
    mark = cloud.cyborg_log.mark()
    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0, out
    assert "~ profile dpdk-vfio: replace groups[0] resources:CUSTOM_SMARTNIC_VF: 2 -> 3" in out
    assert "~ flavor dpdk.large: unset hw:numa_nodes" in out
    new = cloud.profiles()["dpdk-vfio"]
    assert new["uuid"] != old_uuid
    assert new["groups"][0]["resources:CUSTOM_SMARTNIC_VF"] == "3"
    assert [(m, p.split("/")[2]) for m, p, _ in cloud.cyborg_log.writes(mark)] == [
        ("DELETE", "device_profiles"), ("POST", "device_profiles")]
    specs = cloud.flavor_specs()["dpdk.large"]
    assert "hw:numa_nodes" not in specs
    assert specs["hw:watchdog_action"] == "reset"
    assert specs[MARK_KEYS] == ("accel:device_profile,hw:cpu_policy,hw:cpu_thread_policy,"
                                "hw:emulator_threads_policy,hw:mem_page_size")


def test_profile_in_use_is_not_replaced(cloud: Cloud, files: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _apply(capsys, "--yes", str(files))[0] == 0
    arqs = cloud.inproc.create_arqs("dpdk-vfio")
    assert len(arqs) == 2
    dpdk = files / "dpdk.yaml"
    dpdk.write_text(dpdk.read_text().replace("vf_count: 2", "vf_count: 1"))
    mark = (cloud.cyborg_log.mark(), cloud.nova_log.mark())
    code, out, err = _apply(capsys, "--yes", str(files))
    assert code == 1
    assert ("! profile dpdk-vfio: changed, but 2 accelerator request(s) use it and Cyborg "
            "cannot replace a profile in use; give the changed profile a new name (and point "
            "its flavors at it), or delete those instances, then apply again") in out
    assert err.strip() == ("cyborg-smartnic: error: 1 conflict(s) (lines starting with '!'); "
                           "nothing was changed")
    assert cloud.cyborg_log.writes(mark[0]) == [] and cloud.nova_log.writes(mark[1]) == []
    assert cloud.profiles()["dpdk-vfio"]["groups"][0]["resources:CUSTOM_SMARTNIC_VF"] == "2"


def test_prune_deletes_only_managed_profiles(cloud: Cloud, files: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _apply(capsys, "--yes", str(files))[0] == 0
    cloud.inproc.create_device_profile("by-hand", [{"resources:CUSTOM_SMARTNIC_VF": "1"}],
                                      description="someone else's")
    (files / "xdp.yaml").unlink()
    mark = cloud.cyborg_log.mark()
    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0
    assert ("  profile xdp-netdev: managed by cyborg-smartnic but in no file given (--prune "
            "deletes it)") in out
    assert cloud.cyborg_log.writes(mark) == []
    code, out, _ = _apply(capsys, "--yes", "--prune", str(files))
    assert code == 0, out
    assert "- profile xdp-netdev: prune (not in any file given)" in out
    assert "~ flavor xdp.medium: unset accel:device_profile, cyborg_smartnic:managed_keys, " \
           "cyborg_smartnic:profile (detached from xdp-netdev)" in out
    assert "xdp-netdev" not in cloud.profiles()
    assert "by-hand" in cloud.profiles()
    assert cloud.flavor_specs()["xdp.medium"] == {}


def test_the_old_accelerator_direct_ovs_offload_profile_is_pruned(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before it moved to Nova's PCI tracker, ovs-offload was a Cyborg device profile (that
    port could never be offloaded): a cloud that still has it sees it as a leftover."""
    old = [{"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_PHYSNET_PHYSNET1": "required",
            "trait:CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV": "required"}]
    cloud.inproc.create_device_profile(
        "ovs-offload", old, description="One VF on a switchdev eswitch for OVS hardware "
                                        "offload (physnet1) [managed-by: cyborg-smartnic]")
    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0, out
    assert ("  profile ovs-offload: managed by cyborg-smartnic but in no file given (--prune "
            "deletes it)") in out
    assert "ovs-offload" in cloud.profiles()
    code, out, _ = _apply(capsys, "--yes", "--prune", str(files))
    assert code == 0, out
    assert "- profile ovs-offload: prune (not in any file given)" in out
    assert "ovs-offload" not in cloud.profiles()


def test_foreign_profile_with_the_same_name_is_left_alone(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.inproc.create_device_profile("xdp-netdev", [{"resources:CUSTOM_SMARTNIC_VF": "1"}])
    code, out, _ = _apply(capsys, "--yes", str(files / "xdp.yaml"))
    assert code == 1
    assert "! profile xdp-netdev: a device profile with this name exists and was not created " \
           "by cyborg-smartnic" in out
    assert cloud.writes() == []


def test_transient_faults_are_retried_without_duplicates(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.faults.faults = [
        Fault("POST", "/v2/device_profiles", 503, nth=1),  # refused before Cyborg saw it
        Fault("POST", "/v2/device_profiles", 504, nth=3, after=True),  # made, answer lost
        Fault("POST", "/v2.1/flavors", 409, nth=1),  # Nova busy
    ]
    code, out, err = _apply(capsys, "--yes", str(files))
    assert code == 0, (out, err)
    assert sorted(cloud.profiles()) == ["bluefield-nic-vfs", "dpdk-vfio", "e810-comms-gtp",
                                        "sriov-port", "upf-5g", "xdp-netdev"]
    posts = [p for m, p, _ in cloud.cyborg_log.writes() if m == "POST"]
    assert len(posts) == 7  # 6 profiles + 1 retry of the refused one, none for the lost answer
    assert len([f for f in cloud.inproc.nova.flavors.values()]) == 4
    mark = (cloud.cyborg_log.mark(), cloud.nova_log.mark())
    assert _apply(capsys, "--yes", str(files))[1].rstrip().endswith("Nothing to change.")
    assert cloud.cyborg_log.writes(mark[0]) == [] and cloud.nova_log.writes(mark[1]) == []


def test_interrupted_apply_is_finished_by_a_rerun(
        cloud: Cloud, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cloud.faults.faults = [Fault("POST", "/v2.1/flavors/", 500, nth=2, times=10)]
    code, out, err = _apply(capsys, "--yes", "--attempts", "2", str(files))
    assert code == 1
    assert err.startswith("cyborg-smartnic: error: set extra specs on flavor ")
    assert err.rstrip().endswith("change(s) made; run apply again to finish)")
    assert len(cloud.profiles()) == 6  # every profile with a Cyborg part
    cloud.faults.faults = []
    code, out, _ = _apply(capsys, "--yes", str(files))
    assert code == 0, out
    assert "+ profile" not in out  # the profiles were done the first time
    assert all(specs.get(MARK_PROFILE) for specs in cloud.flavor_specs().values())
    mark = (cloud.cyborg_log.mark(), cloud.nova_log.mark())
    assert _apply(capsys, "--yes", str(files))[1].rstrip().endswith("Nothing to change.")
    assert cloud.cyborg_log.writes(mark[0]) == [] and cloud.nova_log.writes(mark[1]) == []


def test_without_yes_on_a_pipe_nothing_changes(cloud: Cloud, files: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out, err = _apply(capsys, str(files / "xdp.yaml"))
    assert code == 1
    assert "+ profile xdp-netdev: create 1 group(s)" in out
    assert "not confirmed; nothing was changed (use --yes" in err
    assert cloud.writes() == []


def test_invalid_files_stop_before_any_request(cloud: Cloud, files: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (files / "zz-bad.yaml").write_text("name: bad\ngroups:\n  - vf_count: 1\n    physnt: x\n")
    code, out, err = _apply(capsys, "--yes", str(files))
    assert code == 1 and out == ""
    assert err.splitlines()[0] == (f"{files / 'zz-bad.yaml'}:4:5: groups[0].physnt: unknown "
                                   "key 'physnt'; did you mean 'physnet'?")
    assert cloud.cyborg_log.since() == [] and cloud.nova_log.since() == []
