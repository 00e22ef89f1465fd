"""Signals to a real ``cyborg-smartnic host apply``: the host ends rolled back, one line.

The command runs as a subprocess in its own process group with the real privsep daemon
(started as root, as the unit does); only the kernel behind the daemon is the emulator
(tests/fixtures/emulated_privsep.py). The apply is caught waiting for VFs that do not come,
and the whole process group is signalled, as a terminal's Ctrl-C or systemd's stop does.
"""

from __future__ import annotations

import os
import pickle
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host.devlink_params import with_flow_steering
from cyborg_smartnic.hostgen import build_scenario

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="privsep-helper is started without sudo only as root")

REPO = Path(__file__).parents[2]
EXAMPLE_CONFIG = REPO / "deploy" / "host.example.yaml"
CX_PF = "0000:3b:00.0"
BOUND = 120  # seconds: nothing here may hang


def state(root: Path) -> dict[str, object]:
    host: Host = with_flow_steering(scan(root), str(root))
    return {
        "pfs": {str(pf.address): (pf.num_vfs, pf.eswitch_mode,
                                  tuple((vf.index, vf.driver) for vf in pf.virtual_functions))
                for pf in host.physical_functions},
        "hugepages": {(p.numa_node, p.size_kb): p.total for p in host.hugepages},
    }


class Apply:
    """``host apply --yes`` of the example host.yaml, its output read line by line."""

    def __init__(self, tmp_path: Path, extra_conf: str = "", hang: str | None = None) -> None:
        self.root = tmp_path / "host"
        tree = build_scenario(self.root, "example")
        self.pickle = tmp_path / "tree.pickle"
        self.pickle.write_bytes(pickle.dumps(tree))
        helper = [sys.executable, "-W", "ignore:::oslo_privsep.daemon", "-m",
                  "tests.fixtures.emulated_privsep", str(self.pickle)]
        conf = tmp_path / "apply.conf"
        if hang is not None:
            Path(f"{self.pickle}.hang").write_text(hang)
        conf.write_text(f"[cyborg_smartnic_privileged]\nhelper_command = {shlex.join(helper)}\n"
                        f"{extra_conf}")
        command = os.path.join(os.path.dirname(sys.executable), "cyborg-smartnic")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [command, "host", "apply", "--yes", "--vf-timeout", "100", "--sysfs-root",
             str(self.root), "--config-file", str(conf), str(EXAMPLE_CONFIG)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
            start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, prefix: str) -> None:
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.out)
                continue
            self.out.append(line)
            if line.startswith(prefix):
                return
        raise AssertionError(f"no line starting {prefix!r}:\n{''.join(self.out)}")

    def daemons(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(self.pickle).encode() in argv and b"--privsep_context" in argv:
                found.append(int(entry.name))
        return found

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=BOUND)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return self.process.returncode, "".join(self.out) + out, err


@pytest.mark.parametrize(("signo", "kill_daemon"), [
    (signal.SIGINT, ""), (signal.SIGTERM, ""), (signal.SIGTERM, "then signal"),
    (signal.SIGTERM, "and signal at once")])
def test_a_signal_to_the_process_group_rolls_back(tmp_path: Path, signo: signal.Signals,
                                                  kill_daemon: str) -> None:
    """Also with the daemon killed first (systemd's control-group kill, an OOM kill): the
    rollback starts a new one, whether or not the CLI noticed the death before."""
    run = Apply(tmp_path)
    before = state(run.root)
    try:
        run.wait_for("[4/12] set_numvfs 0000:3b:00.0: 0 -> 8")  # its VFs never appear
        time.sleep(1.0)  # the write is done, the CLI polls
        (daemon,) = run.daemons()
        assert os.getsid(daemon) != os.getsid(run.process.pid), "daemon in our session"
        if kill_daemon:
            os.kill(daemon, signal.SIGKILL)
            deadline = time.monotonic() + BOUND
            while (kill_daemon == "then signal" and daemon in run.daemons()
                   and time.monotonic() < deadline):
                time.sleep(0.1)
        os.killpg(run.process.pid, signo)
    finally:
        code, out, err = run.finish()

    assert code == 128 + signo, err
    assert re.fullmatch(f"cyborg-smartnic: error: interrupted by {signo.name} at {CX_PF}; "
                        r"rolled back \d+ change\(s\), 0 could not be restored\n", err), err
    assert "Traceback" not in out + err
    assert f"FAILED: interrupted by {signo.name}" in out
    assert state(run.root) == before
    deadline = time.monotonic() + 30
    while run.daemons() and time.monotonic() < deadline:  # it leaves when we close its socket
        time.sleep(0.2)
    assert run.daemons() == []


def test_a_privileged_call_that_never_answers_times_out(tmp_path: Path) -> None:
    """A write stuck in the daemon: the step fails after [smartnic] privileged_call_timeout,
    says so, and the apply ends (exit 1, one line) instead of hanging."""
    run = Apply(tmp_path, extra_conf="[smartnic]\nprivileged_call_timeout = 3\n",
                hang="node0/hugepages/hugepages-1048576kB/nr_hugepages")
    before = state(run.root)
    started = time.monotonic()
    code, out, err = run.finish()
    assert time.monotonic() - started < 60  # the stuck write takes 60 s in the daemon
    assert code == 1, err
    assert err.splitlines()[-1] == (
        "cyborg-smartnic: error: apply failed at node0 1048576kB: the privileged helper did "
        "not answer in time; the write may or may not have happened; "
        "rolled back 0 change(s), 0 could not be restored")
    assert "Traceback" not in out + err
    assert state(run.root) == before


def test_sigterm_with_the_stock_helper_rolls_back(tmp_path: Path) -> None:
    """The stock privsep-helper writing the tree's files (no emulator: the VFs never appear,
    so the apply waits): SIGTERM to the group, as systemd's start timeout sends it, leaves
    sriov_numvfs as it was. Before the fix: exit -15, no message, the PF left at 4."""
    build_scenario(tmp_path / "host", "x710_legacy")
    config = tmp_path / "host.yaml"
    config.write_text('devices:\n  - address: "0000:18:00.1"\n    vf_count: 4\n')
    command = os.path.join(os.path.dirname(sys.executable), "cyborg-smartnic")
    process = subprocess.Popen(
        [command, "host", "apply", "--yes", "--vf-timeout", "100", "--sysfs-root",
         str(tmp_path / "host"), str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    numvfs = tmp_path / "host/sys/bus/pci/devices/0000:18:00.1/sriov_numvfs"
    deadline = time.monotonic() + BOUND
    while numvfs.read_text() != "4\n" and time.monotonic() < deadline:  # written: now waiting
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=BOUND)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    assert process.returncode == 143, err
    assert err == ("cyborg-smartnic: error: interrupted by SIGTERM at 0000:18:00.1; rolled "
                   "back 1 change(s), 0 could not be restored\n")
    assert numvfs.read_text() == "0\n"
