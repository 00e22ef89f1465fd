"""The kinds of requirement a profile group can state about a VF pool (one table, pure).

Each row ties together: the profile group field (also the attribute of ``GroupSpec``,
``GroupRequirement`` and ``Offer``), its JSON schema in a profile's group, the trait the
driver reports for a pool's value and a profile requires for the asked value (``traits``),
where a PF's value comes from in discovery, and the host.yaml ``devices[]`` setting that
changes it, if any. Read from here: the profile schema's group properties
(``profiles.schema``), GroupSpec parsing, a profile's derived traits (compiler and
validation), profile check's group label, the report's pool traits and the host check's
per-PF match (both build their ``Offer`` with ``offer_of``).

A new kind touches: a row here plus its field in ``Offer``; its trait function in
``traits.py``; its field in ``profiles.spec.GroupSpec`` and ``profiles.compiler.
GroupRequirement`` (explicit, so mypy types ``group.physnet``; a test checks they carry
every kind); where a PF's value comes from in discovery (``discovery.model``/``scan``) when
it is new there; when host.yaml can set it, its ``host.config`` key and ``DeviceConfig``
field; ``docs/profile.schema.json`` (rewrite it from ``profiles.schema.published_text()``,
a test keeps the two identical) and its line in docs/profiles.md; and a ``profiles.validate``
rule only if the value must be checked against the model (as ``vendor``, ``eswitch_mode``
and ``firmware_mode`` are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic import traits
from cyborg_smartnic.catalog import VENDORS
from cyborg_smartnic.discovery.model import ESWITCH_MODES, PhysicalFunction

#: A lower-case name (driver, firmware mode) as a profile may spell it.
SLUG = r"^[a-z0-9][a-z0-9_-]*$"
VENDOR_NAMES = tuple(sorted(set(VENDORS.values())))


@dataclass(frozen=True, slots=True)
class RequirementKind:
    field: str  # profile group key, GroupSpec/GroupRequirement/Offer attribute
    label: str  # how host-check messages name it
    trait: Callable[[str], str]  # the trait for a value (the driver's spelling)
    host_setting: str | None  # host.yaml devices[] key (DeviceConfig attribute); None: fixed
    schema: Mapping[str, Any]  # the group property's JSON schema in a profile
    pf_value: Callable[[PhysicalFunction], str | None] | None  # None: not one value per PF
    per_pf: bool = True  # one value per PF/pool (vf_driver: per VF, counted instead)


KINDS: tuple[RequirementKind, ...] = (
    RequirementKind("physnet", "physnet", traits.physnet_trait, "physnet",
                    {"type": "string", "pattern": r"^[A-Za-z0-9_.:-]{1,64}$"},
                    lambda pf: pf.physnet),
    RequirementKind("eswitch_mode", "eswitch", traits.eswitch_trait, "eswitch_mode",
                    {"enum": list(ESWITCH_MODES)}, lambda pf: pf.eswitch_mode),
    RequirementKind("vf_driver", "VF driver", traits.vf_driver_trait, "vf_drivers",
                    {"type": "string", "pattern": SLUG, "maxLength": 64}, None,
                    per_pf=False),
    RequirementKind("firmware_mode", "firmware", traits.firmware_trait, "firmware_mode",
                    {"type": "string", "pattern": SLUG, "maxLength": 64},
                    lambda pf: pf.firmware.mode),
    RequirementKind("vendor", "vendor", traits.vendor_trait, None,
                    {"enum": list(VENDOR_NAMES)}, lambda pf: pf.vendor),
    RequirementKind("model", "model", traits.model_trait, None,
                    {"type": "string", "minLength": 1, "maxLength": 64,
                     "description": "Catalogue model key (CONNECTX_6_DX) or name "
                                    "(ConnectX-6 Dx)."},
                    lambda pf: pf.model_key),
)
FIELDS = tuple(kind.field for kind in KINDS)


def group_properties() -> dict[str, dict[str, Any]]:
    """Every kind's property of a profile group's JSON schema, in table order."""
    return {kind.field: dict(kind.schema) for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Offer:
    """What one pool (or PF) has, per kind; ``None`` where it has nothing to say."""

    physnet: str | None = None
    eswitch_mode: str | None = None
    vf_driver: str | None = None  # the driver every VF of the pool shares
    firmware_mode: str | None = None
    vendor: str | None = None
    model: str | None = None  # catalogue model key


def values_of(source: object) -> dict[str, str | None]:
    """Every kind's value on ``source`` (a GroupSpec, GroupRequirement or Offer)."""
    return {field: getattr(source, field) for field in FIELDS}


def derived_traits(values: Mapping[str, str | None]) -> dict[str, str]:
    """The traits the given values require, each with the field it comes from."""
    return {kind.trait(value): kind.field for kind in KINDS
            if (value := values.get(kind.field))}


def offered_traits(offer: Offer) -> set[str]:
    """The traits the driver reports for what a pool offers."""
    return set(derived_traits(values_of(offer)))


def mismatches(wanted: Mapping[str, str | None], offer: Offer) -> tuple[RequirementKind, ...]:
    """The per-PF kinds whose asked value ``offer`` does not have."""
    return tuple(kind for kind in KINDS if kind.per_pf and wanted.get(kind.field)
                 and getattr(offer, kind.field) != wanted[kind.field])


def offer_of(pf: PhysicalFunction, given: Mapping[str, str | None] | None = None) -> Offer:
    """What ``pf`` (or a pool on it) offers: each kind's value from ``given`` when set
    there (a pool's physnet and shared VF driver, a host.yaml setting), else the PF's own."""
    given = given or {}
    return Offer(**{kind.field: given.get(kind.field) or (
        kind.pf_value(pf) if kind.pf_value is not None else None) for kind in KINDS})
