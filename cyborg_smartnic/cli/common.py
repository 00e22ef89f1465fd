"""Arguments and output shared by every command (``-f``, ``--sysfs-root``, ``--config-file``)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml
from oslo_config import cfg
from prettytable import PrettyTable

from cyborg_smartnic import conf as smartnic_conf
from cyborg_smartnic.discovery.example import example_conf_path, unpack_example_host
from cyborg_smartnic.discovery.snapshot import recorded_config
from cyborg_smartnic.errors import ConfigError, SmartNicError
from cyborg_smartnic.yamlsource import decode_utf8

FORMATS = ("table", "json", "yaml", "value")
#: Version of every JSON/YAML document the commands print (``"format": 1``), like
#: snapshot.json's: bumped when a field changes meaning or goes away, not when one is added.
FORMAT_VERSION = 1


class UsageError(SmartNicError):
    """A command line that cannot work (exit 2, like argparse's own usage errors)."""

    msg_fmt = "%(reason)s"


def add_format_argument(parser: argparse.ArgumentParser,
                        choices: Sequence[str] = FORMATS, default: str = "table") -> None:
    """``-f FORMAT`` and ``-c COLUMN`` (repeatable), as the ``openstack`` client has them."""
    parser.add_argument("-f", "--format", choices=choices, default=default,
                        help=f"output format (default {default})")
    parser.add_argument("-c", "--column", action="append", default=[], metavar="COLUMN",
                        help="show only this field of each row (repeatable; the field names "
                             "are the JSON keys)")


def add_host_arguments(parser: argparse.ArgumentParser, *, example_host: bool = False) -> None:
    """``--sysfs-root`` and ``--config-file``: where a host is read and how it is configured.

    ``example_host`` adds ``--example-host`` (exclusive with ``--sysfs-root``) for read-only
    commands; their handler must then be wrapped in ``with_example_host``.
    """
    where = parser.add_mutually_exclusive_group() if example_host else parser
    where.add_argument("--sysfs-root", metavar="DIR",
                       help="directory holding sys/ to read instead of / (a snapshot or "
                            "generated tree); overrides [smartnic] sysfs_root")
    if example_host:
        where.add_argument("--example-host", action="store_true",
                           help="read the bundled example host (unpacked to a temporary "
                                "directory) with its example [smartnic] options; "
                                "--config-file is layered on them")
    parser.add_argument("--config-file", metavar="FILE", action="append", default=[],
                        help="cyborg.conf-style file with a [smartnic] group (repeatable: "
                             "a later file wins option by option; a snapshot's recorded "
                             "options come first)")


def load_config(args: argparse.Namespace) -> cfg.ConfigOpts:
    """A private ConfigOpts with [smartnic] read from ``--config-file``; CLI flags win.

    On an unpacked snapshot (``--sysfs-root``), the options it recorded come first and each
    ``--config-file`` is layered on them, so a replay keeps the host's physnets and pools.
    """
    conf = cfg.ConfigOpts()
    smartnic_conf.register_opts(conf)
    root = getattr(args, "sysfs_root", None)
    recorded = recorded_config(root) if root else None
    files = [*([str(recorded)] if recorded else []), *args.config_file]
    _check_text(files)
    try:
        conf(args=[], project="cyborg", default_config_files=files, use_env=False)
        smartnic_conf.register_pool_opts(conf, list(conf.smartnic.pools))
    except (cfg.Error, OSError) as exc:
        raise ConfigError(option="--config-file", reason=str(exc).splitlines()[0]) from exc
    except UnicodeDecodeError as exc:  # a pipe _check_text could not read ahead of oslo
        raise ConfigError(option="--config-file",
                          reason=f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x})") from exc
    if getattr(args, "sysfs_root", None):
        conf.set_override("sysfs_root", args.sysfs_root, group=smartnic_conf.GROUP)
    warn_unknown_options(args, conf)
    return conf


def warn_unknown_options(args: argparse.Namespace, conf: cfg.ConfigOpts) -> None:
    """Misspelled [smartnic] options, once per command (oslo.config would ignore them)."""
    if getattr(args, "unknown_options_warned", False):
        return
    args.unknown_options_warned = True
    for problem in smartnic_conf.unknown_options(list(args.config_file),
                                                 list(conf.smartnic.pools)):
        warn(problem)


def _check_text(files: Sequence[str]) -> None:
    """oslo.config raises a bare UnicodeDecodeError on a non-UTF-8 file: say which file
    and where instead (a missing or unreadable file is left to oslo.config's own message).
    Only regular files are read ahead: a pipe (``--config-file <(...)``) can be read once."""
    for name in files:
        try:
            if not stat.S_ISREG(os.stat(name).st_mode):
                continue
            with open(name, "rb") as stream:
                raw = stream.read()
        except OSError:
            continue
        decode_utf8(raw, name)


def with_example_host(command: Callable[[argparse.Namespace], int]
                      ) -> Callable[[argparse.Namespace], int]:
    """Run ``command`` on the bundled example host when ``--example-host`` was given.

    The host is unpacked into a temporary directory that lives as long as the command. The
    example's [smartnic] options come first and each ``--config-file`` is layered on them
    (a later file wins, option by option), so one file can change one option.
    """
    def handle(args: argparse.Namespace) -> int:
        if not getattr(args, "example_host", False):
            return command(args)
        with tempfile.TemporaryDirectory(prefix="cyborg-smartnic-example-") as tmp:
            args.sysfs_root = str(unpack_example_host(tmp))
            args.config_file = [str(example_conf_path()), *args.config_file]
            return command(args)
    return handle


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    table = PrettyTable(field_names=list(headers))
    table.align = "l"
    for row in rows:
        table.add_row(["" if cell is None else cell for cell in row])
    return table.get_string()


