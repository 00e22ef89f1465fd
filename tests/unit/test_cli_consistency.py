"""Commands behave alike: -f/-c everywhere data is printed, a format version in JSON, common
options after the subcommand, usage errors about the subcommand, help without RST markup."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from cyborg_smartnic.cli.main import build_parser, main, subparsers
from cyborg_smartnic.examples import find as find_examples

EXAMPLES = find_examples()
PROFILES = str(EXAMPLES.profiles)
HOST_YAML = str(EXAMPLES.host_config)

#: every command that prints data, with arguments that make it run on the example host
DATA_COMMANDS = {
    "discover": ["--example-host"],
    "report": ["--example-host"],
    "examples": [],
    "profile validate": [PROFILES],
    "profile render": [PROFILES],
    "profile check": ["--example-host", PROFILES],
    "host plan": ["--example-host", HOST_YAML],
    "host doctor": ["--example-host"],
    "host conf": ["--example-host", HOST_YAML],
}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}


def test_every_command_that_prints_data_has_format_and_column() -> None:
    parsers = dict(subparsers(build_parser()))
    leaves = {name for name, p in parsers.items()
              if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)}
    without = sorted(n for n in leaves if not {"-f", "-c"} <= _options(parsers[n]))
    assert without == []  # snapshot and apply print data too (what they wrote / applied)
    for name, parser in parsers.items():
        assert {"--debug", "-v"} <= _options(parser), name


@pytest.mark.parametrize("command", sorted(DATA_COMMANDS))
def test_json_and_yaml_carry_the_format_version(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*command.split(), *DATA_COMMANDS[command]]
    main([*argv, "-f", "json"])
    data = json.loads(capsys.readouterr().out)
    if command == "report":  # Cyborg's own DriverDevice list, replayable as is
        assert isinstance(data, list)
        return
    assert data["format"] == 1
    main([*argv, "-f", "yaml"])
    assert yaml.safe_load(capsys.readouterr().out)["format"] == 1


def test_column_selects_fields_of_each_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--example-host", "-f", "value", "-c", "address", "-c",
                 "netdev"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0000:18:00.0 ens3f0" and len(lines) == 6
    assert main(["host", "doctor", "--example-host", "-f", "json", "-c", "check"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(list(r) == ["check"] for r in rows)
    assert main(["discover", "--example-host", "-c", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "cyborg-smartnic discover: error: -c bogus: no such field; choose from address" in err


def test_debug_and_verbose_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--example-host", "--debug", "-v"]) == 0
    after = capsys.readouterr().out
    assert main(["-v", "--debug", "discover", "--example-host"]) == 0
    assert capsys.readouterr().out == after
    assert "IOMMU group" in after  # -v: the VF table


def test_usage_errors_show_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["host", "conf", "--example-host", "--bogus", HOST_YAML])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cyborg-smartnic host conf ")
    assert "cyborg-smartnic host conf: error: unrecognized arguments: --bogus" in err


def test_help_has_no_rst_markup(capsys: pytest.CaptureFixture[str]) -> None:
    for name, _ in [("", None), *subparsers(build_parser())]:
        with pytest.raises(SystemExit):
            main([*name.split(), "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and "`" not in text, name


def test_host_conf_json_is_the_snippet_as_data(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["host", "conf", "--example-host", HOST_YAML]) == 0
    text = capsys.readouterr().out
    assert main(["host", "conf", "--example-host", "-f", "json", HOST_YAML]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == 1
    assert f"devices = {data['cyborg.conf']['smartnic']['devices']}" in text
