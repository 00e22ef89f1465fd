"""profile apply: the pure plan (create/replace/unchanged/prune/flavor specs) and retries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc

from cyborg_smartnic.apiclient import RetryPolicy, call, is_transient
from cyborg_smartnic.profiles.cloud import CloudError, CloudState, RemoteFlavor, RemoteProfile
from cyborg_smartnic.profiles.compiler import CompiledProfile, compile_all
from cyborg_smartnic.profiles.loader import load_profiles
from cyborg_smartnic.profiles.plan import MARK_KEYS, MARK_PROFILE, make_plan, managed_specs

PROFILES = """\
- name: alpha
  description: first
  groups: [{vf_count: 1, physnet: physnet1}]
  instance: {cpu_policy: dedicated, hugepages: 1G}
  flavors:
    - {name: alpha.small, vcpus: 2, ram: 2048, disk: 10}
    - shared.flavor
- name: beta
  groups: [{vf_count: 2}]
"""


@pytest.fixture
def compiled(tmp_path: Path) -> list[CompiledProfile]:
    path = tmp_path / "p.yaml"
    path.write_text(PROFILES)
    return compile_all(load_profiles([path]))


def _remote(profile: CompiledProfile, uuid: str = "u-1") -> RemoteProfile:
    body = profile.device_profile
    return RemoteProfile(uuid=uuid, name=profile.name, description=body["description"],
                         groups=tuple(dict(g) for g in body["groups"]))


def _applied(compiled: list[CompiledProfile]) -> CloudState:
    """The state a complete apply leaves behind."""
    profiles = {p.name: _remote(p, f"u-{p.name}") for p in compiled}
    flavors = {}
    for p in compiled:
        for f in p.flavors:
            flavors[f.name] = RemoteFlavor(id=f"id-{f.name}", name=f.name, vcpus=f.vcpus or 4,
                                           ram_mb=f.ram_mb or 4096, disk_gb=f.disk_gb or 20,
                                           extra_specs=managed_specs(p))
    return CloudState(profiles=profiles, flavors=flavors, profile_users={})


def _empty(**flavors: RemoteFlavor) -> CloudState:
    return CloudState(profiles={}, flavors=flavors, profile_users={})


def test_fresh_cloud_creates_everything(compiled: list[CompiledProfile]) -> None:
    shared = RemoteFlavor(id="f-s", name="shared.flavor", vcpus=4, ram_mb=4096, disk_gb=20,
                          extra_specs={"hw:watchdog_action": "reset"})
    plan = make_plan(compiled, _empty(**{"shared.flavor": shared}))
    assert plan.conflicts == ()
    assert [(s.kind, s.target) for s in plan.steps] == [
        ("create-profile", "alpha"), ("create-profile", "beta"),
        ("create-flavor", "alpha.small"), ("set-specs", "alpha.small"),
        ("set-specs", "shared.flavor")]
    specs = plan.steps[-1].specs
    assert specs == {
        "accel:device_profile": "alpha", "hw:cpu_policy": "dedicated",
        "hw:mem_page_size": "1GB", MARK_PROFILE: "alpha",
        MARK_KEYS: "accel:device_profile,hw:cpu_policy,hw:mem_page_size"}
    assert plan.steps[0].body == compiled[0].device_profile
    assert plan.lines()[0] == "+ profile alpha: create 1 group(s)"


def test_second_plan_is_empty(compiled: list[CompiledProfile]) -> None:
    plan = make_plan(compiled, _applied(compiled))
    assert plan.steps == () and plan.conflicts == ()
    assert not plan.has_changes
    assert plan.unchanged == ("profile alpha", "profile beta", "flavor alpha.small",
                              "flavor shared.flavor")


def test_changed_profile_is_replaced(compiled: list[CompiledProfile]) -> None:
    state = _applied(compiled)
    old = replace(state.profiles["beta"], groups=({"resources:CUSTOM_SMARTNIC_VF": "1"},))
    state = replace(state, profiles={**state.profiles, "beta": old})
    plan = make_plan(compiled, state)
    assert [(s.kind, s.target, s.uuid) for s in plan.steps] == [
        ("replace-profile", "beta", "u-beta")]
    assert plan.steps[0].line() == \
        "~ profile beta: replace groups[0] resources:CUSTOM_SMARTNIC_VF: 1 -> 2"


def test_a_replaced_profile_shows_old_and_new_values(compiled: list[CompiledProfile]) -> None:
    state = _applied(compiled)
    old = replace(state.profiles["beta"], description=state.profiles["beta"].description + " v0",
                  groups=({"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_GONE": "required"},
                          {"resources:CUSTOM_OTHER": "1"}))
    state = replace(state, profiles={**state.profiles, "beta": old})
    (step,) = make_plan(compiled, state).steps
    assert step.detail == (
        "2 -> 1 groups; groups[0] resources:CUSTOM_SMARTNIC_VF: 1 -> 2, "
        "-trait:CUSTOM_GONE=required; groups[1] -resources:CUSTOM_OTHER=1; "
        f"description: {old.description!r} -> {compiled[1].device_profile['description']!r}")


def test_profile_in_use_blocks_replace_with_a_way_forward(
        compiled: list[CompiledProfile]) -> None:
    state = _applied(compiled)
    old = replace(state.profiles["beta"], description="old [managed-by: cyborg-smartnic]")
    state = replace(state, profiles={**state.profiles, "beta": old},
                    profile_users={"beta": (("arq-1", "inst-1"), ("arq-2", "inst-1"))})
    plan = make_plan(compiled, state)
    assert plan.steps == ()
    assert plan.conflicts == (
        "profile beta: changed, but 2 accelerator request(s) of instance(s) inst-1 use it and "
        "Cyborg cannot replace a profile in use; give the changed profile a new name (and "
        "point its flavors at it), or delete those instances, then apply again",)


def test_foreign_profile_with_same_name_is_a_conflict(compiled: list[CompiledProfile]) -> None:
    state = _applied(compiled)
    foreign = replace(state.profiles["beta"], description="made by hand")
    state = replace(state, profiles={**state.profiles, "beta": foreign})
    (conflict,) = make_plan(compiled, state).conflicts
    assert conflict.startswith("profile beta: a device profile with this name exists and was "
                               "not created by cyborg-smartnic")


def test_prune_only_managed_and_only_when_asked(compiled: list[CompiledProfile]) -> None:
    state = _applied(compiled)
    extra = {
        "old": RemoteProfile("u-old", "old", "x [managed-by: cyborg-smartnic]", ()),
        "hand": RemoteProfile("u-hand", "hand", "made by hand", ()),
    }
    orphan = RemoteFlavor("id-o", "old.flavor", 1, 512, 1, {
        "accel:device_profile": "old", MARK_PROFILE: "old", MARK_KEYS: "accel:device_profile",
        "hw:foreign": "keep"})
    state = replace(state, profiles={**state.profiles, **extra},
                    flavors={**state.flavors, "old.flavor": orphan})
    keep = make_plan(compiled, state)
    assert keep.steps == () and keep.leftovers == ("old",)
    pruned = make_plan(compiled, state, prune=True)
    assert [(s.kind, s.target, s.keys) for s in pruned.steps] == [
        ("unset-specs", "old.flavor", ("accel:device_profile", MARK_KEYS, MARK_PROFILE)),
        ("delete-profile", "old", ())]
    busy = replace(state, profile_users={"old": (("arq", None),)})
    plan = make_plan(compiled, busy, prune=True)
    assert plan.conflicts == ("profile old: to be pruned, but 1 accelerator request(s) use it; "
                              "delete those instances first, or keep the profile in your "
                              "files",)


def test_flavor_spec_changes_touch_only_managed_keys(
        compiled: list[CompiledProfile], tmp_path: Path) -> None:
    state = _applied(compiled)
    small = state.flavors["alpha.small"]
    state = replace(state, flavors={**state.flavors, "alpha.small": replace(
        small, extra_specs={**small.extra_specs, "hw:foreign": "1"})})
    path = tmp_path / "changed.yaml"
    path.write_text(PROFILES.replace("cpu_policy: dedicated, hugepages: 1G",
                                     "hugepages: 2M, numa_nodes: 1"))
    plan = make_plan(compile_all(load_profiles([path])), state)
    steps = {(s.kind, s.target): s for s in plan.steps}
    assert set(steps) == {("set-specs", "alpha.small"), ("unset-specs", "alpha.small"),
                          ("set-specs", "shared.flavor"), ("unset-specs", "shared.flavor")}
    assert steps["set-specs", "alpha.small"].specs == {
        "hw:mem_page_size": "2MB", "hw:numa_nodes": "1",
        MARK_KEYS: "accel:device_profile,hw:mem_page_size,hw:numa_nodes"}
    assert steps["unset-specs", "alpha.small"].keys == ("hw:cpu_policy",)


def test_flavor_dropped_from_profile_is_cleaned(compiled: list[CompiledProfile],
                                                tmp_path: Path) -> None:
    state = _applied(compiled)
    path = tmp_path / "dropped.yaml"
    path.write_text(PROFILES.replace("    - shared.flavor\n", ""))
    plan = make_plan(compile_all(load_profiles([path])), state)
    assert [(s.kind, s.target, s.keys) for s in plan.steps] == [
        ("unset-specs", "shared.flavor", ("accel:device_profile", MARK_KEYS, MARK_PROFILE,
                                          "hw:cpu_policy", "hw:mem_page_size"))]
    assert plan.steps[0].line().endswith("(detached from alpha)")


def test_flavor_conflicts(compiled: list[CompiledProfile]) -> None:
    wrong = RemoteFlavor("id", "alpha.small", 4, 2048, 10, {})
    plan = make_plan(compiled, _empty(**{"alpha.small": wrong}))
    assert plan.conflicts == (
        "flavor alpha.small (profile alpha): exists with 4 vcpus, 2048 MiB RAM, 10 GiB disk, "
        "the profile says 2/2048/10; Nova flavors cannot change: use a new flavor name, or "
        "list the flavor by name only to adopt it",
        "flavor shared.flavor (profile alpha): does not exist; give vcpus and ram in the "
        "profile to create it")


# -- retries ------------------------------------------------------------------------------------
def _policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=4, first_delay=0.5, factor=2.0, sleep=sleeps.append)


def test_transient_errors_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    answers = [sdk_exc.HttpException(message="busy", http_status=503),
               ksa_exc.ConnectTimeout("slow"), "ok"]

    def flaky() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert call("x", flaky, _policy(sleeps)) == "ok"
    assert sleeps == [0.5, 1.0]


def test_done_check_stops_a_retry_that_already_happened() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def create() -> None:
        calls.append(1)
        raise sdk_exc.HttpException(message="gateway timeout", http_status=504)

    assert call("create", create, _policy(sleeps), done=lambda: True) is None
    assert calls == [1] and sleeps == [0.5]


def test_permanent_errors_and_exhaustion() -> None:
    sleeps: list[float] = []

    def bad() -> None:
        raise sdk_exc.HttpException(message="Bad Request: nope", http_status=400)

    with pytest.raises(CloudError, match=r"^create device profile x failed: "):
        call("create device profile x", bad, _policy(sleeps))
    assert sleeps == []

    def conflict() -> None:
        raise sdk_exc.HttpException(message="Conflict", http_status=409)

    with pytest.raises(CloudError, match="Conflict"):
        call("x", conflict, _policy(sleeps))
    assert sleeps == [0.5, 1.0, 2.0]


def test_is_transient() -> None:
    assert is_transient(sdk_exc.HttpException(message="", http_status=502))
    assert not is_transient(sdk_exc.HttpException(message="", http_status=404))
    assert is_transient(ksa_exc.ConnectFailure("refused"))
    assert not is_transient(ValueError("x"))


# -- connecting -----------------------------------------------------------------------------------
def test_apply_without_a_usable_cloud_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from cyborg_smartnic.cli.main import main

    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n    auth_type: password\n    auth: {}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    examples = str(Path(__file__).parent.parent.parent / "profiles")
    assert main(["profile", "apply", "--os-cloud", "nope", examples]) == 1
    assert capsys.readouterr().err == (
        "cyborg-smartnic: error: cannot connect to cloud nope: Cloud nope was not found.\n")
    assert main(["profile", "apply", "--os-cloud", "lab", examples]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cyborg-smartnic: error: cannot connect to cloud lab: ")
    assert len(err.splitlines()) == 1
