"""Shared checks of the stack tier: RabbitMQ must be there (CI installs it), nothing leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@pytest.fixture
def rabbitmq_installed() -> None:
    """Fail, never skip: a stack test without RabbitMQ is a broken machine setup."""
    if not os.access(RABBITMQ_SERVER, os.X_OK):
        pytest.fail("rabbitmq-server is not installed: run `apt-get install rabbitmq-server` "
                    "(.ci/run does) before the stack tests", pytrace=False)


def processes_in(work_dir: Path) -> list[int]:
    """Live processes whose working directory is the stack's work dir (every service's is)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and (cwd == work_dir or work_dir in cwd.parents):
            found.append(int(entry.name))
    return found
