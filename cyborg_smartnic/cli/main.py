"""Entry point of ``cyborg-smartnic``: parses arguments, runs one command, maps errors to exits.

Exit codes: 0 success, 1 a user error (one line on stderr, never a traceback), 2 usage error
(argparse). Each command lives in its own module exposing ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cyborg_smartnic import __version__
from cyborg_smartnic.errors import SmartNicError, SourceErrors

COMMAND_MODULES = ("discover", "snapshot", "report", "profile", "host", "examples")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyborg-smartnic",
        description="SmartNIC virtual functions as OpenStack Cyborg accelerators.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cyborg_smartnic.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result: int = args.func(args)
    except SourceErrors as exc:
        for error in exc.errors:  # one FILE:LINE:COL: field: message line each
            print(error, file=sys.stderr)
        print(f"cyborg-smartnic: error: {exc}", file=sys.stderr)
        return 1
    except SmartNicError as exc:
        print(f"cyborg-smartnic: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