def emit(data: Any, fmt: str, table: Callable[[], str], out: TextIO | None = None) -> None:
    """Print ``data`` as JSON or YAML, or the text ``table()`` builds for ``-f table``."""
    stream = out or sys.stdout
    if fmt == "json":
        stream.write(json.dumps(data, indent=2) + "\n")
    elif fmt == "yaml":
        stream.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    else:
        stream.write(table() + "\n")


def warn(message: str) -> None:
    """One ``cyborg-smartnic: warning: ...`` line on stderr (stdout stays parseable)."""
    print(f"cyborg-smartnic: warning: {message}", file=sys.stderr)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (0 to 3600 seconds)")
    return value


def add_cloud_arguments(parser: argparse.ArgumentParser, *, os_cloud_help: str) -> None:
    """``--os-cloud`` and the budget of every API call: ``--api-timeout``, ``--attempts``,
    ``--retry-delay`` (``cyborg_smartnic.apiclient``)."""
    from cyborg_smartnic import apiclient  # noqa: PLC0415

    group = parser.add_argument_group("cloud API")
    group.add_argument("--os-cloud", metavar="NAME", default=os.environ.get("OS_CLOUD"),
                       help=os_cloud_help)
    group.add_argument("--api-timeout", type=_seconds, default=apiclient.DEFAULT_TIMEOUT,
                       metavar="SECONDS",
                       help=f"give up on one API request after this long (default "
                            f"{apiclient.DEFAULT_TIMEOUT:g})")
    group.add_argument("--attempts", type=_positive_int, default=apiclient.DEFAULT_ATTEMPTS,
                       metavar="N", help=f"tries per API call on 409/5xx/timeouts (default "
                                         f"{apiclient.DEFAULT_ATTEMPTS})")
    group.add_argument("--retry-delay", type=float, default=0.5, metavar="SECONDS",
                       help="first wait between tries, doubled each time (default 0.5)")


def retry_policy(args: argparse.Namespace) -> Any:
    """The ``apiclient.RetryPolicy`` the ``add_cloud_arguments`` flags ask for."""
    from cyborg_smartnic.apiclient import RetryPolicy  # noqa: PLC0415

    return RetryPolicy(attempts=args.attempts, first_delay=max(0.0, args.retry_delay),
                       timeout=args.api_timeout)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple) and all(not isinstance(v, dict | list) for v in value):
        return "\n".join(str(v) for v in value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _select(rows: list[Any], columns: Sequence[str]) -> list[dict[str, Any]]:
    known = list(dict.fromkeys(k for row in rows if isinstance(row, dict) for k in row))
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise UsageError(reason=f"-c {unknown[0]}: no such field; choose from "
                                f"{', '.join(known) or '(none: nothing to show)'}")
    return [{c: row.get(c) for c in columns} for row in rows if isinstance(row, dict)]


def versioned(data: Any, wrap: str | None = None) -> Any:
    """``data`` with ``"format": FORMAT_VERSION`` first; a list is wrapped as ``{wrap: data}``
    (kept a bare list when ``wrap`` is None: ``report``'s list of Cyborg objects)."""
    if isinstance(data, dict):
        return {"format": FORMAT_VERSION, **data}
    if wrap is not None:
        return {"format": FORMAT_VERSION, wrap: data}
    return data


def show(args: argparse.Namespace, data: Any, table: Callable[[], str], *,
         rows: str | None = None, wrap: str | None = None, out: TextIO | None = None) -> None:
    """Print ``data`` the way ``-f`` and ``-c`` ask.

    ``rows`` names the list inside a dict ``data`` that ``-c``/``-f value`` work on (a list
    ``data`` is its own rows; a dict without ``rows`` is one row). JSON/YAML carry
    ``"format"`` (see ``versioned``); ``-c`` prints just the chosen fields of each row
    (a table of them, their values, or a JSON/YAML list); ``-f table`` without ``-c`` is the
    command's own view, ``table()``.
    """
    stream = out or sys.stdout
    fmt = getattr(args, "format", "table")
    columns = list(getattr(args, "column", None) or [])
    if isinstance(data, list):
        items: list[Any] = data
    elif rows is not None:
        items = list(data.get(rows) or [])
    else:
        items = [data]
    if columns or fmt == "value":
        picked = _select(items, columns) if columns else [r for r in items if isinstance(r, dict)]
        if fmt == "value":
            stream.write("".join(" ".join(_cell(v).replace("\n", ",") for v in row.values())
                                 + "\n" for row in picked))
            return
        if fmt == "table":
            headers = list(picked[0]) if picked else columns
            stream.write(render_table(headers, [[_cell(row.get(h)) for h in headers]
                                                for row in picked]) + "\n")
            return
        single = not isinstance(data, list) and rows is None
        emit(picked[0] if single and picked else picked, fmt, table, stream)
        return
    emit(versioned(data, wrap) if fmt in ("json", "yaml") else data, fmt, table, stream)

