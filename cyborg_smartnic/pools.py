"""What the report needs from configuration, validated once: host name, names, VF pools.

``report_config_from_conf`` reads ``[smartnic]`` and the ``[smartnic_pool:NAME]`` groups (see
``cyborg_smartnic.conf``) into frozen values; every mistake is one ``ConfigError`` naming the
option, e.g. ``[smartnic_pool:dpdk] resource_class: 'FOO' is not a CUSTOM_* name``. Pool
selectors use discovery's selector syntax (``cyborg_smartnic.discovery.selection``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oslo_config import cfg

from cyborg_smartnic import traits as names
from cyborg_smartnic.conf import GROUP, POOL_GROUP_PREFIX, register_opts, register_pool_opts
from cyborg_smartnic.discovery.model import PhysicalFunction
from cyborg_smartnic.discovery.selection import Selector, parse_selectors
from cyborg_smartnic.errors import ConfigError

# Pool names end up in resource-provider names and config group names: keep them plain.
_POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PHYSNET = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """An explicit VF pool: which VFs, and what Placement should call and tag them."""

    name: str
    selectors: tuple[Selector, ...]
    resource_class: str | None = None  # None: the report's default resource class
    traits: tuple[str, ...] = ()
    physnet: str | None = None  # None: the PF's physnet from physical_device_mappings

    def claims(self, pf: PhysicalFunction) -> frozenset[int]:
        """Indexes of ``pf``'s VFs this pool takes (every selector that picks the PF counts)."""
        found: set[int] = set()
        for selector in self.selectors:
            if not selector.matches(pf.vendor_id, pf.device_id, pf.address, pf.netdev):
                continue
            found.update(vf.index for vf in pf.virtual_functions
                         if selector.allows_vf(vf.index))
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """Everything ``report.build_report`` needs besides the host."""

    hostname: str
    resource_class: str = names.DEFAULT_RESOURCE_CLASS
    extra_traits: tuple[str, ...] = ()
    pools: tuple[PoolSpec, ...] = ()  # sorted by name


def check_resource_class(value: str, option: str) -> str:
    if not names.is_custom_name(value):
        raise ConfigError(option=option, reason=f"{value!r} is not a CUSTOM_* name "
                                                "(upper-case letters, digits and '_')")
    return value


def check_traits(values: list[str], option: str) -> tuple[str, ...]:
    found = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if not names.is_custom_name(value):
            raise ConfigError(option=option, reason=f"{value!r} is not a CUSTOM_* trait "
                                                    "(upper-case letters, digits and '_')")
        found.append(value)
    return tuple(sorted(set(found)))


def pool_from_conf(conf: cfg.ConfigOpts, name: str) -> PoolSpec:
    """One ``[smartnic_pool:NAME]`` group (already registered on ``conf``)."""
    group_name = POOL_GROUP_PREFIX + name
    prefix = f"[{group_name}]"
    group = conf[group_name]
    if not group.devices:
        raise ConfigError(option=f"{prefix} devices",
                          reason="required: which VFs belong to this pool, e.g. 'ens1f0#0-3'")
    try:
        selectors = parse_selectors(list(group.devices))
    except ConfigError as exc:
        raise ConfigError(option=f"{prefix} devices", reason=exc.kwargs["reason"]) from exc
    if any(s.is_wildcard and s.vf_indexes is None for s in selectors):
        raise ConfigError(option=f"{prefix} devices",
                          reason="'VVVV:*' without VF ranges would take every VF of a vendor; "
                                 "name the device id or add #ranges")
    resource_class = None
    if group.resource_class:
        resource_class = check_resource_class(group.resource_class.strip(),
                                              f"{prefix} resource_class")
    physnet = (group.physnet or "").strip() or None
    if physnet is not None and not _PHYSNET.fullmatch(physnet):
        raise ConfigError(option=f"{prefix} physnet",
                          reason=f"{physnet!r} must be 1-64 of letters, digits, '_', '-', '.'")
    return PoolSpec(name=name, selectors=selectors, resource_class=resource_class,
                    traits=check_traits(list(group.traits), f"{prefix} traits"),
                    physnet=physnet)


def report_config_from_conf(conf: cfg.ConfigOpts, hostname: str) -> ReportConfig:
    """Validate ``[smartnic]`` (pool groups registered, see ``conf.register_pool_opts``)."""
    group = conf[GROUP]
    pool_names = [n.strip() for n in group.pools if n.strip()]
    for name in pool_names:
        if not _POOL_NAME.fullmatch(name):
            raise ConfigError(option=f"[{GROUP}] pools",
                              reason=f"pool name {name!r} must be 1-64 of letters, digits, "
                                     "'_' and '-', starting with a letter or digit")
    duplicates = sorted({n for n in pool_names if pool_names.count(n) > 1})
    if duplicates:
        raise ConfigError(option=f"[{GROUP}] pools",
                          reason=f"pool {duplicates[0]!r} is listed twice")
    return ReportConfig(
        hostname=hostname,
        resource_class=check_resource_class(group.resource_class.strip(),
                                             f"[{GROUP}] resource_class"),
        extra_traits=check_traits(list(group.extra_traits), f"[{GROUP}] extra_traits"),
        pools=tuple(pool_from_conf(conf, name) for name in sorted(pool_names)),
    )


def resolve_hostname(conf: cfg.ConfigOpts, fallback: str | None = None) -> str:
    """The deployable-name prefix: ``[smartnic] hostname``, else cyborg-agent's resource
    provider name (``[agent] resource_provider_name``, then ``[DEFAULT] host``), else
    ``fallback`` (the CLI passes the FQDN)."""
    candidates = [conf[GROUP].hostname]
    if "agent" in conf and "resource_provider_name" in conf["agent"]:
        candidates.append(conf.agent.resource_provider_name)
    if "host" in conf:
        candidates.append(conf.host)
    candidates.append(fallback)
    for candidate in candidates:
        if candidate and str(candidate).strip():
            return str(candidate).strip()
    raise ConfigError(option=f"[{GROUP}] hostname",
                      reason="not set, and no resource provider name to fall back on")


def load_report_config(conf: cfg.ConfigOpts, fallback_hostname: str | None = None) -> ReportConfig:
    """Register ``[smartnic]`` and its pool groups on ``conf``, then validate them."""
    register_opts(conf)
    register_pool_opts(conf, [n.strip() for n in conf[GROUP].pools if n.strip()])
    return report_config_from_conf(conf, resolve_hostname(conf, fallback_hostname))
