"""Check what device profiles need against what host.yaml (plus the host as it is) gives.

A profile group is one Placement request group, met by a single pool, so the count that
matters is the best single PF, not the sum. Pure: the profiles are compiled elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cyborg_smartnic.catalog import USERSPACE_DRIVERS, XDP_NATIVE, Catalog, xdp_support
from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.host import firmware
from cyborg_smartnic.host.config import DEFAULT_DRIVER, DeviceConfig, HostConfig
from cyborg_smartnic.host.plan import selects
from cyborg_smartnic.profiles.compiler import GroupRequirement, HostRequirements
from cyborg_smartnic.profiles.spec import format_page_size
from cyborg_smartnic.requirement_kinds import KINDS, Offer, mismatches, offer_of, values_of


@dataclass(frozen=True, slots=True)
class Finding:
    profile: str
    ok: bool
    message: str


@dataclass(frozen=True, slots=True)
class PfOutcome:
    """A PF as it will be once host.yaml is applied (or as it is, when not configured)."""

    pf: PhysicalFunction
    vf_drivers: tuple[str | None, ...]  # per VF index, reserved VFs left out as None
    offer: Offer  # per-PF kinds: host.yaml's setting where it has one, else the PF's own


def outcomes(config: HostConfig | None, host: Host,
             catalog: Catalog | None = None) -> tuple[PfOutcome, ...]:
    """Every PF of ``host`` after ``config`` is applied (unconfigured PFs as they are)."""
    models = catalog or Catalog()
    result = []
    for pf in host.physical_functions:
        device = next((d for d in (config.devices if config else ()) if selects(d, pf)), None)
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        default = model.vf_driver if model else None
        current = {vf.index: vf.driver for vf in pf.virtual_functions}
        if device is None:
            result.append(PfOutcome(pf, tuple(current.get(i) for i in range(pf.num_vfs)),
                                    offer_of(pf)))
            continue
        count = device.vf_count if device.vf_count is not None else pf.num_vfs
        recreated = count != pf.num_vfs
        drivers = tuple(None if i in device.reserved_vfs else
                        _driver(device, i, default, None if recreated else current.get(i))
                        for i in range(count))
        result.append(PfOutcome(pf, drivers, offer_of(pf, _settings(device))))
    return tuple(result)


def _settings(device: DeviceConfig) -> dict[str, str | None]:
    """The per-PF kinds host.yaml sets on ``device`` (None: left as the PF has it)."""
    return {kind.field: getattr(device, kind.host_setting) for kind in KINDS
            if kind.per_pf and kind.host_setting is not None}


def _driver(device: DeviceConfig, index: int, default: str | None,
            current: str | None) -> str | None:
    wanted = device.driver_for(index)
    if wanted == DEFAULT_DRIVER:
        return default
    return wanted or current or default


def check(requirements: Iterable[HostRequirements], config: HostConfig | None, host: Host,
          catalog: Catalog | None = None) -> tuple[Finding, ...]:
    """One finding per profile group and per hugepage need, ok or not."""
    pfs = outcomes(config, host, catalog)
    source = "host.yaml" if config is not None else "this host"
    findings: list[Finding] = []
    for needs in requirements:
        for group in needs.groups:
            findings.append(_group(needs.profile, group, pfs, source, catalog))
        if needs.hugepage_size_kb and needs.hugepages_per_instance:
            findings.append(_hugepages(needs, config, host, source))
    return tuple(findings)


def _describe(group: GroupRequirement) -> str:
    words = [str(group.vf_count)]
    if group.vf_driver:
        words.append(group.vf_driver)
    words.append("VF" if group.vf_count == 1 else "VFs")
    if group.physnet:
        words.append(f"on {group.physnet}")
    extras = [f"{kind.label} {value}" for kind in KINDS if kind.field not in ("physnet",
              "vf_driver") and (value := getattr(group, kind.field))]
    extras += [f"xdp {group.xdp}"] if group.xdp else []
    if extras:
        words.append(f"({', '.join(extras)})")
    return " ".join(words)


def _guest_driver(group: GroupRequirement, pf: PhysicalFunction, models: Catalog
                  ) -> str | None:
    """The kernel driver the guest runs the VF with (see profiles.check.vf_kernel_driver)."""
    if group.vf_driver and group.vf_driver not in USERSPACE_DRIVERS:
        return group.vf_driver
    model = models.lookup_pf(pf.vendor_id, pf.device_id)
    return model.vf_driver if model is not None else None


def _group(profile: str, group: GroupRequirement, pfs: tuple[PfOutcome, ...],
           source: str, models: Catalog | None = None) -> Finding:
    models = models or Catalog()
    wanted = values_of(group)
    best: tuple[int, str] = (0, "")
    for out in pfs:
        pf = out.pf
        if mismatches(wanted, out.offer):
            continue
        if group.xdp == XDP_NATIVE and xdp_support(_guest_driver(group, pf, models)) != \
                XDP_NATIVE:
            continue
        count = sum(1 for d in out.vf_drivers
                    if d is not None and (group.vf_driver is None or d == group.vf_driver))
        if count > best[0]:
            best = (count, str(pf.address))
    wants = _describe(group)
    if best[0] >= group.vf_count:
        return Finding(profile, True, f"profile {profile} needs {wants}; {best[1]} gives "
                                      f"{best[0]}")
    gives = f"{source} gives {best[0]}" + (f" (best: {best[1]})" if best[1] else "")
    hint = _firmware_hint(group, pfs, models, best[0])
    return Finding(profile, False, f"profile {profile} needs {wants}; {gives}"
                   + (f"; {hint}" if hint else ""))


def _firmware_hint(group: GroupRequirement, pfs: tuple[PfOutcome, ...],
                   models: Catalog, best: int) -> str | None:
    """The firmware change that would serve ``group`` (host.firmware), when one would."""
    host = Host(hostname="", physical_functions=tuple(out.pf for out in pfs), skipped=())
    if group.firmware_mode and not any(out.offer.firmware_mode == group.firmware_mode
                                       for out in pfs):
        return firmware.firmware_hint(group.firmware_mode, host, models)
    return firmware.sriov_hint(host, models) if best == 0 else None


def _hugepages(needs: HostRequirements, config: HostConfig | None, host: Host,
               source: str) -> Finding:
    size = int(needs.hugepage_size_kb or 0)
    wanted = int(needs.hugepages_per_instance or 0)
    per_node: dict[int | None, int] = {p.numa_node: p.total for p in host.hugepages
                                       if p.size_kb == size}
    for pool in config.hugepages if config else ():
        if pool.size_kb == size:
            per_node[pool.numa_node] = pool.count
    node_counts = {n: c for n, c in per_node.items() if n is not None} or per_node
    best = max(node_counts.values(), default=0)
    label = format_page_size(size)
    text = (f"profile {needs.profile} needs {wanted} x {label} hugepages per instance "
            f"(on one NUMA node)")
    if best >= wanted:
        return Finding(needs.profile, True, f"{text}; {source} gives {best}")
    return Finding(needs.profile, False, f"{text}; {source} gives at most {best}")
