"""``cyborg-smartnic report``: what the Cyborg driver would send for a host, without sending it.

``-f json`` (or yaml) prints the ``DriverDevice`` list with Cyborg's own field names (see
docs/driver.md), so it can be diffed, reviewed or replayed. The table shows one row per
deployable (= Placement resource provider): PF, pool, resource class, VF count
and traits. The host name prefix comes from ``[smartnic] hostname``, else the FQDN.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf
from cyborg_smartnic.pools import load_report_config
from cyborg_smartnic.report import RC_KEY, plan_report, specs_to_dicts


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="show what the Cyborg driver would report (devices, pools, traits)",
        description=__doc__)
    common.add_host_arguments(parser, example_host=True)
    common.add_format_argument(parser)
    parser.set_defaults(func=common.with_example_host(run))


def run(args: argparse.Namespace) -> int:
    data = build(args)
    common.emit(data, args.format, lambda: render(data))
    return 0


def build(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Scan and map exactly as ``SmartNicDriver.discover()`` does (minus the in-use guard,
    which needs the previous report and Placement)."""
    conf = common.load_config(args)
    host = scan(Path(conf.smartnic.sysfs_root), scan_options_from_conf(conf))
    config = load_report_config(conf, host.hostname)  # FQDN, or a snapshot's etc/hostname
    return specs_to_dicts(plan_report(host, config))


def render(data: list[dict[str, Any]]) -> str:
    rows = []
    for device in data:
        pf = device["controlpath_id"]["cpid_info"]
        if not device["deployable_list"]:
            rows.append([pf, "", "", 0, "(no VFs to report)"])
        for dep in device["deployable_list"]:
            attributes = {a["key"]: a["value"] for a in dep["attribute_list"]}
            traits = sorted(v for k, v in attributes.items() if k != RC_KEY)
            pool = dep["name"].rsplit(pf, 1)[-1].lstrip("_") or "(default)"
            rows.append([pf, pool, attributes.get(RC_KEY, ""), dep["num_accelerators"],
                         "\n".join(traits)])
    total = sum(dep["num_accelerators"] for dev in data for dep in dev["deployable_list"])
    header = (f"{len(data)} devices, "
              f"{sum(len(dev['deployable_list']) for dev in data)} deployables, {total} VFs")
    return header + "\n" + common.render_table(["PF", "Pool", "Resource class", "VFs",
                                                "Traits"], rows)
