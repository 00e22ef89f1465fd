"""Every ```console block of docs/ and the README is run and its output compared, so the
guides cannot drift from what the tool prints.

A block is a sequence of ``$ COMMAND`` lines, each followed by the output it shows. Commands
run in-process from the repository root: ``cyborg-smartnic ...`` through ``main()`` (stdout,
then stderr; ``warning:`` lines on stderr are only compared when the block shows some), and
``echo $?`` prints the previous command's exit code, ``cat FILE`` followed by its content
creates that file (so a guide can show the input it runs on); a shown line ``[exit N]`` is the
command's exit code. A line ``...`` in the shown output
matches any number of lines. The output must match exactly otherwise (trailing blanks aside).

A block that cannot run here (it needs a live cloud, root, a real NIC or files the guide only
describes) carries ``<!-- docs-test: skip: REASON -->`` on the line before it; those blocks are
listed by ``test_skipped_blocks_say_why`` and reported as skipped with their reason, never
left out silently. Any other command in a console block fails the test.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(?P<reason>.+?)\s*-->")
PROMPT = "$ "


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    lines: tuple[str, ...]
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text().splitlines()
        index = 0
        while index < len(text):
            if text[index].strip() == "```console":
                start = index
                index += 1
                body = []
                while index < len(text) and text[index].strip() != "```":
                    body.append(text[index])
                    index += 1
                marker = SKIP.search(text[start - 1]) if start else None
                found.append(Block(path, start + 1, tuple(body),
                                   marker.group("reason") if marker else None))
            index += 1
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and _matches(expected[1:], actual[1:])


def _run(command: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str], list[str]]:
    argv = shlex.split(command)
    assert argv[0] == "cyborg-smartnic", f"cannot run {argv[0]!r} here: mark the block skip"
    try:
        code = main(argv[1:])
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


ALL = blocks()


@pytest.mark.parametrize("block", ALL, ids=[b.name for b in ALL])
def test_console_block(block: Block, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(f"marked in {block.name}: {block.skip}")
    work = tmp_path / "work"
    work.mkdir()
    for name in ("profiles", "deploy", "docs", "tests"):
        (work / name).symlink_to(REPO / name)
    monkeypatch.chdir(work)
    steps: list[tuple[str, list[str]]] = []
    for line in block.lines:
        if line.startswith(PROMPT):
            steps.append((line[len(PROMPT):], []))
        else:
            assert steps, f"{block.name}: output before the first '$ ' command"
            steps[-1][1].append(line.rstrip())
    last = 0
    for command, shown in steps:
        if command.strip() == "echo $?":
            actual = [str(last)]
        elif command.startswith("cat "):
            (work / command.split(None, 1)[1].strip()).write_text("\n".join(shown) + "\n")
            actual = list(shown)
        else:
            last, out, err = _run(command, capsys)
            if not any("warning:" in line for line in shown):
                err = [line for line in err if "warning:" not in line]
            actual = [line.rstrip() for line in out + err]
            if any(re.fullmatch(r"\[exit \d+\]", line) for line in shown):
                actual.append(f"[exit {last}]")
        while shown and not shown[-1]:
            shown.pop()
        assert _matches(shown, actual), (
            f"{block.name}: `{command}` printed:\n" + "\n".join(actual))


def test_skipped_blocks_say_why() -> None:
    skipped = [(b.name, b.skip) for b in ALL if b.skip]
    assert all(reason and len(reason) > 10 for _, reason in skipped), skipped
    assert len([b for b in ALL if not b.skip]) >= 3  # the guides still show runnable output
