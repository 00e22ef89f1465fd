"""``cyborg-smartnic report``: what the Cyborg driver would send for a host, without sending it.

``-f json`` (or yaml) prints the ``DriverDevice`` list with Cyborg's own field names (see
docs/driver.md), so it can be diffed, reviewed or replayed. The table shows one row per
deployable (= Placement resource provider): PF, pool, resource class, VF count
and traits, under a line naming the provider-name prefix and where it came from: ``[smartnic]
hostname``, else ``[agent] resource_provider_name`` from the config files, else the agent's
default, the host's FQDN (a recorded tree's ``etc/hostname``), exactly as the driver does in
cyborg-agent. Pools without a physnet are warned about on stderr.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from cyborg_smartnic.cli import common, hostreport
from cyborg_smartnic.pools import ProviderName
from cyborg_smartnic.report import DeviceSpec


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="show what the Cyborg driver would report (devices, pools, traits)",
        description=__doc__)
    common.add_host_arguments(parser, example_host=True)
    common.add_format_argument(parser)
    parser.set_defaults(func=common.with_example_host(run))


def run(args: argparse.Namespace) -> int:
    built = hostreport.build(args)
    common.show(args, built.devices, lambda: render(built.specs, built.provider))
    for warning in built.warnings():
        common.warn(warning)
    return 0


def build(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The ``DriverDevice`` dicts the driver would send (see ``hostreport.build``)."""
    return hostreport.build(args).devices


def render(devices: Sequence[DeviceSpec], provider: ProviderName | None = None) -> str:
    rows = []
    for device in devices:
        pf = device.address
        if not device.deployables:
            rows.append([pf, "", "", 0, "(no VFs to report)"])
        for dep in device.deployables:
            pool = dep.name.rsplit(pf, 1)[-1].lstrip("_") or "(default)"
            rows.append([pf, pool, dep.resource_class, dep.num_accelerators,
                         "\n".join(dep.traits)])
    total = sum(dep.num_accelerators for dev in devices for dep in dev.deployables)
    header = (f"Provider {provider.name} (from {provider.source})\n" if provider else "")
    header += (f"{len(devices)} devices, "
              f"{sum(len(dev.deployables) for dev in devices)} deployables, {total} VFs")
    return header + "\n" + common.render_table(["PF", "Pool", "Resource class", "VFs",
                                                "Traits"], rows)
