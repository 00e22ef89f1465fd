"""deploy/stack.py when things go wrong: a clear error, and nothing left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.stack.conftest import processes_in

STACK = Path(__file__).resolve().parents[2] / "deploy" / "stack.py"


def stack(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(STACK), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.stack
@pytest.mark.usefixtures("rabbitmq_installed")
def test_a_service_dying_at_start_stops_everything_and_shows_its_log(tmp_path: Path) -> None:
    work = tmp_path / "stack"
    broken = tmp_path / "nova_stub.py"
    broken.write_text("import sys\nprint('nova stub: cannot bind 127.0.0.1', flush=True)\n"
                      "sys.exit(1)\n")
    host = tmp_path / "host"
    host.mkdir()
    done = stack("start", "--work-dir", str(work), "--sysfs-root", str(host),
                 "--nova-stub", str(broken), "--timeout", "120")
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first == "stack: error: nova-stub exited while waiting for the Nova stub; last " \
                    f"lines of {work}/logs/nova-stub.log:"
    assert "nova stub: cannot bind 127.0.0.1" in done.stderr
    assert "stopping the" in done.stdout  # it said it cleans up...
    assert processes_in(work) == []  # ...and did: broker, epmd, Placement are gone
    assert not (work / "pids.json").exists()
    assert stack("status", "--work-dir", str(work)).stdout.startswith("no stack recorded")


@pytest.mark.stack
def test_stop_without_a_stack_is_a_no_op(tmp_path: Path) -> None:
    for _ in range(2):
        done = stack("stop", "--work-dir", str(tmp_path))
        assert done.returncode == 0
        assert done.stdout == "stack: nothing to stop\n"


@pytest.mark.stack
@pytest.mark.usefixtures("rabbitmq_installed")
def test_bad_smartnic_option_is_one_line(tmp_path: Path) -> None:
    done = stack("start", "--work-dir", str(tmp_path / "w"), "--sysfs-root", str(tmp_path),
                 "--smartnic", "physical_device_mappings")
    assert done.returncode == 1
    assert done.stderr == ("stack: error: --smartnic 'physical_device_mappings': expected "
                           "KEY=VALUE on one line\n")
    assert processes_in(tmp_path / "w") == []
