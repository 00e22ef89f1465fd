"""The man page is generated from the argparse definitions (and committed current); shell
completion goes through argcomplete against the same parser."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cyborg_smartnic.cli import manpage
from cyborg_smartnic.cli.main import build_parser, subparsers

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs/cyborg-smartnic.1"


def test_the_man_page_names_every_command_and_option() -> None:
    text = manpage.render()
    assert text.startswith(".TH CYBORG\\-SMARTNIC 1 ")
    for name, parser in subparsers(build_parser()):
        if not any(a.__class__.__name__ == "_SubParsersAction" for a in parser._actions):
            assert f'.SS "{manpage._escape(name)}"' in text, name
            for action in parser._actions:
                for option in action.option_strings:
                    assert f"\\fB{option.replace('-', chr(92) + '-')}\\fR" in text, (name, option)


def test_the_committed_man_page_is_current() -> None:
    """If this fails: make man (python -m cyborg_smartnic.cli.manpage > docs/cyborg-smartnic.1)"""
    assert PAGE.read_text() == manpage.render()


@pytest.mark.skipif(shutil.which("groff") is None and shutil.which("man") is None,
                    reason="needs man or groff to render the page")
def test_man_renders_the_page_without_warnings() -> None:
    tool = ["man", "-l", "-Tutf8", str(PAGE)] if shutil.which("man") else \
        ["groff", "-man", "-Tutf8", "-ww", str(PAGE)]
    done = subprocess.run(tool, capture_output=True, text=True, check=False, timeout=60,
                          env={**os.environ, "MANWIDTH": "80"})
    assert done.returncode == 0, done.stderr
    assert "host plan" in done.stdout and "--api-timeout" in done.stdout.replace("\u2010", "-")


def _complete(line: str, tmp_path: Path) -> list[str]:
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash",
           "COMP_LINE": line, "COMP_POINT": str(len(line)), "_ARGCOMPLETE_IFS": "\n",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "cyborg_smartnic.cli.main"], env=env, check=False,
                   capture_output=True, timeout=60)
    return sorted(out.read_text().split("\n")) if out.exists() else []


def test_completion_offers_commands_and_options(tmp_path: Path) -> None:
    assert {"discover", "report", "profile", "host"} <= set(
        w.strip() for w in _complete("cyborg-smartnic ", tmp_path))
    assert {"plan", "apply", "doctor", "conf"} <= set(
        w.strip() for w in _complete("cyborg-smartnic host ", tmp_path))
    assert "--api-timeout" in {w.strip() for w in _complete("cyborg-smartnic host plan --api",
                                                              tmp_path)}
