"""The NIC catalogue: lookups, VF ids, extra models from configuration."""

from __future__ import annotations

import pytest

from cyborg_smartnic.catalog import BUILTIN_MODELS, Catalog, parse_extra_model
from cyborg_smartnic.errors import ConfigError


@pytest.mark.parametrize(("ids", "expected"), [
    ("15b3:101d", ("ConnectX-6 Dx", "CONNECTX_6_DX", "101e", "mlx5_core")),
    ("15b3:a2d6", ("BlueField-2", "BLUEFIELD_2", "101e", "mlx5_core")),
    ("8086:1592", ("E810", "E810", "1889", "ice")),
    ("8086:1572", ("X710", "X710", "154c", "i40e")),
    ("8086:0d58", ("X710", "X710", "154c", "i40e")),
    ("14e4:16d7", ("BCM57414", "BCM57414", "16dc", "bnxt_en")),
    ("1dd8:1002", ("Pensando DSC", "PENSANDO_DSC", "1003", "ionic")),
])
def test_lookup_pf(ids: str, expected: tuple[str, str, str, str]) -> None:
    vendor, device = ids.split(":")
    model = Catalog().lookup_pf(vendor, device)
    assert model is not None
    assert (model.name, model.key, model.vf_device_id, model.pf_driver) == expected


def test_capabilities() -> None:
    catalog = Catalog()
    assert catalog.lookup_pf("15b3", "a2d6").dpu  # type: ignore[union-attr]
    assert not catalog.lookup_pf("15b3", "101d").dpu  # type: ignore[union-attr]
    assert catalog.lookup_pf("8086", "1592").ddp  # type: ignore[union-attr]
    assert not catalog.lookup_pf("8086", "1572").switchdev  # type: ignore[union-attr]


@pytest.mark.parametrize(("vendor", "device", "is_vf"), [
    ("15b3", "101e", True), ("8086", "1889", True), ("8086", "154c", True),
    ("15b3", "101d", False),  # a PF id
    ("8086", "1521", False),  # unknown
])
def test_vf_ids(vendor: str, device: str, is_vf: bool) -> None:
    assert Catalog().is_vf_id(vendor, device) is is_vf


def test_unknown_pf() -> None:
    assert Catalog().lookup_pf("8086", "1521") is None


def test_ids_are_lowercase_four_digit_hex_and_unique() -> None:
    seen = set()
    for model in BUILTIN_MODELS:
        for value in (model.vendor_id, model.device_id, model.vf_device_id or "0000"):
            assert len(value) == 4 and value == value.lower()
            int(value, 16)
        assert (model.vendor_id, model.device_id) not in seen
        seen.add((model.vendor_id, model.device_id))


def test_extra_model_adds_and_overrides() -> None:
    extra = (parse_extra_model("8086:1521:1520=I350 Gigabit"),
             parse_extra_model("15b3:101D=Custom CX6"))
    catalog = Catalog().with_extra(extra)
    i350 = catalog.lookup_pf("8086", "1521")
    assert i350 is not None
    assert (i350.name, i350.key, i350.vf_device_id, i350.vendor) == (
        "I350 Gigabit", "I350_GIGABIT", "1520", "intel")
    assert catalog.is_vf_id("8086", "1520")
    assert catalog.lookup_pf("15b3", "101d").name == "Custom CX6"  # type: ignore[union-attr]
    assert Catalog().lookup_pf("15b3", "101d").name == "ConnectX-6 Dx"  # type: ignore[union-attr]
    assert len(catalog.models) == len(BUILTIN_MODELS) + 1


def test_extra_model_unknown_vendor_keeps_the_id() -> None:
    model = parse_extra_model("abcd:0001=Thing")
    assert (model.vendor, model.vf_device_id, model.pf_driver) == ("abcd", None, None)


@pytest.mark.parametrize("entry", ["8086:1521", "8086=I350", "8086:15211=X", "zz86:1521=X",
                                   "8086:1521:15=X", "8086:1521=a=b", ""])
def test_bad_extra_model(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_extra_model(entry)
    assert str(caught.value).startswith("[smartnic] extra_models: ")
    assert repr(entry) in str(caught.value)


def test_driver_and_mode_names_have_one_home() -> None:
    """The names several modules test for are defined once (catalogue, discovery model,
    devlink) and the privileged allow-lists, schemas and plans read them from there."""
    from cyborg_smartnic import catalog
    from cyborg_smartnic.discovery import devlink, model
    from cyborg_smartnic.host import config, devlink_params, plan, privileged
    from cyborg_smartnic.profiles import schema, spec

    assert frozenset(spec.USERSPACE_VF_DRIVERS) == catalog.USERSPACE_DRIVERS
    assert catalog.VFIO_DRIVER in catalog.USERSPACE_DRIVERS
    cx6 = catalog.Catalog().lookup_pf("15b3", "101d")
    assert cx6 is not None and plan.MLX5 == catalog.MLX5_DRIVER == cx6.pf_driver
    assert plan.FLOW_STEERING_PARAM == devlink_params.PARAM == devlink.FLOW_STEERING_PARAM
    allowed = {devlink.FLOW_STEERING_PARAM: frozenset(devlink.FLOW_STEERING_MODES)}
    assert allowed == privileged.DEVLINK_PARAMS
    assert config.SCHEMA["properties"]["devices"]["items"]["properties"][
        "flow_steering_mode"]["enum"] == list(devlink.FLOW_STEERING_MODES)
    assert privileged.ESWITCH_MODES == frozenset(model.ESWITCH_MODES) == frozenset(
        schema.group_schema()["properties"]["eswitch_mode"]["enum"])
