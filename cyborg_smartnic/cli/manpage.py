"""Write the ``cyborg-smartnic(1)`` man page from the argparse definitions, so it cannot drift.

``python -m cyborg_smartnic.cli.manpage > docs/cyborg-smartnic.1`` (``make man``); a unit test
checks the committed page is what this prints. Every subcommand gets a section with its
usage, description and options, in the order ``--help`` shows them.
"""

from __future__ import annotations

import argparse
import sys

from cyborg_smartnic import __version__
from cyborg_smartnic.cli.main import build_parser, subparsers

SEE_ALSO = ("cyborg-agent(1), openstack(1), oslo-config-generator(1); the guides in the "
            "source tree's docs/ (driver.md, profiles.md, host.md, deploy.md)")
WIDTH = 78  # usage lines are wrapped here, not at the width of the terminal that ran this


def _escape(text: str) -> str:
    """Roff-safe text: backslashes doubled, hyphens as \\-, no line starting a request."""
    lines = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _options(parser: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(f"\\fB{_escape(o)}\\fR" for o in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (action.dest.upper() if not action.choices else
                                         "{" + ",".join(map(str, action.choices)) + "}")
            flags += f" \\fI{_escape(str(metavar))}\\fR"
        out += [".TP", flags, _escape(action.help or "")]
    for action in parser._actions:
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
            out += [".TP", f"\\fI{_escape(str(action.metavar or action.dest))}\\fR",
                    _escape(action.help or "")]
    return out


def render(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or build_parser()
    lines = [f'.TH CYBORG\\-SMARTNIC 1 "" "cyborg\\-smartnic {__version__}" "User Commands"',
             ".SH NAME", f"cyborg\\-smartnic \\- {_escape(parser.description or '')}",
             ".SH SYNOPSIS", ".B cyborg\\-smartnic",
             "[\\fB\\-\\-debug\\fR] [\\fB\\-v\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]",
             ".SH DESCRIPTION",
             "Every command that reads a host takes \\fB\\-\\-sysfs\\-root\\fR \\fIDIR\\fR "
             "and \\fB\\-\\-config\\-file\\fR \\fIFILE\\fR; every command that prints data "
             "takes \\fB\\-f\\fR \\fIFORMAT\\fR and \\fB\\-c\\fR \\fICOLUMN\\fR.",
             ".SH GLOBAL OPTIONS", *_options(parser), ".SH COMMANDS"]
    for name, sub in subparsers(parser):
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            continue  # a group such as "host": its actions have their own sections
        formatter = argparse.HelpFormatter(sub.prog, width=WIDTH)
        formatter.add_usage(sub.usage, sub._actions, sub._mutually_exclusive_groups, prefix="")
        usage = formatter.format_help().strip()
        lines += [f'.SS "{_escape(name)}"', ".nf", _escape(usage), ".fi"]
        if sub.description:
            lines += [".PP", _escape(sub.description)]
        lines += _options(sub)
    lines += [".SH EXIT STATUS",
              "0 on success, 1 on a user error (one line on standard error naming the file, "
              "line and field), 2 on a usage error.",
              ".SH SEE ALSO", _escape(SEE_ALSO)]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
