"""``cyborg-smartnic discover --watch``: JSON lines through the CLI, the one-line error when
udev/netlink is unavailable, the real pyudev monitor of this machine, and quiet SIGINT."""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyudev

from cyborg_smartnic.cli import watch as watch_cli
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery.watch import DeviceEvent, UdevEventSource, WatchUnavailable
from cyborg_smartnic.hostgen import SysfsTree, build_scenario, scratch_dir

PF = "0000:3b:00.0"
ERROR = "cyborg-smartnic: error: discover --watch cannot listen to udev events: "
REPO = Path(__file__).resolve().parents[2]
# Run the CLI with Python's SIGINT handler even where the parent ignores SIGINT.
RUN_CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from cyborg_smartnic.cli.main import main; sys.exit(main(sys.argv[1:]))")


@pytest.fixture
def tree() -> Iterator[SysfsTree]:
    with scratch_dir("watch-cli-") as path:
        yield build_scenario(path, "cx6dx_switchdev")


class OneChange:
    """A source that, asked for its first event, grows the PF to 6 VFs and reports it."""

    def __init__(self, tree: SysfsTree) -> None:
        self.tree = tree
        self.sent = False
        self.closed = False
        self.roots: list[str] = []

    def open(self, root: str) -> OneChange:
        self.roots.append(root)
        return self

    def next_event(self, timeout: float | None) -> DeviceEvent | None:
        if not self.sent:
            self.sent = True
            self.tree.set_num_vfs(PF, 6)
            return DeviceEvent("change", "pci", PF)
        time.sleep(min(timeout if timeout is not None else 0.01, 0.01))
        return None

    def close(self) -> None:
        self.closed = True


def test_cli_prints_one_json_line_per_change(tree: SysfsTree, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    source = OneChange(tree)
    monkeypatch.setattr(watch_cli, "open_source", source.open)
    assert main(["discover", "--watch", "--sysfs-root", str(tree.root), "--debounce", "0.05",
                 "--max-events", "1", "--watch-for", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    initial = json.loads(lines[0])
    assert list(initial) == ["event", "host"] and initial["event"] == "initial"
    (pf,) = [p for p in initial["host"]["physical_functions"] if p["address"] == PF]
    assert pf["sriov"]["num_vfs"] == 4  # the state before the change the next line shows
    line = json.loads(lines[1])
    assert list(line) == ["event", "devices", "diff"]
    assert line["event"] == "change" and line["devices"] == [f"pci/{PF}"]
    assert line["diff"]["added"] == ["0000:3b:00.6", "0000:3b:00.7"]
    assert {"address": PF, "field": "sriov.num_vfs", "old": 4, "new": 6} in \
        line["diff"]["changed"]
    assert source.roots == [str(tree.root)]
    assert source.closed


def test_cli_watch_for_without_changes_prints_only_the_initial_state(
        tree: SysfsTree, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = OneChange(tree)
    source.sent = True  # nothing happens
    monkeypatch.setattr(watch_cli, "open_source", source.open)
    started = time.monotonic()
    assert main(["discover", "--watch", "--sysfs-root", str(tree.root),
                 "--watch-for", "0.2"]) == 0
    assert time.monotonic() - started >= 0.2  # it waited the whole --watch-for
    (line,) = capsys.readouterr().out.splitlines()  # the initial state, no change line
    assert json.loads(line)["event"] == "initial"
    assert source.roots == [str(tree.root)] and source.closed


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR), captured.err
    return lines[0]


def test_recorded_tree_cannot_be_watched(tree: SysfsTree,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--watch", "--sysfs-root", str(tree.root)]) == 1
    line = _one_error_line(capsys)
    assert str(tree.root) in line and "watch needs the live host" in line


def test_without_pyudev_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pyudev", None)  # import pyudev -> ImportError
    assert main(["discover", "--watch"]) == 1
    assert "pyudev or libudev is not available" in _one_error_line(capsys)


def test_netlink_refused_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPROTONOSUPPORT, os.strerror(errno.EPROTONOSUPPORT))

    monkeypatch.setattr(pyudev.Monitor, "from_netlink", classmethod(refuse))
    assert main(["discover", "--watch"]) == 1
    line = _one_error_line(capsys)
    assert "cannot open the netlink socket" in line
    assert os.strerror(errno.EPROTONOSUPPORT) in line


@pytest.mark.parametrize(("argv", "message"), [
    (["--debounce", "2"], "--debounce needs --watch"),
    (["--max-events", "3"], "--max-events needs --watch"),
    (["--watch", "--example-host"], "--watch needs the live host"),
    (["--watch", "-f", "yaml"], "-f yaml/value, -c and -v do not apply"),
    (["--watch", "-v"], "-f yaml/value, -c and -v do not apply"),
    (["--watch", "--max-events", "0"], "not a positive whole number"),
    (["--watch", "--debounce", "-1"], "out of range"),
    (["--watch", "--watch-for", "soon"], "not a number of seconds"),
])
def test_usage_errors_exit_2(argv: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["discover", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_real_monitor_of_this_machine() -> None:
    """pyudev's netlink monitor on the running host: it opens and polls cleanly, or (where
    netlink is refused) fails with the one clean error; never anything else."""
    try:
        source = UdevEventSource.open("/")
    except WatchUnavailable as exc:
        text = str(exc)
        assert text.startswith("discover --watch cannot listen to udev events: ")
        assert "\n" not in text
        return
    try:
        expected = "udev" if os.path.exists("/run/udev/control") else "kernel"
        assert source.source == expected
        started = time.monotonic()
        event = source.next_event(0.2)
        assert event is None or isinstance(event, DeviceEvent)
        assert event is not None or time.monotonic() - started >= 0.19
    finally:
        source.close()


def _spawn(*argv: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", RUN_CLI, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_live_watch_for_exits_0() -> None:
    proc = _spawn("discover", "--watch", "--watch-for", "0.5")
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 1:  # netlink refused here: the clean one-line error instead
        assert err.startswith(ERROR) and err.count("\n") == 1
        return
    assert proc.returncode == 0, err
    assert err == ""
    first, *changes = out.splitlines()  # a real device event during the test is possible
    assert set(json.loads(first)) == {"event", "host"}
    for line in changes:
        assert set(json.loads(line)) == {"event", "devices", "diff"}


def test_sigint_exits_0_quietly() -> None:
    proc = _spawn("--debug", "discover", "--watch")
    assert proc.stderr is not None
    seen = ""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while "watching" not in seen and proc.poll() is None and time.monotonic() < deadline:
            if sel.select(timeout=1):
                seen += proc.stderr.readline()
    if proc.poll() is not None:  # netlink refused here: the clean one-line error instead
        out, err = proc.communicate()
        assert proc.returncode == 1 and ERROR in seen + err
        return
    assert "watching" in seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    # SIGINT may come before or after the first scan: at most the initial line, no change
    assert [json.loads(line)["event"] for line in out.splitlines()] in ([], ["initial"])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
