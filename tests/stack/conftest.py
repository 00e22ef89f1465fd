"""The stack tier: real services as separate processes, ONE local stack per test session.

`shared_stack` starts deploy/stack.py once (MariaDB, RabbitMQ, Placement, Cyborg, Nova,
Neutron, the image stand-in and the stand-in reporting Neutron's agents' state) on the
bundled example host, applies profiles/ to it, and stops it at the end of the session,
checking that nothing is left running. Every test that uses it is in the xdist group
"shared-stack", so under `pytest -n 2` (with `--dist loadgroup`, the project's default)
they run one after the other on one worker and only one stack starts; tests that start
their own stack (failures) run on the other worker meanwhile.
The tests leave the stack as they found it: no servers, no VF allocated.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cyborg_smartnic.discovery.example import example_conf_path
from cyborg_smartnic.hostgen import build_scenario
from deploy.stacklib import database
from deploy.stacklib.procs import StackError

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
STACK_SCRIPT = DEPLOY / "stack.py"

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
SHARED = pytest.mark.xdist_group("shared-stack")


def _require(path: Path, package: str) -> None:
    """Fail, never skip: a stack test without its Debian package is a broken setup."""
    if not os.access(path, os.X_OK):
        pytest.fail(f"{package} is not installed: run `apt-get install {package}` (.ci/run "
                    "does) before the stack tests", pytrace=False)


@pytest.fixture(scope="session")
def services_installed() -> None:
    _require(RABBITMQ_SERVER, "rabbitmq-server")
    try:
        database.check_installed()  # its message names the package to install
    except StackError as exc:
        pytest.fail(f"{exc} (.ci/run does) before the stack tests", pytrace=False)


@pytest.fixture
def rabbitmq_installed() -> None:
    _require(RABBITMQ_SERVER, "rabbitmq-server")


def missing_server_error(monkeypatch: pytest.MonkeyPatch, backend: ModuleType,
                         missing: Path) -> str:
    """What a backend's check_installed() says when its server binary is not there."""
    monkeypatch.setattr(backend, "SERVER", str(missing))
    with pytest.raises(StackError) as caught:
        backend.check_installed()
    return str(caught.value)


def stack(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(STACK_SCRIPT), *args], capture_output=True,
                          stdin=subprocess.DEVNULL,
                          text=True, timeout=timeout, check=False)


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


@pytest.fixture(scope="session")
def shared_stack(tmp_path_factory: pytest.TempPathFactory,
                 services_installed: None) -> Iterator[dict[str, Any]]:
    """stack.json of the session's one running stack, with profiles/ applied; "tree" is the
    SysfsTree of the host its agent reads."""
    base = tmp_path_factory.mktemp("shared")
    work = base / "stack"
    # The bundled example host, built here so tests can change it under the running agent.
    tree = build_scenario(base / "host", "example")
    options = configparser.ConfigParser(interpolation=None)
    options.read(example_conf_path())
    smartnic = [f"--smartnic={key}={value}" for key, value in options["smartnic"].items()]
    started = stack("start", "--work-dir", str(work), "--sysfs-root", str(tree.root),
                    *smartnic, "--timeout", "300", timeout=400)
    if started.returncode != 0:
        stack("stop", "--work-dir", str(work))
        pytest.fail(f"deploy/stack.py start failed:\n{started.stderr}", pytrace=False)
    state = json.loads((work / "stack.json").read_text())
    state["tree"] = tree
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": state["clouds_yaml"],
           "OS_CLOUD": state["cloud"]}
    applied = subprocess.run([str(Path(sys.executable).parent / "cyborg-smartnic"), "profile",
                              "apply", "--yes", str(REPO / "profiles")], capture_output=True,
                             stdin=subprocess.DEVNULL,
                             text=True, timeout=120, check=False, env=env)
    try:
        assert applied.returncode == 0, applied.stderr
        yield state
    finally:
        stopped = stack("stop", "--work-dir", str(work))
        assert stopped.returncode == 0, stopped.stderr
        assert processes_in(work) == []
