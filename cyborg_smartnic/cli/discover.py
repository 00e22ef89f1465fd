"""``cyborg-smartnic discover``: show what discovery sees on a host (or a recorded tree).

Table: one line per PF. ``VFs`` is ``enabled/total`` (``sriov_numvfs``/``sriov_totalvfs``),
followed by how many of the listed VFs are on vfio-pci (ready for a VM) when any are, e.g.
``4/8 (2 vfio)``. ``-v`` adds one line per VF. Skipped devices and their reasons follow the
table. ``-f json|yaml`` prints ``discovery.export.host_to_dict`` (documented in docs/discovery.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cyborg_smartnic.catalog import VFIO_DRIVER as VFIO
from cyborg_smartnic.cli import common
from cyborg_smartnic.cli import watch as watch_cli
from cyborg_smartnic.discovery.export import host_to_dict
from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf
from cyborg_smartnic.discovery.sysfs import check_root


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "discover", help="show the SmartNICs, VFs and skipped devices discovery sees",
        description=__doc__)
    common.add_host_arguments(parser, example_host=True)
    common.add_format_argument(parser)
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="list every VF (table)")
    watch_cli.add_arguments(parser)
    parser.set_defaults(func=_handler(parser))


def _handler(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        if watch_cli.requested(args, parser):
            return watch_cli.run(args)
        return common.with_example_host(run)(args)
    return handle


def run(args: argparse.Namespace) -> int:
    host = discover(args)
    common.show(args, host_to_dict(host), lambda: render(host, args.verbose),
                rows="physical_functions")
    return 0


def discover(args: argparse.Namespace) -> Host:
    conf = common.load_config(args)
    options = scan_options_from_conf(conf)
    check_root(conf.smartnic.sysfs_root)
    return scan(Path(conf.smartnic.sysfs_root), options)


def firmware_text(pf: PhysicalFunction) -> str:
    version = pf.firmware.version or ""
    if pf.firmware.mode:
        return f"{version} ({pf.firmware.mode})".strip()
    return version


def vfs_text(pf: PhysicalFunction) -> str:
    text = f"{pf.num_vfs}/{pf.total_vfs}"
    vfio = sum(1 for vf in pf.virtual_functions if vf.driver == VFIO)
    return f"{text} ({vfio} vfio)" if vfio else text


def render(host: Host, verbose: bool = False) -> str:
    """The human view: PF table, optional VF table, skipped list."""
    parts = [f"Host {host.hostname}: {len(host.physical_functions)} SmartNIC PFs, "
             f"{sum(len(pf.virtual_functions) for pf in host.physical_functions)} VFs, "
             f"IOMMU {'on' if host.iommu_enabled else 'off'}"]
    rows = [[str(pf.address), pf.netdev, pf.model, pf.driver, pf.eswitch_mode,
             firmware_text(pf), vfs_text(pf), pf.physnet, pf.numa_node]
            for pf in host.physical_functions]
    parts.append(common.render_table(
        ["Address", "Netdev", "Model", "Driver", "Eswitch", "Firmware", "VFs", "Physnet",
         "NUMA"], rows))
    if verbose:
        vf_rows = [[str(pf.address), vf.index, str(vf.address), vf.device_id, vf.driver,
                    vf.netdev, vf.iommu_group]
                   for pf in host.physical_functions for vf in pf.virtual_functions]
        parts.append(common.render_table(
            ["PF", "VF", "Address", "Device", "Driver", "Netdev", "IOMMU group"], vf_rows))
    if host.skipped:
        parts.append("Skipped:")
        parts.extend(f"  {s.address}: {s.reason}" for s in host.skipped)
    return "\n".join(parts)
