"""``python -m cyborg_smartnic.hostgen``: write the bundled example host, or build a named
scenario into a directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cyborg_smartnic.hostgen.bundle import write_example
from cyborg_smartnic.hostgen.scenarios import SCENARIOS, build_scenario


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Generate sysfs trees.")
    parser.add_argument("--write-example", metavar="DATA_DIR", type=Path,
                        help="regenerate the bundled example host files in DATA_DIR")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--root", type=Path, help="build --scenario into this directory")
    args = parser.parse_args(argv)
    if args.write_example:
        write_example(args.write_example)
    if args.scenario:
        if not args.root:
            parser.error("--scenario needs --root")
        build_scenario(args.root, args.scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
