"""The shipped sudoers rule, matched the way sudo matches it, plus the wrapper it names.

sudo (``match_command.c``) compares the command's path exactly and its arguments, joined by
single spaces, against the rule's argument pattern with ``fnmatch(3)`` and no flags: ``*``
matches anything, spaces and slashes included. We parse the shipped file and call the C
library's own ``fnmatch`` (sudo's, on glibc systems). ``sudo`` itself is not installed
here, so ``visudo -c`` and ``sudo -l`` are not run.

"Reaches root" is what an operator in the group can start: sudo allows the command line
and, when it is our wrapper, the wrapper accepts the arguments too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from oslo_config import cfg

from cyborg_smartnic.host import firmware_privileged, privileged, privsep_helper

SUDOERS = Path(__file__).resolve().parents[2] / "etc/sudoers.d/cyborg-smartnic"
GROUP = "cyborg-smartnic"
WRAPPER = "/usr/local/bin/cyborg-smartnic-privsep-helper"
CONTEXT = "cyborg_smartnic.host.privileged.context"
FIRMWARE_CONTEXT = "cyborg_smartnic.host.firmware_privileged.context"
SOCK = "/tmp/tmpk3_x9a0q/privsep.sock"
OLD_RULE = """\
Cmnd_Alias CYBORG_SMARTNIC_PRIVSEP = /usr/bin/privsep-helper --privsep_context \
cyborg_smartnic.host.privileged.context --privsep_sock_path *
%cyborg-smartnic ALL = (root) NOPASSWD: CYBORG_SMARTNIC_PRIVSEP
"""

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]


def fnmatch(pattern: str, text: str) -> bool:
    return _libc.fnmatch(pattern.encode(), text.encode(), 0) == 0


@dataclass(frozen=True)
class Command:
    path: str
    args: str | None  # None: any arguments; '""': none


def _unescape(text: str) -> str:
    return re.sub(r"\\([,:=\\ ])", r"\1", text)


def parse(text: str) -> dict[str, list[Command]]:
    """``{"%group": [Command...]}`` from the subset of sudoers syntax a drop-in uses."""
    text = text.replace("\\\n", " ")
    aliases: dict[str, list[str]] = {}
    grants: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("Cmnd_Alias "):
            name, _, body = line[len("Cmnd_Alias "):].partition("=")
            aliases[name.strip()] = [c.strip() for c in re.split(r"(?<!\\),", body)]
            continue
        who, _, rest = line.partition(" ")
        spec = rest.split("=", 1)[1]
        spec = re.sub(r"^\s*\([^)]*\)\s*", "", spec)
        spec = re.sub(r"^(?:[A-Z_]+:\s*)+", "", spec.strip())
        grants.setdefault(who, []).extend(c.strip() for c in re.split(r"(?<!\\),", spec))
    result: dict[str, list[Command]] = {}
    for who, items in grants.items():
        for item in items:
            for cmnd in aliases.get(item, [item]):
                path, _, args = cmnd.partition(" ")
                result.setdefault(who, []).append(
                    Command(path, _unescape(args.strip()) if args.strip() else None))
    return result


def sudo_allows(rules: dict[str, list[Command]], argv: list[str]) -> bool:
    user_args = " ".join(argv[1:])
    for command in rules.get(f"%{GROUP}", []):
        if command.path != argv[0]:
            continue
        if command.args is None:
            return True
        if command.args == '""':
            return len(argv) == 1
        if fnmatch(command.args, user_args):
            return True
    return False


def reaches_root(rules: dict[str, list[Command]], argv: list[str]) -> bool:
    if not sudo_allows(rules, argv):
        return False
    if argv[0].endswith("/" + privsep_helper.SCRIPT):
        try:
            privsep_helper.check_argv(argv[1:])
        except privsep_helper.Refused:
            return False
    return True  # anything else sudo allows runs as root unchecked


LEGIT = [WRAPPER, "--privsep_context", CONTEXT, "--privsep_sock_path", SOCK]
FIRMWARE = [WRAPPER, "--privsep_context", FIRMWARE_CONTEXT, "--privsep_sock_path", SOCK]
APPENDED = ["--privsep_context", "os_brick.privileged.default", "--privsep_sock_path", SOCK]
ATTACKS = {
    "another context appended": [*LEGIT, *APPENDED],
    "appended inside the socket argument": [*LEGIT[:4], f"{SOCK} {' '.join(APPENDED)}"],
    "another context instead of ours": [WRAPPER, "--privsep_context",
                                        "os_brick.privileged.default", "--privsep_sock_path",
                                        SOCK],
    "socket path with ..": [*LEGIT[:4], "/tmp/tmp......../privsep.sock"],
    "socket elsewhere": [*LEGIT[:4], "/run/tmpk3_x9a0q/privsep.sock"],
    "config file smuggled": [*LEGIT, "--config-file", "/home/op/evil.conf"],
    "generic privsep-helper, our context": ["/usr/bin/privsep-helper", "--privsep_context",
                                            CONTEXT, "--privsep_sock_path", SOCK],
    "generic privsep-helper, another context appended": [
        "/usr/bin/privsep-helper", "--privsep_context", CONTEXT, "--privsep_sock_path", SOCK,
        *APPENDED],
    "generic privsep-helper, other context": ["/usr/bin/privsep-helper", *APPENDED],
    "the wrapper from another path": ["/home/op/bin/cyborg-smartnic-privsep-helper",
                                      *LEGIT[1:]],
    "no arguments": [WRAPPER],
    "firmware context, another context appended": [*FIRMWARE, *APPENDED],
    "firmware context, socket elsewhere": [*FIRMWARE[:4], "/run/tmpk3_x9a0q/privsep.sock"],
    "a made-up sibling context": [WRAPPER, "--privsep_context",
                                  "cyborg_smartnic.host.beneath.context",
                                  "--privsep_sock_path", SOCK],
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[Command]]:
    return parse(SUDOERS.read_text())


def test_fnmatch_is_sudos_star_matches_spaces() -> None:
    """The premise of the attack: a trailing ``*`` swallows any number of arguments."""
    assert fnmatch("--privsep_sock_path *", "--privsep_sock_path /s --privsep_context x y")
    assert not fnmatch("/tmp/tmp[a-z0-9_]", "/tmp/tmp ")


def test_the_operator_command_is_allowed(shipped: dict[str, list[Command]]) -> None:
    """Exactly two command lines, the wrapper with each of our two contexts."""
    rules = shipped[f"%{GROUP}"]
    assert [rule.path for rule in rules] == [WRAPPER, WRAPPER]
    assert [rule.args.split()[1] for rule in rules if rule.args] == [CONTEXT, FIRMWARE_CONTEXT]
    assert all("*" not in (rule.args or "*") for rule in rules)
    sock = privsep_helper.SOCKET_PARENT + "/tmp" + "abcdefghijklmnopqrstuvwxyz0123456789_"[:8]
    for legit in (LEGIT, FIRMWARE):
        assert reaches_root(shipped, legit)
        assert reaches_root(shipped, [*legit[:4], sock + "/privsep.sock"])


@pytest.mark.parametrize("argv", ATTACKS.values(), ids=ATTACKS.keys())
def test_no_other_command_line_reaches_root(shipped: dict[str, list[Command]],
                                            argv: list[str]) -> None:
    assert not reaches_root(shipped, argv)
    assert not sudo_allows(shipped, argv), "the rule itself must already fix every argument"


def test_the_old_rule_let_any_context_through() -> None:
    """What the issue reproduced, with the rule this project shipped before."""
    old = parse(OLD_RULE)
    assert reaches_root(old, ATTACKS["generic privsep-helper, another context appended"])
    assert reaches_root(old, [*ATTACKS["generic privsep-helper, our context"][:4],
                              f"{SOCK} --config-file /home/op/evil.conf"])


@pytest.mark.parametrize("module", [privileged, firmware_privileged],
                         ids=["privileged", "firmware_privileged"])
def test_what_the_client_runs_matches_the_rule(shipped: dict[str, list[Command]],
                                               monkeypatch: pytest.MonkeyPatch,
                                               module: ModuleType) -> None:
    """The command a non-root ``host apply`` builds (oslo.privsep's own helper_command, after
    ``use_sudo``) with a socket dir really made by mkdtemp, against the shipped rule with
    this install's wrapper path put in, as docs/host.md's sed does for a virtualenv."""
    monkeypatch.setattr(tempfile, "tempdir", None)  # restored afterwards
    privsep_helper.use_sudo(cfg.CONF, module.CONFIG_SECTION)
    try:
        sockdir = tempfile.mkdtemp()
        try:
            context = module.context
            argv = type(context).helper_command(context, os.path.join(sockdir, "privsep.sock"))
        finally:
            os.rmdir(sockdir)
    finally:
        cfg.CONF.set_default("helper_command", None, group=module.CONFIG_SECTION)
    assert argv[:2] == ["sudo", "--non-interactive"]
    assert argv[2] == privsep_helper.script_path()
    assert argv[2].endswith("/cyborg-smartnic-privsep-helper") and os.path.isabs(argv[2])
    rule = parse(SUDOERS.read_text().replace(WRAPPER, argv[2]))
    assert reaches_root(rule, argv[2:]), argv
