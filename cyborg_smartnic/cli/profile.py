"""`cyborg-smartnic profile validate|render|apply|check`: YAML device profiles.

Every subcommand validates every file given before it does anything else; errors are printed
one per line as ``FILE:LINE:COL: field: message`` on stderr, then the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.profiles import render as render_mod
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import ProfileValidationError, load_profiles
from cyborg_smartnic.profiles.spec import ProfileSpec


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "profile", help="validate, render, apply and check YAML device profiles",
        description="YAML device profiles compiled into Cyborg device profiles and Nova "
                    "flavor extra specs.")
    sub = parser.add_subparsers(dest="profile_command", metavar="ACTION", required=True)

    validate = sub.add_parser("validate", help="check profile files; exit 1 on any error")
    _add_paths(validate)
    validate.set_defaults(func=run_validate)

    render = sub.add_parser("render", help="print what the profiles compile to")
    _add_paths(render)
    common.add_format_argument(render, choices=render_mod.FORMATS, default="json")
    render.set_defaults(func=run_render)


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="profile file, or directory of *.yaml/*.yml profile files")


def load_or_report(paths: list[str]) -> list[ProfileSpec]:
    """Load every profile; on errors print each line to stderr and raise the summary."""
    try:
        return load_profiles(paths)
    except ProfileValidationError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        raise


def run_validate(args: argparse.Namespace) -> int:
    profiles = load_or_report(args.paths)
    files = len({p.source.rsplit(":", 1)[0] for p in profiles})
    print(f"{len(profiles)} profile(s) in {files} file(s): valid")
    return 0


def run_render(args: argparse.Namespace) -> int:
    compiled = compile_all(load_or_report(args.paths))
    sys.stdout.write(render_mod.render(compiled, args.format))
    return 0
