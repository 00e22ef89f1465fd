"""``cyborg-smartnic snapshot``: record what discovery reads from a host, for a bug report.

The archive holds exactly the sysfs files and links discovery reads (with their real
content), the devlink/mstconfig output it uses and a ``snapshot.json`` manifest (tool
version, date, hostname, the ``discover`` JSON). It contains MAC addresses, board serial
numbers, PCI addresses, interface names and the kernel command line: nothing else from the
host. Unpack it (``tar -xzf``) and pass the ``snapshot-<host>`` directory as ``--sysfs-root``
to any command: discovery gives the same answer as on the host. Set ``SOURCE_DATE_EPOCH`` to
fix the manifest's date; with it, two snapshots of an unchanged host are byte-identical.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery import snapshot as snap
from cyborg_smartnic.discovery.scan import scan_options_from_conf
from cyborg_smartnic.host.ovs import snapshot as ovs_snapshot


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "snapshot", help="record what discovery reads (sysfs, devlink) into a .tar.gz; "
                         "contains MAC addresses and serial numbers",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", metavar="FILE.tar.gz", required=True,
                        help="archive to write (replaced atomically, mode 0600)")
    common.add_host_arguments(parser)
    common.add_format_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    conf = common.load_config(args)
    options = scan_options_from_conf(conf)
    root = str(conf.smartnic.sysfs_root)
    taken = snap.take(Path(root), options, created=snap.created_at(),
                      extra=lambda host: ovs_snapshot.answers(root, host),
                      config=snap.recorded_options(conf))
    size = snap.write(taken, args.output)
    host = taken.host
    vfs = sum(len(pf.virtual_functions) for pf in host.physical_functions)
    omitted = f", {len(taken.omitted)} left out (see warnings)" if taken.omitted else ""
    data = {"path": args.output, "bytes": size, "hostname": host.hostname,
            "physical_functions": len(host.physical_functions), "virtual_functions": vfs,
            "files": taken.count(snap.FILE), "links": taken.count(snap.LINK),
            "directories": taken.count(snap.DIR), "omitted": len(taken.omitted),
            "top": taken.top}
    common.show(args, data, lambda: (
        f"wrote {args.output} ({size} bytes): {host.hostname}, "
        f"{len(host.physical_functions)} PFs, {vfs} VFs; {taken.count(snap.FILE)} files, "
        f"{taken.count(snap.LINK)} links, {taken.count(snap.DIR)} directories{omitted}; "
        f"unpacks to {taken.top}/"))
    return 0
