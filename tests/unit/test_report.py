"""cyborg_smartnic.report on hand-made discovery models: the exact objects Cyborg receives."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cyborg.accelerator.common.utils import pci_str_to_json
from cyborg.objects.driver_objects.driver_device import DriverDevice
from oslo_serialization import jsonutils

from cyborg_smartnic import report
from cyborg_smartnic.discovery.model import (
    ESWITCH_LEGACY,
    ESWITCH_SWITCHDEV,
    Firmware,
    Host,
    Link,
    PhysicalFunction,
    VirtualFunction,
)
from cyborg_smartnic.discovery.selection import parse_selectors
from cyborg_smartnic.errors import ConfigError, InvalidPciAddress
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.pools import PoolSpec, ReportConfig
from tests.fixtures.cyborg_objects import object_data

HOST = "cn1.example.org"


def make_vf(pf: PciAddress, index: int, driver: str | None = "mlx5_core") -> VirtualFunction:
    return VirtualFunction(
        address=PciAddress(pf.domain, pf.bus, pf.slot + 1 + index // 8, index % 8),
        index=index, vendor_id="15b3", device_id="101e", driver=driver,
        netdev=None if driver in (None, "vfio-pci") else f"vf{index}", link=Link(),
        iommu_group=100 + index, numa_node=0)


def make_pf(address: str = "0000:3b:00.0", *, netdev: str = "ens1f0", vfs: int = 4,
            vf_drivers: dict[int, str | None] | None = None, physnet: str | None = "physnet1",
            eswitch: str | None = ESWITCH_SWITCHDEV, fw_mode: str | None = None,
            vendor: str = "nvidia", vendor_id: str = "15b3", device_id: str = "101d",
            model: str = "ConnectX-6 Dx", model_key: str = "CONNECTX_6_DX",
            present: list[int] | None = None) -> PhysicalFunction:
    addr = PciAddress.parse(address)
    drivers = vf_drivers or {}
    indexes = present if present is not None else list(range(vfs))
    return PhysicalFunction(
        address=addr, vendor_id=vendor_id, device_id=device_id, subsystem_vendor_id="15b3",
        subsystem_device_id="0042", vendor=vendor, model=model, model_key=model_key,
        driver="mlx5_core", numa_node=0, netdev=netdev, link=Link(speed_mbps=100000),
        iommu_group=7, eswitch_mode=eswitch, firmware=Firmware("22.36.1010", fw_mode),
        physnet=physnet, total_vfs=8, num_vfs=len(indexes), vf_device_id="101e",
        virtual_functions=tuple(make_vf(addr, i, drivers.get(i, "mlx5_core"))
                                for i in indexes),
        serial="MT2034X12345")


def make_host(*pfs: PhysicalFunction) -> Host:
    return Host(hostname=HOST, physical_functions=tuple(pfs), skipped=())


def pool(name: str, *selectors: str, **kwargs: object) -> PoolSpec:
    return PoolSpec(name=name, selectors=parse_selectors(list(selectors)), **kwargs)  # type: ignore[arg-type]


CONFIG = ReportConfig(hostname=HOST)


def attrs(dep: object) -> dict[str, str]:
    return {a.key: a.value for a in dep.attribute_list}  # type: ignore[attr-defined]


def test_one_device_per_pf_with_cyborgs_fields() -> None:
    devices = report.build_report(make_host(make_pf("0000:3b:00.1", netdev="ens1f1"),
                                            make_pf()), CONFIG)
    assert all(isinstance(d, DriverDevice) for d in devices)
    assert [d.controlpath_id.cpid_info for d in devices] == ["0000:3b:00.0", "0000:3b:00.1"]
    dev = devices[0]
    assert (dev.vendor, dev.model, dev.type, dev.stub) == ("15b3", "ConnectX-6 Dx", "NIC", False)
    assert dev.controlpath_id.cpid_type == "PCI"
    board = json.loads(dev.std_board_info)
    assert board["device_id"] == "101d" and board["serial"] == "MT2034X12345"
    assert dev.std_board_info == json.dumps(board, sort_keys=True)
    assert dev.vendor_board_info is None


def test_default_pool_holds_every_vf_with_pci_attach_handles() -> None:
    (dev,) = report.build_report(make_host(make_pf()), CONFIG)
    (dep,) = dev.deployable_list
    assert dep.name == "cn1.example.org_0000:3b:00.0"
    assert dep.num_accelerators == 4 == len(dep.attach_handle_list)
    assert dep.driver_name == "smartnic"
    vf_addresses = ["0000:3b:01.0", "0000:3b:01.1", "0000:3b:01.2", "0000:3b:01.3"]
    assert [ah.attach_info for ah in dep.attach_handle_list] == [
        pci_str_to_json(a, "physnet1") for a in vf_addresses]
    assert dep.attach_handle_list[0].attach_info == (
        '{"bus": "3b", "device": "01", "domain": "0000", "function": "0", '
        '"physical_network": "physnet1"}')
    assert {(ah.attach_type, ah.in_use) for ah in dep.attach_handle_list} == {("PCI", False)}


def test_attach_info_without_physnet_has_no_physical_network_key() -> None:
    (dev,) = report.build_report(make_host(make_pf(physnet=None)), CONFIG)
    info = dev.deployable_list[0].attach_handle_list[0].attach_info
    assert info == pci_str_to_json("0000:3b:01.0") == (
        '{"bus": "3b", "device": "01", "domain": "0000", "function": "0"}')


@pytest.mark.parametrize("address", ["0000:3b:01.0", "0000:af:1f.7", "10000:00:02.3",
                                     "0000:5E:00.1"])
@pytest.mark.parametrize("physnet", [None, "physnet1", "fast-net.2"])
def test_attach_info_is_byte_identical_to_cyborgs_pci_str_to_json(
        address: str, physnet: str | None) -> None:
    canonical = str(PciAddress.parse(address))
    assert report.attach_info(canonical, physnet) == pci_str_to_json(canonical, physnet)


def test_attributes_are_rc_and_one_trait_key_per_trait_name() -> None:
    pf = make_pf(fw_mode="nic", vf_drivers={i: "vfio-pci" for i in range(4)})
    (dev,) = report.build_report(make_host(pf), CONFIG)
    attributes = attrs(dev.deployable_list[0])
    assert attributes.pop("rc") == "CUSTOM_SMARTNIC_VF"
    assert all(key == "trait_" + value for key, value in attributes.items())
    assert sorted(attributes.values()) == [
        "CUSTOM_PHYSNET_PHYSNET1", "CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV", "CUSTOM_SMARTNIC_FW_NIC",
        "CUSTOM_SMARTNIC_MODEL_CONNECTX_6_DX", "CUSTOM_SMARTNIC_VENDOR_NVIDIA",
        "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI", "OWNER_CYBORG"]


def test_vf_driver_trait_only_when_the_pool_shares_one_driver() -> None:
    mixed = make_pf(vf_drivers={0: "vfio-pci"}, eswitch=None, physnet=None)
    (dev,) = report.build_report(make_host(mixed), CONFIG)
    assert sorted(attrs(dev.deployable_list[0]).values()) == [
        "CUSTOM_SMARTNIC_MODEL_CONNECTX_6_DX", "CUSTOM_SMARTNIC_VENDOR_NVIDIA",
        "CUSTOM_SMARTNIC_VF", "OWNER_CYBORG"]
    unbound = make_pf(vf_drivers=dict.fromkeys(range(4)))
    (dev,) = report.build_report(make_host(unbound), CONFIG)
    assert not any("VF_DRIVER" in v for v in attrs(dev.deployable_list[0]).values())


def test_explicit_pools_carve_vf_ranges_out_of_the_default_pool() -> None:
    pf = make_pf(vfs=8, vf_drivers={i: "vfio-pci" for i in range(4)})
    config = ReportConfig(
        hostname=HOST, extra_traits=("CUSTOM_RACK_B",),
        pools=(pool("dpdk", "ens1f0#0-3", resource_class="CUSTOM_DPDK_VF",
                    traits=("CUSTOM_DPDK",), physnet="fastnet"),))
    (dev,) = report.build_report(make_host(pf), config)
    default, dpdk = dev.deployable_list
    assert (default.name, default.num_accelerators) == ("cn1.example.org_0000:3b:00.0", 4)
    assert (dpdk.name, dpdk.num_accelerators) == ("cn1.example.org_0000:3b:00.0_dpdk", 4)
    assert attrs(dpdk)["rc"] == "CUSTOM_DPDK_VF"
    assert attrs(default)["rc"] == "CUSTOM_SMARTNIC_VF"
    assert {"CUSTOM_DPDK", "CUSTOM_RACK_B", "CUSTOM_PHYSNET_FASTNET",
            "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"} <= set(attrs(dpdk).values())
    assert "CUSTOM_DPDK" not in attrs(default).values()
    assert {"CUSTOM_RACK_B", "CUSTOM_PHYSNET_PHYSNET1",
            "CUSTOM_SMARTNIC_VF_DRIVER_MLX5_CORE"} <= set(attrs(default).values())
    assert [json.loads(ah.attach_info)["function"] for ah in dpdk.attach_handle_list] == \
        ["0", "1", "2", "3"]
    assert {json.loads(ah.attach_info)["physical_network"]
            for ah in dpdk.attach_handle_list} == {"fastnet"}
    assert [json.loads(ah.attach_info)["function"] for ah in default.attach_handle_list] == \
        ["4", "5", "6", "7"]


def test_a_vf_in_two_pools_is_a_clear_config_error() -> None:
    config = ReportConfig(hostname=HOST, pools=(pool("a", "ens1f0#0-2"),
                                                pool("b", "0000:3b:00.0#2-3")))
    with pytest.raises(ConfigError) as caught:
        report.build_report(make_host(make_pf()), config)
    assert str(caught.value) == (
        "[smartnic_pool:b] devices: VF 2 of 0000:3b:00.0 (ens1f0) is already in pool 'a'; "
        "a VF can be in one pool only")


def test_empty_pools_are_not_reported() -> None:
    config = ReportConfig(hostname=HOST, pools=(pool("all", "ens1f0"), pool("none", "ens9")))
    (dev,) = report.build_report(make_host(make_pf()), config)
    assert [d.name for d in dev.deployable_list] == ["cn1.example.org_0000:3b:00.0_all"]
    (bare,) = report.build_report(make_host(make_pf(vfs=0)), CONFIG)
    assert bare.deployable_list == []
    assert bare.controlpath_id.cpid_info == "0000:3b:00.0"


def test_an_unchanged_host_serialises_byte_identically() -> None:
    from cyborg.objects import base as objects_base

    host = make_host(make_pf("0000:5e:00.0", netdev="ens2f0", vfs=6),
                     make_pf(vfs=8, vf_drivers={1: "vfio-pci"}))
    config = ReportConfig(hostname=HOST, extra_traits=("CUSTOM_B", "CUSTOM_A"),
                          pools=(pool("p", "ens1f0#5-7"),))
    serializer = objects_base.CyborgObjectSerializer()

    def wire() -> str:  # what goes over RPC, as the agent's serializer makes it
        primitives = [serializer.serialize_entity(None, d)
                      for d in report.build_report(host, config)]
        for primitive in primitives:
            primitive.pop("versioned_object.changes", None)
        return str(jsonutils.dumps(primitives, sort_keys=True))

    first, second = wire(), wire()
    assert first == second
    assert json.dumps(report.specs_to_dicts(report.plan_report(host, config))) == \
        json.dumps(report.specs_to_dicts(report.plan_report(host, config)))


def test_a_changed_fact_changes_only_its_own_attributes() -> None:
    before = report.build_report(make_host(make_pf(eswitch=ESWITCH_LEGACY)), CONFIG)
    after = report.build_report(make_host(make_pf(eswitch=ESWITCH_SWITCHDEV)), CONFIG)
    old, new = attrs(before[0].deployable_list[0]), attrs(after[0].deployable_list[0])
    assert set(old) - set(new) == {"trait_CUSTOM_SMARTNIC_ESWITCH_LEGACY"}
    assert set(new) - set(old) == {"trait_CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV"}
    assert {k: v for k, v in old.items() if k in new} == {k: v for k, v in new.items()
                                                          if k in old}


def sent_data(specs: tuple[report.DeviceSpec, ...]) -> list[dict[str, object]]:
    """The fields of the objects the agent sends, less the two the data leaves out."""
    data = object_data(report.to_driver_devices(specs))
    for device in data:
        assert (device.pop("stub"), device.pop("vendor_board_info")) == (False, None)
    return list(data)


def test_specs_to_dicts_uses_cyborgs_field_names() -> None:
    specs = report.plan_report(make_host(make_pf(vfs=1)), CONFIG)
    (data,) = report.specs_to_dicts(specs)
    assert set(data) == {"vendor", "model", "type", "std_board_info", "controlpath_id",
                         "deployable_list"}
    assert data["controlpath_id"] == {"cpid_type": "PCI", "cpid_info": "0000:3b:00.0"}
    (dep,) = data["deployable_list"]
    assert set(dep) == {"name", "num_accelerators", "driver_name", "attribute_list",
                        "attach_handle_list"}
    assert dep["attribute_list"][0] == {"key": "rc", "value": "CUSTOM_SMARTNIC_VF"}
    assert dep["attach_handle_list"] == [{"attach_type": "PCI", "in_use": False,
                                          "attach_info": pci_str_to_json("0000:3b:01.0",
                                                                         "physnet1")}]
    assert sent_data(specs) == [data]
    read_back = report.dicts_to_specs([data])
    assert report.specs_to_dicts(read_back) == [data]
    assert sent_data(read_back) == [data]


def test_specs_to_dicts_matches_the_objects_for_a_busy_host() -> None:
    host = make_host(make_pf("0000:5e:00.0", netdev="ens2f0", vfs=6),
                     make_pf(vfs=8, vf_drivers={1: "vfio-pci"}), make_pf("0000:af:00.0", vfs=0))
    config = ReportConfig(hostname=HOST, pools=(pool("p", "ens1f0#5-7", physnet="x"),))
    specs = report.plan_report(host, config)
    assert report.specs_to_dicts(specs) == sent_data(specs)
    read_back = report.dicts_to_specs(report.specs_to_dicts(specs))
    assert [dataclasses.replace(dev, deployables=tuple(
        dataclasses.replace(dep, pool=None) for dep in dev.deployables))
        for dev in specs] == list(read_back)  # everything but the pool name comes back


def test_dicts_to_specs_refuses_a_malformed_attach_info() -> None:
    (data,) = report.specs_to_dicts(report.plan_report(make_host(make_pf(vfs=1)), CONFIG))
    data["deployable_list"][0]["attach_handle_list"][0]["attach_info"] = '{"bus": "3b"}'
    with pytest.raises(InvalidPciAddress):
        report.dicts_to_specs([data])


@pytest.mark.parametrize(("host", "pf", "pool_name", "expected"), [
    ("cn1", "0000:3b:00.0", None, "cn1_0000:3b:00.0"),
    ("cn1.example.org", "0000:3b:00.0", "dpdk", "cn1.example.org_0000:3b:00.0_dpdk"),
])
def test_deployable_names(host: str, pf: str, pool_name: str | None, expected: str) -> None:
    assert report.deployable_name(host, pf, pool_name) == expected


def test_deployable_names_are_sanitised_bounded_and_unique() -> None:
    odd = report.deployable_name("cn 1/x", "0000:3b:00.0")
    assert odd.startswith("cn_1_x_0000:3b:00.0_") and len(odd) == len("cn_1_x_0000:3b:00.0") + 9
    assert odd != report.deployable_name("cn_1_x", "0000:3b:00.0")
    long_a = report.deployable_name("h" * 300, "0000:3b:00.0", "a")
    long_b = report.deployable_name("h" * 300, "0000:3b:00.0", "b")
    assert len(long_a) == len(long_b) == report.MAX_RP_NAME
    assert long_a != long_b
    assert report.deployable_name("h" * 300, "0000:3b:00.0", "a") == long_a
