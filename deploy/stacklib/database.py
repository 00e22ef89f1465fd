"""The stack's database behind one seam: the backend module is named here, once.

deploy/stack.py, Nova's readiness wait, the stack tests and the benches import this module,
never the backend's (only the backend's own tests do). Swapping the database means a new
backend module that satisfies `Backend`, the import line below, the apt package in .ci/run and
the DB driver in pyproject.toml/constraints.txt. Queries stay SQL text: the benches' size and
status queries are MySQL-family SQL.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias, TypeVar

from deploy.stacklib import mariadb as _backend  # the one line a swap of the database changes
from deploy.stacklib import procs

ServerT = TypeVar("ServerT")


class Backend(Protocol[ServerT]):
    """What a backend module provides; ``ServerT`` is its frozen server dataclass, whose
    ``url(name)`` is the SQLAlchemy URL the services use."""

    NAME: str  # its service name, work subdirectory and stack.json entry

    def check_installed(self) -> None: ...
    def plan(self, base: Path) -> ServerT: ...
    def prepare(self, server: ServerT, log_dir: Path) -> None: ...
    def start(self, server: ServerT, log_dir: Path) -> procs.Proc: ...
    def wait_ready(self, server: ServerT, proc: procs.Proc, timeout: float) -> None: ...
    def create_databases(self, server: ServerT, names: Sequence[str]) -> None: ...
    def sql(self, server: ServerT, statements: str, timeout: float = ...
            ) -> subprocess.CompletedProcess[str]:
        """As the server's administrator; stdout: a header line, then tab-separated rows."""
    def state_entry(self, server: ServerT, databases: Sequence[str]) -> dict[str, Any]: ...
    def from_state(self, base: Path, entry: Mapping[str, Any]) -> ServerT: ...


Server: TypeAlias = _backend.Server
BACKEND: Backend[Server] = _backend  # mypy checks here that the module fits the protocol

NAME = BACKEND.NAME
check_installed = BACKEND.check_installed
plan = BACKEND.plan
prepare = BACKEND.prepare
start = BACKEND.start
wait_ready = BACKEND.wait_ready
create_databases = BACKEND.create_databases
sql = BACKEND.sql
state_entry = BACKEND.state_entry


def server_of(state: Mapping[str, Any]) -> Server:
    """The running server of a started stack, from its stack.json."""
    return BACKEND.from_state(Path(state["work_dir"]) / NAME, state[NAME])


def rows(server: Server, statements: str, timeout: float = 300.0) -> list[list[str]]:
    """The result rows of the last statement (header dropped), or StackError."""
    done = sql(server, statements, timeout)
    if done.returncode != 0:
        raise procs.StackError(f"{NAME}: {(done.stderr or done.stdout).strip()}")
    return [line.split("\t") for line in done.stdout.splitlines()[1:] if line]


def databases_of(state: Mapping[str, Any]) -> list[str]:
    """The databases the stack created (all of them, or the fleet's few)."""
    return list(state[NAME]["databases"])
