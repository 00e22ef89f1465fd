"""requirement_kinds: the one table of what a profile group can require of a pool."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cyborg_smartnic import requirement_kinds as kinds
from cyborg_smartnic import traits
from cyborg_smartnic.host.config import SCHEMA as HOST_SCHEMA
from cyborg_smartnic.host.config import DeviceConfig
from cyborg_smartnic.profiles import schema, validate
from cyborg_smartnic.profiles.compiler import GroupRequirement
from cyborg_smartnic.profiles.loader import check_profiles
from cyborg_smartnic.profiles.spec import GroupSpec
from cyborg_smartnic.report import pool_traits
from tests.unit.test_report import make_pf


def test_every_kind_has_its_field_everywhere_it_is_read() -> None:
    assert tuple(f.name for f in dataclasses.fields(kinds.Offer)) == kinds.FIELDS
    group_fields = {f.name for f in dataclasses.fields(GroupSpec)}
    requirement_fields = {f.name for f in dataclasses.fields(GroupRequirement)}
    profile_keys = set(schema.group_schema()["properties"])
    host_keys = set(HOST_SCHEMA["properties"]["devices"]["items"]["properties"])
    device_fields = {f.name for f in dataclasses.fields(DeviceConfig)}
    for kind in kinds.KINDS:
        assert kind.field in group_fields & requirement_fields & profile_keys, kind.field
        assert kind.host_setting is None or kind.host_setting in host_keys & device_fields, \
            kind.host_setting
        assert (kind.pf_value is not None) == kind.per_pf, kind.field


def test_offer_of_takes_given_values_else_the_pfs_own() -> None:
    pf = make_pf(fw_mode="dpu", physnet="physnet1")
    assert kinds.offer_of(pf) == kinds.Offer(
        physnet="physnet1", eswitch_mode=pf.eswitch_mode, vf_driver=None,
        firmware_mode="dpu", vendor="nvidia", model="CONNECTX_6_DX")
    given = kinds.offer_of(pf, {"physnet": "pool-net", "vf_driver": "vfio-pci",
                                "firmware_mode": None})
    assert (given.physnet, given.vf_driver, given.firmware_mode) == ("pool-net", "vfio-pci",
                                                                     "dpu")


def test_the_driver_reports_the_traits_a_profile_requires() -> None:
    """The same value gives the same trait on both sides: what the report offers for a PF
    is what a profile asking for that PF's values requires (plus OWNER_CYBORG)."""
    pf = make_pf(fw_mode="dpu")
    offered = set(pool_traits(pf, "physnet1", pf.virtual_functions, ()))
    asked = kinds.derived_traits({"physnet": "physnet1", "eswitch_mode": pf.eswitch_mode,
                                  "vf_driver": "mlx5_core", "firmware_mode": "dpu",
                                  "vendor": pf.vendor, "model": pf.model_key})
    assert set(asked) == offered - {"OWNER_CYBORG"}
    assert sorted(asked.values()) == sorted(kinds.FIELDS)


@pytest.mark.parametrize(("wanted", "offer", "missing"), [
    ({"eswitch_mode": "switchdev"}, kinds.Offer(eswitch_mode="switchdev"), ()),
    ({"eswitch_mode": "switchdev"}, kinds.Offer(eswitch_mode="legacy"), ("eswitch_mode",)),
    ({"firmware_mode": "dpu", "model": "X"}, kinds.Offer(model="X"), ("firmware_mode",)),
    ({"vf_driver": "vfio-pci"}, kinds.Offer(), ()),  # per VF: counted, not matched per PF
    ({"physnet": None}, kinds.Offer(physnet="p"), ()),
])
def test_mismatches(wanted: dict[str, str | None], offer: kinds.Offer,
                    missing: tuple[str, ...]) -> None:
    assert tuple(k.field for k in kinds.mismatches(wanted, offer)) == missing


_CABLE = kinds.RequirementKind(
    "cable", "cable", lambda value: traits.custom_name("SMARTNIC_CABLE", value), None,
    {"type": "string", "pattern": kinds.SLUG, "maxLength": 16}, lambda pf: None)


@pytest.fixture
def cable_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table with one more (fake) row. FIELDS is derived at import, so the copies
    modules took of it are patched as a real new row would have set them."""
    fields = (*kinds.FIELDS, _CABLE.field)
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, _CABLE))
    monkeypatch.setattr(kinds, "FIELDS", fields)
    monkeypatch.setattr(validate, "FIELDS", fields)


@pytest.mark.usefixtures("cable_kind")
def test_a_new_row_flows_into_the_schema_and_the_derived_traits(tmp_path: Path) -> None:
    assert schema.group_schema()["properties"]["cable"] == dict(_CABLE.schema)
    published = schema.file_schema()["$defs"]["group"]["properties"]
    assert published["cable"]["pattern"] == kinds.SLUG
    assert kinds.derived_traits({"physnet": "p1", "cable": "dac"}) == {
        "CUSTOM_PHYSNET_P1": "physnet", "CUSTOM_SMARTNIC_CABLE_DAC": "cable"}
    # profile validation reads both: the schema takes the key and checks its value, and
    # the derived trait clashes with the same trait forbidden by hand
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ngroups:\n  - vf_count: 1\n    cable: dac\n"
                    "    traits: {forbidden: [CUSTOM_SMARTNIC_CABLE_DAC]}\n"
                    "  - vf_count: 1\n    cable: Not-A-Slug\n")
    _, errors = check_profiles([path])
    messages = [str(e) for e in errors]
    assert len(messages) == 2, messages
    assert "groups[0].traits.forbidden[0]" in messages[0], messages
    assert "required by cable: dac" in messages[0], messages
    assert "groups[1].cable" in messages[1], messages


def test_without_the_row_the_key_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ngroups:\n  - vf_count: 1\n    cable: dac\n")
    _, errors = check_profiles([path])
    assert len(errors) == 1 and "cable" in str(errors[0]), [str(e) for e in errors]
