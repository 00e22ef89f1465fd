"""The report of one host as the driver would send it, for every command that needs it.

``report``, ``profile check`` and ``host doctor`` all name the pools with
``pools.provider_name``, the function the driver itself uses inside cyborg-agent, so the names
they print are the names Placement will hold. Outside the agent the ``[agent]
resource_provider_name`` option is read from the ``--config-file`` files; when no file sets
it, the agent's own default applies: the host's FQDN (a recorded tree's ``etc/hostname``).
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from oslo_config import cfg

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.sysfs import check_root
from cyborg_smartnic.pools import (
    AGENT_GROUP,
    AGENT_NAME_OPT,
    ProviderName,
    ReportConfig,
    provider_name,
    report_config_from_conf,
)
from cyborg_smartnic.report import DeviceSpec, plan_report, specs_to_dicts
from cyborg_smartnic.reportcheck import (
    PHYSNET_REMEDY,
    physnet_problem,
    physnet_warning,
    pools_without_physnet,
)


@dataclass(frozen=True)
class HostReport:
    host: Host
    provider: ProviderName
    config: ReportConfig
    specs: tuple[DeviceSpec, ...]

    @cached_property
    def devices(self) -> list[dict[str, Any]]:
        """The report as ``report -f json`` prints it (``specs_to_dicts``)."""
        return specs_to_dicts(self.specs)

    def warnings(self) -> list[str]:
        return [physnet_warning(name) for name in pools_without_physnet(self.devices)]


def register_agent_name(conf: cfg.ConfigOpts) -> None:
    """Read ``[agent] resource_provider_name`` from the files; no default (see above)."""
    if AGENT_GROUP not in conf or AGENT_NAME_OPT not in conf[AGENT_GROUP]:
        conf.register_opt(cfg.StrOpt(AGENT_NAME_OPT), group=AGENT_GROUP)


def host_provider(conf: cfg.ConfigOpts, host: Host) -> ProviderName:
    root = str(conf.smartnic.sysfs_root)
    recorded = os.path.realpath(root) != "/" and Path(root, "etc/hostname").is_file()
    source = ("the recorded tree's etc/hostname (socket.getfqdn() on that host)" if recorded
              else "socket.getfqdn(), cyborg-agent's default [agent] resource_provider_name")
    register_agent_name(conf)
    return provider_name(conf, host.hostname or socket.getfqdn(), source)


def build(args: argparse.Namespace) -> HostReport:
    """Scan and map exactly as ``SmartNicDriver.discover()`` does (minus the in-use guard,
    which needs the previous report and Placement)."""
    from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf  # noqa: PLC0415

    conf = common.load_config(args)
    check_root(conf.smartnic.sysfs_root)  # a mistyped root is an error, not an empty host
    host = scan(Path(conf.smartnic.sysfs_root), scan_options_from_conf(conf))
    provider = host_provider(conf, host)
    config = report_config_from_conf(conf, provider.name)
    return HostReport(host, provider, config, plan_report(host, config))


def doctor_checks(args: argparse.Namespace) -> tuple[Any, ...]:
    """``host doctor``'s view of the report: one warning per pool without a physnet."""
    from cyborg_smartnic.host.doctor import OK, WARN, Check  # noqa: PLC0415

    built = build(args)
    missing = pools_without_physnet(built.devices)
    if not missing:
        pools = sum(len(d["deployable_list"]) for d in built.devices)
        return (Check("physnet", OK, f"all {pools} pool(s) have a physnet"),) if pools else ()
    return tuple(Check("physnet", WARN, physnet_problem(name), PHYSNET_REMEDY)
                 for name in missing)
