"""Which profiles a host can serve, and for the others exactly what is missing (pure).

The host side is the driver's own report (``report.plan_report``, or ``dicts_to_specs`` of a
``report -f json`` output): one ``PoolOffer`` per deployable, i.e. per Placement resource
provider, with the resource class, traits and VF count the driver would send. Matching follows
Placement's rules for one request group: one provider with the resource class, every required
trait, no forbidden trait and enough inventory. Groups may share a provider (Nova's default
group policy), so the groups are assigned together with capacity bookkeeping. Hugepages come
from the discovered host.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic import catalog, traits
from cyborg_smartnic.discovery.model import HugepagePool
from cyborg_smartnic.profiles.compiler import GroupRequirement, HostRequirements
from cyborg_smartnic.profiles.spec import PATH_CYBORG, format_page_size
from cyborg_smartnic.report import DeviceSpec
from cyborg_smartnic.requirement_kinds import KINDS


@dataclass(frozen=True)
class PoolOffer:
    """One VF pool (resource provider) as the driver reports it."""

    name: str
    resource_class: str
    traits: frozenset[str]
    capacity: int


#: Why ``check`` does not judge a profile whose VF Nova's PCI tracker picks.
NOVA_PCI_NOTE = ("its VF comes from Nova's PCI tracker, not from Cyborg's pools: check the "
                 "host with `host doctor --nova-conf` (VFs host.yaml gives to Nova)")


@dataclass(frozen=True)
class ProfileVerdict:
    profile: str
    servable: bool | None  # None: not Cyborg's to serve (path nova-pci)
    assignment: tuple[str | None, ...]  # pool chosen per group (None when not served)
    problems: tuple[str, ...]  # one line per missing trait/capacity, empty when servable
    path: str = PATH_CYBORG

    def to_dict(self) -> dict[str, Any]:
        """``pools``: the pool chosen for each group, in group order; empty when the groups
        could not all be placed (never ``null`` entries). ``servable`` is null for a profile
        whose VF Nova's PCI tracker picks (``path`` nova-pci)."""
        placed = all(p is not None for p in self.assignment)
        return {"profile": self.profile, "path": self.path, "servable": self.servable,
                "pools": [str(p) for p in self.assignment] if placed else [],
                "problems": list(self.problems)}


def offers_from_report(devices: Iterable[DeviceSpec]) -> list[PoolOffer]:
    """One offer per pool of the report, sorted by name."""
    offers = [PoolOffer(name=dep.name, resource_class=dep.resource_class,
                        traits=frozenset(dep.traits), capacity=dep.num_accelerators)
              for device in devices for dep in device.deployables]
    return sorted(offers, key=lambda o: o.name)


def group_gaps(group: GroupRequirement, offer: PoolOffer) -> list[str]:
    """What ``offer`` lacks for ``group`` (empty when it could serve it alone)."""
    gaps = []
    if offer.resource_class != group.resource_class:
        gaps.append(f"resource class {offer.resource_class}, not {group.resource_class}")
    gaps += [f"lacks {t}" for t in group.required_traits if t not in offer.traits]
    gaps += [f"has forbidden {t}" for t in group.forbidden_traits if t in offer.traits]
    if offer.capacity < group.vf_count:
        gaps.append(f"has {offer.capacity} VF(s), needs {group.vf_count}")
    xdp = xdp_gap(group, offer)
    if xdp:
        gaps.append(xdp)
    return gaps


def vf_kernel_driver(group: GroupRequirement, offer: PoolOffer) -> str | None:
    """The kernel driver the guest runs the VF with: the group's ``vf_driver`` when it is a
    kernel driver, else the catalogue's VF driver of the pool's model (a vfio-pci pool
    still hands the guest a VF it drives with the vendor's VF driver)."""
    if group.vf_driver and group.vf_driver not in catalog.USERSPACE_DRIVERS:
        return group.vf_driver
    model = next((m for m in catalog.BUILTIN_MODELS if traits.model_trait(m.key)
                  in offer.traits), None)
    return model.vf_driver if model is not None else None


def xdp_gap(group: GroupRequirement, offer: PoolOffer) -> str | None:
    """Why ``offer`` cannot give ``group`` native XDP (None when it can or it is not asked)."""
    if group.xdp != catalog.XDP_NATIVE:
        return None
    driver = vf_kernel_driver(group, offer)
    support = catalog.xdp_support(driver)
    if support == catalog.XDP_NATIVE:
        return None
    if support == catalog.XDP_GENERIC:
        return f"VF driver {driver} has no native XDP (generic/skb mode only)"
    return f"VF driver {driver or 'unknown'}: native XDP support unknown"


def _describe(index: int, group: GroupRequirement) -> str:
    facts = [f"{group.vf_count} x {group.resource_class}"]
    facts += [str(value) for kind in KINDS if (value := getattr(group, kind.field))
              and not (kind.field == "vendor" and group.model)]  # a model names its vendor
    if group.xdp:
        facts.append(f"xdp {group.xdp}")
    return f"group {index} ({', '.join(facts)})"


