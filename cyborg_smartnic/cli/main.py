# PYTHON_ARGCOMPLETE_OK  (lets argcomplete's global completion find this script)
"""Entry point of ``cyborg-smartnic``: parses arguments, runs one command, maps errors to exits.

Exit codes: 0 success, 1 a user error (one line on stderr, never a traceback), 2 usage error
(argparse). Each command lives in its own module exposing ``register(subparsers)``. Options
every command takes (``--debug``, ``-v``) are accepted before and after the subcommand, and
usage errors show the usage of the subcommand they are about.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence

from cyborg_smartnic import __version__
from cyborg_smartnic.errors import SmartNicError, SourceErrors

COMMAND_MODULES = ("discover", "snapshot", "report", "profile", "host", "examples")
_RST_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def plain(text: str | None) -> str | None:
    """Help text without reStructuredText markup (the docstrings use ``literal``)."""
    if text is None or text is argparse.SUPPRESS:
        return text
    return _RST_LITERAL.sub(lambda m: m.group(1) or m.group(2), text)


def subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser under ``parser``, depth first, as ``("host plan", parser)``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for child, deeper in subparsers(sub):
                    yield f"{name} {child}", deeper


def _everywhere(parser: argparse.ArgumentParser) -> None:
    """Common options on every subcommand, plain help texts, and each parser remembered so a
    usage error names the subcommand's own usage."""
    for _, sub in [("", parser), *subparsers(parser)]:
        options = {o for action in sub._actions for o in action.option_strings}
        if sub is not parser:
            if "--debug" not in options:
                sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                 help="log debug messages to stderr")
            if "-v" not in options:
                sub.add_argument("-v", "--verbose", action="store_true",
                                 default=argparse.SUPPRESS, help="more detail where there is any")
        sub.set_defaults(cli_parser=sub)
        sub.description = plain(sub.description)
        for action in sub._actions:
            action.help = plain(action.help)
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    choice.help = plain(choice.help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyborg-smartnic",
        description="SmartNIC virtual functions as OpenStack Cyborg accelerators.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages to stderr")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more detail where there is any (discover: every VF)")
    subparsers_action = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cyborg_smartnic.cli.{name}")
        module.register(subparsers_action)
    _everywhere(parser)
    return parser


def _complete(parser: argparse.ArgumentParser) -> None:
    """Shell completion through argcomplete, when the shell asks for it (else a no-op)."""
    try:
        import argcomplete  # noqa: PLC0415
    except ImportError:  # pragma: no cover - a dependency, but completion is optional
        return
    argcomplete.autocomplete(parser)


def main(argv: Sequence[str] | None = None) -> int:
    from cyborg_smartnic.cli.common import UsageError  # noqa: PLC0415

    parser = build_parser()
    _complete(parser)
    args, extra = parser.parse_known_args(argv)
    used: argparse.ArgumentParser = getattr(args, "cli_parser", parser)
    if extra:
        used.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result: int = args.func(args)
    except UsageError as exc:
        used.print_usage(sys.stderr)
        print(f"{used.prog}: error: {exc}", file=sys.stderr)
        return 2
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
