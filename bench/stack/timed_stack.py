"""What every stack benchmark does around its own measurements (one home for run.py and
ports.py): start deploy/stack.py on the bundled example host, timing the whole `start`;
apply profiles/ with `cyborg-smartnic`; stop the stack at the end (unless kept); print the
load average and the start-time table with the per-step marks the stack recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # deploy.* and cyborg_smartnic from this checkout

from deploy.stacklib import client  # noqa: E402


@dataclass(frozen=True)
class TimedStack:
    state: dict[str, Any]  # stack.json
    info: client.StackInfo
    api: client.Clients
    env: dict[str, str]  # the environment that makes `cyborg-smartnic` talk to this stack
    start_seconds: float  # the whole `stack.py start` command
    load_before: float  # 1-minute load average before the start (the machine is shared)


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "deploy" / "stack.py"), *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL)


def tool(*args: str, env: dict[str, str]) -> str:
    """`cyborg-smartnic ARGS` against the stack; its stdout (raises when it fails)."""
    return subprocess.run([str(Path(sys.executable).parent / "cyborg-smartnic"), *args],
                          check=True, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120).stdout


@contextmanager
def started(work: Path, *, keep: bool = False) -> Iterator[TimedStack]:
    """A started stack with profiles/ applied; stopped on the way out unless ``keep``.
    Exits 1 with stack.py's error when it does not start."""
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    done = _stack("start", "--work-dir", str(work))
    start_seconds = time.monotonic() - began
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        raise SystemExit(1)
    try:
        state = json.loads((work / "stack.json").read_text())
        info = client.StackInfo.from_state(state)
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": state["clouds_yaml"],
               "OS_CLOUD": state["cloud"]}
        tool("profile", "apply", "--yes", str(REPO / "profiles"), env=env)
        yield TimedStack(state, info, client.Clients(info), env, start_seconds, load_before)
    finally:
        if not keep:
            _stack("stop", "--work-dir", str(work))


def print_start(stack: TimedStack, load_after: float) -> None:
    """The load average and the start-time table (Markdown)."""
    print(f"load average (1 min) before/after: {stack.load_before:.1f} / {load_after:.1f}\n")
    print("| what | seconds |\n|---|---:|")
    print(f"| `stack.py start`, whole command | {stack.start_seconds:.1f} |")
    for step, mark in stack.state["startup_seconds"].items():
        print(f"| - {step} (mark) | {mark:.1f} |")
