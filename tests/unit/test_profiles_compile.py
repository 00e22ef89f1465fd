"""Compilation and rendering of profiles (pure), and the validate/render commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from cyborg_smartnic import traits
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.profiles import spec
from cyborg_smartnic.profiles.compiler import compile_all, compile_profile, is_managed
from cyborg_smartnic.profiles.loader import load_profiles
from cyborg_smartnic.profiles.render import render, shell_commands

EXAMPLES = Path(__file__).parent.parent.parent / "profiles"


def _compiled(name: str) -> dict[str, object]:
    profiles = {p.name: p for p in compile_all(load_profiles([EXAMPLES]))}
    return profiles[name].to_dict()


def test_dpdk_profile_compiles() -> None:
    data = _compiled("dpdk-vfio")
    assert data["device_profile"] == {
        "name": "dpdk-vfio",
        "description": "Two vfio-pci VFs for a DPDK guest with 1G pages and pinned CPUs "
                       "[managed-by: cyborg-smartnic]",
        "groups": [{"resources:CUSTOM_SMARTNIC_VF": "2",
                    "trait:CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI": "required"}],
    }
    assert data["flavor_extra_specs"] == {
        "accel:device_profile": "dpdk-vfio",
        "hw:cpu_policy": "dedicated",
        "hw:cpu_thread_policy": "prefer",
        "hw:emulator_threads_policy": "share",
        "hw:mem_page_size": "1GB",
        "hw:numa_nodes": "1",
    }
    assert data["flavors"] == [{"name": "dpdk.large", "vcpus": 8, "ram": 8192, "disk": 20}]
    assert data["port_arguments"] is None
    host = data["host_requirements"]
    assert isinstance(host, dict)
    assert host["hugepage_size_kb"] == 1048576
    assert host["hugepages_per_instance"] == 8
    assert host["groups"][0]["required_traits"] == ["CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"]


def test_upf_has_two_groups_in_file_order() -> None:
    groups = _compiled("upf-5g")["device_profile"]["groups"]  # type: ignore[index]
    assert groups == [
        {"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_PHYSNET_PHYSNET3": "required",
         "trait:CUSTOM_SMARTNIC_FW_COMMS": "required"},
        {"resources:CUSTOM_SMARTNIC_VF": "1", "trait:CUSTOM_PHYSNET_PHYSNET4": "required"},
    ]
    specs = _compiled("upf-5g")["flavor_extra_specs"]
    assert specs["group_policy"] == "isolate"  # type: ignore[index]
    assert "group_policy" not in _compiled("dpdk-vfio")["flavor_extra_specs"]  # type: ignore[operator]


def test_port_profile_leaves_the_vf_to_the_port() -> None:
    data = _compiled("sriov-port")
    assert data["port_arguments"] == ["--vnic-type", "accelerator-direct", "--device-profile",
                                      "sriov-port", "--network", "provider-physnet1"]
    assert data["flavor_extra_specs"] == {}
    assert data["path"] == "cyborg"
    # the port's device profile asks for the network's physnet: nothing else compares them
    assert data["device_profile"]["groups"] == [{"resources:CUSTOM_SMARTNIC_VF": "1",
                                                 "trait:CUSTOM_PHYSNET_PHYSNET1": "required"}]


# (profile file, path, device profile?, port create words, Neutron's binding)
PORT_SHAPES = [
    ("sriov-port", "cyborg", True,
     ["--vnic-type", "accelerator-direct", "--device-profile", "sriov-port", "--network",
      "provider-physnet1"], "sriovnicswitch: vif_type hw_veb"),
    ("ovs-offload", "nova-pci", False,
     ["--vnic-type", "direct", "--network", "provider-physnet1", "--binding-profile",
      '{"capabilities": ["switchdev"]}'], "openvswitch or OVN: vif_type ovs"),
    ("bluefield-dpu-port", "nova-pci", False,
     ["--vnic-type", "remote-managed", "--network", "provider-physnet6"], "OVN"),
]


@pytest.mark.parametrize(("name", "path", "cyborg", "words", "binds"), PORT_SHAPES)
def test_each_port_shape_compiles_to_its_path(name: str, path: str, cyborg: bool,
                                              words: list[str], binds: str) -> None:
    data = _compiled(name)
    assert data["path"] == path
    assert (data["device_profile"] is not None) == cyborg
    assert data["port"]["device_profile"] == (name if cyborg else None)
    assert data["port_create"] == ["openstack", "port", "create", *words, "PORT_NAME"]
    assert data["port"]["neutron_binds"].startswith(binds)
    assert data["server_create"] == ["openstack", "server", "create", "--flavor", "FLAVOR",
                                     "--image", "IMAGE", "--port", "PORT_NAME", "SERVER_NAME"]
    assert "accel:device_profile" not in data["flavor_extra_specs"]
    compiled = {p.name: p for p in compile_all(load_profiles([EXAMPLES]))}
    lines = shell_commands(compiled[name])
    commands = [shlex.split(ln) for ln in lines if not ln.startswith("#")]
    assert [c[:3] for c in commands] == (
        [["openstack", "accelerator", "device"]] if cyborg else []) + [
        ["openstack", "port", "create"], ["openstack", "server", "create"]]
    assert commands[-2] == data["port_create"] and commands[-1] == data["server_create"]


def test_trait_names_come_from_traits_module() -> None:
    profile = spec.ProfileSpec(
        name="all", description="", groups=(spec.GroupSpec(
            vf_count=3, resource_class="CUSTOM_VF_X", physnet="phys-net.1",
            eswitch_mode="switchdev", vf_driver="vfio-pci", vendor="nvidia",
            model="CONNECTX_6_DX", firmware_mode="os_default", required=("CUSTOM_EXTRA",),
            forbidden=("CUSTOM_SLOW",)),))
    group = compile_profile(profile).device_profile["groups"][0]
    assert group == {
        "resources:CUSTOM_VF_X": "3",
        f"trait:{traits.physnet_trait('phys-net.1')}": "required",
        f"trait:{traits.eswitch_trait('switchdev')}": "required",
        f"trait:{traits.vf_driver_trait('vfio-pci')}": "required",
        f"trait:{traits.vendor_trait('nvidia')}": "required",
        f"trait:{traits.model_trait('CONNECTX_6_DX')}": "required",
        f"trait:{traits.firmware_trait('os_default')}": "required",
        "trait:CUSTOM_EXTRA": "required",
        "trait:CUSTOM_SLOW": "forbidden",
    }
    assert "trait:CUSTOM_PHYSNET_PHYS_NET_1" in group


def test_model_name_or_key_compile_the_same(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("- name: a\n  groups: [{vf_count: 1, model: ConnectX-6 Dx}]\n"
                    "- name: b\n  groups: [{vf_count: 1, model: CONNECTX_6_DX}]\n")
    a, b = compile_all(load_profiles([path]))
    assert a.device_profile["groups"] == b.device_profile["groups"]
    assert a.host.groups[0].model == "CONNECTX_6_DX"


def test_description_marker() -> None:
    empty = compile_profile(spec.ProfileSpec(name="x", description="",
                                             groups=(spec.GroupSpec(vf_count=1),)))
    assert empty.device_profile["description"] == "[managed-by: cyborg-smartnic]"
    assert is_managed(empty.device_profile["description"])
    assert not is_managed("made by hand")
    assert not is_managed(None)


@pytest.mark.parametrize(("text", "kb"), [
    ("2M", 2048), ("2MB", 2048), ("2MiB", 2048), ("1G", 1048576), ("1GB", 1048576),
    ("1gib", 1048576), ("64K", 64), (2048, 2048), ("1048576", 1048576), ("16G", 16777216)])
def test_hugepage_sizes(text: str | int, kb: int) -> None:
    assert spec.parse_hugepage_size(text) == kb


@pytest.mark.parametrize("text", ["4M", "3G", "1T", "large", "-2M", "", True, 0])
def test_hugepage_sizes_refused(text: str | int) -> None:
    with pytest.raises(ValueError):
        spec.parse_hugepage_size(text)


def test_page_size_spelling() -> None:
    assert [spec.format_page_size(s) for s in (64, 2048, 1048576)] == ["64KB", "2MB", "1GB"]


def test_hugepages_per_instance_uses_largest_flavor(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: a\ngroups: [{vf_count: 1}]\ninstance: {hugepages: 2M}\n"
                    "flavors:\n  - {name: s, vcpus: 1, ram: 1000}\n  - {name: l, vcpus: 2, "
                    "ram: 3000}\n  - existing\n")
    (compiled,) = compile_all(load_profiles([path]))
    assert compiled.host.hugepages_per_instance == 1500  # ceil(3000 MiB / 2 MiB)
    assert [f.creatable for f in compiled.flavors] == [True, True, False]


def test_shell_rendering_round_trips_through_shlex() -> None:
    compiled = {p.name: p for p in compile_all(load_profiles([EXAMPLES]))}
    lines = [ln for ln in shell_commands(compiled["dpdk-vfio"]) if not ln.startswith("#")]
    create, flavor_create, flavor_set, server = (shlex.split(ln) for ln in lines)
    assert server == ["openstack", "server", "create", "--flavor", "dpdk.large", "--image",
                      "IMAGE", "--network", "NETWORK", "SERVER_NAME"]
    assert create[:6] == ["openstack", "accelerator", "device", "profile", "create", "dpdk-vfio"]
    assert json.loads(create[6]) == compiled["dpdk-vfio"].device_profile["groups"]
    assert create[7:] == ["--description",
                          compiled["dpdk-vfio"].device_profile["description"]]
    assert flavor_create == ["openstack", "flavor", "create", "--vcpus", "8", "--ram", "8192",
                             "--disk", "20", "dpdk.large"]
    pairs = dict(p.split("=", 1) for p in flavor_set[4:-1:2])
    assert pairs == compiled["dpdk-vfio"].flavor_extra_specs
    assert flavor_set[-1] == "dpdk.large"
    port_lines = [ln for ln in shell_commands(compiled["sriov-port"]) if "port create" in ln]
    assert shlex.split(port_lines[0]) == [
        "openstack", "port", "create", "--vnic-type", "accelerator-direct", "--device-profile",
        "sriov-port", "--network", "provider-physnet1", "PORT_NAME"]


def test_shell_quotes_hostile_text(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: q\ndescription: \"it's $(rm -rf /) `x`\"\ngroups: [{vf_count: 1}]\n")
    text = render(compile_all(load_profiles([path])), "shell")
    create = next(ln for ln in text.splitlines() if ln.startswith("openstack accelerator"))
    assert shlex.split(create)[-1] == "it's $(rm -rf /) `x` [managed-by: cyborg-smartnic]"


def test_json_and_yaml_render_the_same_data() -> None:
    compiled = compile_all(load_profiles([EXAMPLES]))
    assert json.loads(render(compiled, "json")) == yaml.safe_load(render(compiled, "yaml"))


def test_cli_validate_and_render(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "validate", str(EXAMPLES)]) == 0
    assert capsys.readouterr().out == "8 profile(s) in 8 file(s): valid\n"
    assert main(["profile", "render", "-f", "json", str(EXAMPLES / "xdp.yaml")]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["format"] == 1
    assert [p["name"] for p in rendered["profiles"]] == ["xdp-netdev"]


def test_cli_validate_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: a\ngroups:\n  - vf_count: 1\n    physnt: x\n")
    assert main(["profile", "validate", str(EXAMPLES), str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}:4:5: groups[0].physnt: unknown key 'physnt'; did you mean 'physnet'?",
        "cyborg-smartnic: error: 1 error(s) in device profiles; nothing was done",
    ]
    assert main(["profile", "render", str(bad)]) == 1
