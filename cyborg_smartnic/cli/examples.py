"""``cyborg-smartnic examples``: where the example device profiles and host.yaml are.

In a source checkout they are ``profiles/`` and ``deploy/host.example.yaml``; a pip install
puts them under ``<prefix>/share/cyborg-smartnic/``. Use the printed paths with the
``profile`` and ``host`` commands.
"""

from __future__ import annotations

import argparse
from typing import Any

from cyborg_smartnic import examples
from cyborg_smartnic.cli import common


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "examples", help="print where the example profiles and host.yaml are",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_format_argument(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    found = examples.find()
    data = {"profiles": str(found.profiles), "host_config": str(found.host_config)}
    common.show(args, data, lambda: common.render_table(["Example", "Path"], list(data.items())))
    return 0
