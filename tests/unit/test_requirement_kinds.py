"""requirement_kinds: the one table of what a profile group can require of a pool."""

from __future__ import annotations

import dataclasses

import pytest

from cyborg_smartnic import requirement_kinds as kinds
from cyborg_smartnic.host.config import SCHEMA as HOST_SCHEMA
from cyborg_smartnic.profiles import schema
from cyborg_smartnic.profiles.compiler import GroupRequirement
from cyborg_smartnic.profiles.spec import GroupSpec
from cyborg_smartnic.report import pool_traits
from tests.unit.test_report import make_pf


def test_every_kind_has_its_field_everywhere_it_is_read() -> None:
    assert tuple(f.name for f in dataclasses.fields(kinds.Offer)) == kinds.FIELDS
    group_fields = {f.name for f in dataclasses.fields(GroupSpec)}
    requirement_fields = {f.name for f in dataclasses.fields(GroupRequirement)}
    profile_keys = set(schema.GROUP_SCHEMA["properties"])
    host_keys = set(HOST_SCHEMA["properties"]["devices"]["items"]["properties"])
    for kind in kinds.KINDS:
        assert kind.field in group_fields & requirement_fields & profile_keys, kind.field
        assert kind.host_setting is None or kind.host_setting in host_keys, kind.host_setting


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
