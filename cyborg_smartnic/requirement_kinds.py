"""The kinds of requirement a profile group can state about a VF pool (one table, pure).

Each kind ties together: the profile group field (also the attribute of ``GroupSpec`` and
``GroupRequirement``), the trait the driver reports for a pool's value and a profile
requires for the asked value (``traits``), what a PF or pool offers (``Offer``, the same
field names), and the host.yaml ``devices[]`` setting that changes it, if any. The driver's
report (``report.pool_traits``), a profile's derived traits (``profiles.spec``, the
compiler and validation) and the host check (``host.requirements``) all read this table, so
a new kind is one row here plus its field in ``Offer``, the profile schema and group
classes, and where a PF's value comes from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cyborg_smartnic import traits


@dataclass(frozen=True, slots=True)
class RequirementKind:
    field: str  # profile group key, GroupSpec/GroupRequirement/Offer attribute
    label: str  # how host-check messages name it
    trait: Callable[[str], str]  # the trait for a value (the driver's spelling)
    host_setting: str | None  # host.yaml devices[] key that sets it; None: the hardware's
    per_pf: bool = True  # one value per PF/pool (vf_driver: per VF, counted instead)


KINDS: tuple[RequirementKind, ...] = (
    RequirementKind("physnet", "physnet", traits.physnet_trait, "physnet"),
    RequirementKind("eswitch_mode", "eswitch", traits.eswitch_trait, "eswitch_mode"),
    RequirementKind("vf_driver", "VF driver", traits.vf_driver_trait, "vf_drivers",
                    per_pf=False),
    RequirementKind("firmware_mode", "firmware", traits.firmware_trait, "firmware_mode"),
    RequirementKind("vendor", "vendor", traits.vendor_trait, None),
    RequirementKind("model", "model", traits.model_trait, None),
)
FIELDS = tuple(kind.field for kind in KINDS)


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

