"""deploy/stack.py when things go wrong: a clear error, and nothing left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.stacklib import database
from tests.stack.conftest import processes_in, stack


@pytest.mark.stack
@pytest.mark.usefixtures("services_installed")
def test_a_service_dying_at_start_stops_everything_and_shows_its_log(tmp_path: Path) -> None:
    """The agent is the last service to start: by then MariaDB, RabbitMQ, Placement, Cyborg
    and Nova all run, and all must be stopped."""
    work = tmp_path / "stack"
    done = stack("start", "--work-dir", str(work), "--driver", "no_such_driver",
                 "--timeout", "300", timeout=400)
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith("stack: error: cyborg-agent exited while waiting for the agent's "
                            "deployables in Cyborg and Placement; last lines of "
                            f"{work}/logs/cyborg-agent.log:"), first
    assert "no_such_driver" in done.stderr
    assert "stopping the" in done.stdout  # it said it cleans up...
    assert processes_in(work) == []  # ...and did: MariaDB, broker, Nova, Placement are gone
    assert not (work / "pids.json").exists()
    status = stack("status", "--work-dir", str(work))
    assert status.returncode == 1
    assert status.stdout.startswith("no stack recorded")


@pytest.mark.stack
def test_stop_without_a_stack_is_a_no_op_and_status_says_there_is_none(tmp_path: Path) -> None:
    for _ in range(2):
        done = stack("stop", "--work-dir", str(tmp_path))
        assert done.returncode == 0
        assert done.stdout == "stack: nothing to stop\n"
    for args in ((), ("-f", "json")):
        status = stack("status", "--work-dir", str(tmp_path), *args)
        assert status.returncode == 1


@pytest.mark.stack
@pytest.mark.usefixtures("rabbitmq_installed")
def test_bad_smartnic_option_is_one_line(tmp_path: Path) -> None:
    done = stack("start", "--work-dir", str(tmp_path / "w"), "--sysfs-root", str(tmp_path),
                 "--smartnic", "physical_device_mappings")
    assert done.returncode == 1
    assert done.stderr == ("stack: error: --smartnic 'physical_device_mappings': expected "
                           "KEY=VALUE on one line\n")
    assert processes_in(tmp_path / "w") == []


@pytest.mark.stack
def test_restart_refuses_what_it_cannot_restart(tmp_path: Path) -> None:
    done = stack("restart", "--work-dir", str(tmp_path), database.NAME)
    assert done.returncode == 1
    assert done.stderr.startswith(f"stack: error: cannot restart {database.NAME}: one of "
                                  "cyborg-agent,")
