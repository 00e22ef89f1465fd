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


AGENT_GROUP = "agent"
AGENT_NAME_OPT = "resource_provider_name"


@dataclass(frozen=True, slots=True)
class ProviderName:
    """The deployable-name prefix and where it came from (shown by ``report``)."""

    name: str
    source: str


def provider_name(conf: cfg.ConfigOpts, fallback: str | None = None,
                  fallback_source: str = "socket.getfqdn()") -> ProviderName:
    """The prefix the driver gives every deployable, exactly as it does inside cyborg-agent.

    ``[smartnic] hostname`` when set, else ``[agent] resource_provider_name``: cyborg-agent
    registers it with ``socket.getfqdn()`` as default, so in the agent the chain ends there
    (``[DEFAULT] host`` is only the agent's second guess at its compute node in Placement, never
    part of our names). Outside the agent (the CLI) the option is read from the config files
    when present, else ``fallback``: the host's FQDN, or a recorded tree's ``etc/hostname``.
    """
    explicit = (conf[GROUP].hostname or "").strip()
    if explicit:
        return ProviderName(explicit, f"[{GROUP}] hostname")
    if AGENT_GROUP in conf and AGENT_NAME_OPT in conf[AGENT_GROUP]:
        value = (conf[AGENT_GROUP].resource_provider_name or "").strip()
        if value:
            source = f"[{AGENT_GROUP}] {AGENT_NAME_OPT}"
            try:
                where = conf.get_location(AGENT_NAME_OPT, AGENT_GROUP)
            except (cfg.NoSuchOptError, cfg.NoSuchGroupError):  # pragma: no cover
                where = None
            if where is not None and where.location == cfg.Locations.opt_default:
                source += ", cyborg-agent's default socket.getfqdn()"
            return ProviderName(value, source)
    if fallback and fallback.strip():
        return ProviderName(fallback.strip(), fallback_source)
    raise ConfigError(option=f"[{GROUP}] hostname",
                      reason="not set, and no resource provider name to fall back on")


def resolve_hostname(conf: cfg.ConfigOpts, fallback: str | None = None) -> str:
    """``provider_name(conf, fallback).name``."""
    return provider_name(conf, fallback).name


def load_report_config(conf: cfg.ConfigOpts, fallback_hostname: str | None = None) -> ReportConfig:
    """Register ``[smartnic]`` and its pool groups on ``conf``, then validate them."""
    register_opts(conf)
    register_pool_opts(conf, [n.strip() for n in conf[GROUP].pools if n.strip()])
    return report_config_from_conf(conf, resolve_hostname(conf, fallback_hostname))
