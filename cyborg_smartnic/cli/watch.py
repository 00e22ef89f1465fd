"""``cyborg-smartnic discover --watch``: the live host's state, then one JSON line per change.

Not a command of its own: ``cli/discover.py`` adds these options and hands over when
``--watch`` is given. The first line is ``{"event": "initial", "host": <discover -f json>}``,
the state every later diff applies to; then each change is ``{"event", "devices", "diff":
{"added", "removed", "changed"}}`` (see ``discovery.watch``). Lines are flushed one by one
so a pipe sees them at once.
Ctrl-C (SIGINT) or a closed pipe ends the watch quietly with exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery.export import host_to_dict
from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf
from cyborg_smartnic.discovery.watch import (
    DEFAULT_DEBOUNCE,
    EventSource,
    UdevEventSource,
    WatchLimits,
    watch,
)

INITIAL = "initial"

# How the event source is opened for a root; tests replace it with a synthetic source.
open_source: Callable[[str], EventSource] = UdevEventSource.open


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < 86400 * 365:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (0 or more seconds)")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "watching", "follow udev events on the live host (not with --sysfs-root); prints the "
                    "host as a first JSON line, then one line per change, nothing when a rescan "
                    "changes nothing")
    group.add_argument("--watch", action="store_true",
                       help="after the first scan, rescan on PCI and netdev events")
    group.add_argument("--debounce", type=_seconds, metavar="SECONDS",
                       help=f"quiet time that ends a burst of events (default "
                            f"{DEFAULT_DEBOUNCE:g})")
    group.add_argument("--watch-for", type=_seconds, metavar="SECONDS",
                       help="stop after this many seconds (default: until Ctrl-C)")
    group.add_argument("--max-events", type=_count, metavar="N",
                       help="stop after printing N change lines")


def requested(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bool:
    """Whether to watch; usage errors for watch options that cannot apply."""
    extras = [flag for flag, value in (("--debounce", args.debounce),
                                       ("--watch-for", args.watch_for),
                                       ("--max-events", args.max_events)) if value is not None]
    if not args.watch:
        if extras:
            parser.error(f"{extras[0]} needs --watch")
        return False
    if getattr(args, "example_host", False):
        parser.error("--watch needs the live host, not --example-host")
    if args.format in ("yaml", "value") or getattr(args, "verbose", False) or \
            getattr(args, "column", None):
        parser.error("--watch prints JSON lines: -f yaml/value, -c and -v do not apply")
    return True


def _print_line(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def initial_line(host: dict[str, Any]) -> dict[str, Any]:
    return {"event": INITIAL, "host": host}


def run(args: argparse.Namespace) -> int:
    """Watch until a limit, Ctrl-C or a closed stdout; exit 0 in each case."""
    source: EventSource | None = None
    try:
        conf = common.load_config(args)
        options = scan_options_from_conf(conf)
        root = str(conf.smartnic.sysfs_root)
        source = open_source(root)  # before the first scan, so no event falls in between
        limits = WatchLimits(
            debounce=DEFAULT_DEBOUNCE if args.debounce is None else args.debounce,
            watch_for=args.watch_for, max_changes=args.max_events)
        shown = False

        def rescan() -> dict[str, Any]:
            nonlocal shown
            host = host_to_dict(scan(root, options))
            if not shown:  # the first scan: print the state the diffs will apply to
                shown = True
                _print_line(initial_line(host))
            return host

        watch(source, rescan, _print_line, limits)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # Whoever read our output is gone; keep the interpreter from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        if source is not None:
            source.close()
    return 0