def _explain_group(index: int, group: GroupRequirement, offers: Sequence[PoolOffer]) -> list[str]:
    """Why no pool serves ``group``: traits no pool has, else the nearest miss."""
    label = _describe(index, group)
    same_rc = [o for o in offers if o.resource_class == group.resource_class]
    if not same_rc:
        have = ", ".join(sorted({o.resource_class for o in offers})) or "no VF pool at all"
        return [f"{label}: no pool has resource class {group.resource_class} (host has: "
                f"{have})"]
    missing = [t for t in group.required_traits if all(t not in o.traits for o in same_rc)]
    if missing:
        return [f"{label}: no pool has {t}" for t in missing]

    fitting = [o for o in same_rc if all(t in o.traits for t in group.required_traits)]
    if not fitting:
        closest = min(same_rc, key=lambda o: (len(group_gaps(group, o)), o.name))
        return [f"{label}: no single pool has all required traits; closest {closest.name} "
                + "; ".join(group_gaps(group, closest))]
    if not any(xdp_gap(group, o) is None for o in fitting):
        return [f"{label}: no pool gives native XDP; {fitting[0].name}: "
                f"{xdp_gap(group, fitting[0])}"]
    allowed = [o for o in fitting if not any(t in o.traits for t in group.forbidden_traits)]
    if not allowed:
        return [f"{label}: every pool with the required traits has forbidden {t}"
                for t in group.forbidden_traits if any(t in o.traits for o in fitting)]
    best = max(allowed, key=lambda o: (o.capacity, o.name))
    return [f"{label}: not enough VFs: the largest matching pool {best.name} has "
            f"{best.capacity}, the group needs {group.vf_count}"]


def _assign(groups: Sequence[GroupRequirement], candidates: Sequence[Sequence[PoolOffer]],
            left: dict[str, int], isolate: bool, index: int = 0) -> list[str] | None:
    """First assignment of pools to groups that fits the pools' capacity (backtracking);
    with ``isolate`` no two groups share a pool, as Placement's group_policy=isolate."""
    if index == len(groups):
        return []
    need = groups[index].vf_count
    for offer in candidates[index]:
        if left[offer.name] >= need:
            left[offer.name] -= need
            if isolate:
                left[offer.name] = -left[offer.name] - 1  # mark used, keep the count
            rest = _assign(groups, candidates, left, isolate, index + 1)
            if isolate:
                left[offer.name] = -left[offer.name] - 1
            left[offer.name] += need
            if rest is not None:
                return [offer.name, *rest]
    return None


def hugepage_problems(req: HostRequirements, pools: Sequence[HugepagePool]) -> list[str]:
    size = req.hugepage_size_kb
    if size is None:
        return []
    per_node = [p for p in pools if p.numa_node is not None]
    use = per_node or list(pools)
    total = sum(p.total for p in use if p.size_kb == size)
    free = sum(p.free for p in use if p.size_kb == size)
    label = format_page_size(size, short=True)
    if total == 0:
        have = sorted({p.size_kb for p in use if p.total > 0})
        sizes = ", ".join(format_page_size(s, short=True) for s in have) or "none"
        return [f"hugepages: no {label} pages reserved on this host (reserved sizes: {sizes})"]
    need = req.hugepages_per_instance
    if need is None:
        return []
    nodes = req.numa_nodes
    if nodes and per_node:
        # Nova splits guest memory evenly over hw:numa_nodes host nodes.
        share = math.ceil(need / nodes)
        frees = sorted((p.free for p in per_node if p.size_kb == size), reverse=True)
        if len([f for f in frees if f >= share]) < nodes:
            best = ", ".join(str(f) for f in frees) or "0"
            return [f"hugepages: one instance needs {share} free {label} page(s) on each of "
                    f"{nodes} NUMA node(s); free per node: {best}"]
        return []
    if free < need:
        return [f"hugepages: {free} free {label} page(s), one instance needs {need}"]
    return []


def check_profile(req: HostRequirements, offers: Sequence[PoolOffer],
                  hugepages: Sequence[HugepagePool] = (),
                  firmware_hint: Callable[[str], str | None] | None = None) -> ProfileVerdict:
    """``firmware_hint``: for a group asking a firmware mode no pool has, which firmware
    change on this host would give it (``host.firmware.firmware_hint``)."""
    if req.path != PATH_CYBORG:
        return ProfileVerdict(profile=req.profile, servable=None, assignment=(),
                              problems=(NOVA_PCI_NOTE, *hugepage_problems(req, hugepages)),
                              path=req.path)
    candidates = [[o for o in offers if not group_gaps(g, o)] for g in req.groups]
    problems: list[str] = []
    assignment: list[str | None] = [None] * len(req.groups)
    for index, (group, found) in enumerate(zip(req.groups, candidates, strict=True)):
        if not found:
            problems += _explain_group(index, group, offers)
            hint = (firmware_hint(group.firmware_mode) if firmware_hint is not None
                    and group.firmware_mode else None)
            if hint:
                problems.append(f"{_describe(index, group)}: {hint}")
    if not problems:
        isolate = req.group_policy == "isolate"
        chosen = _assign(req.groups, candidates, {o.name: o.capacity for o in offers},
                         isolate)
        if chosen is None:
            asked = sum(g.vf_count for g in req.groups)
            rule = "each from a different pool" if isolate else "sharing pools"
            problems.append(f"groups: each group fits some pool, but not all at once, "
                            f"{rule} ({asked} VFs in total from pools "
                            f"{', '.join(sorted({o.name for c in candidates for o in c}))})")
        else:
            assignment = list(chosen)
    problems += hugepage_problems(req, hugepages)
    return ProfileVerdict(profile=req.profile, servable=not problems,
                          assignment=tuple(assignment), problems=tuple(problems))


def check_all(requirements: Iterable[HostRequirements], offers: Sequence[PoolOffer],
              hugepages: Sequence[HugepagePool] = (),
              firmware_hint: Callable[[str], str | None] | None = None) -> list[ProfileVerdict]:
    return [check_profile(r, offers, hugepages, firmware_hint) for r in requirements]
