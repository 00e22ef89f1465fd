"""What a ``--sysfs-root`` tree may hold that sysfs never does: FIFOs, sockets and device nodes
are refused (a skip reason), never opened, never a hang; a missing root is one error line.

Every command runs in a subprocess with a timeout, so a regression (a blocking open of a
FIFO) fails the test instead of hanging the suite. The reader's own tests are guarded by
SIGALRM for the same reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from cyborg_smartnic.discovery.sysfs import SysfsReader, UnreadableAttribute
from cyborg_smartnic.hostgen import build_scenario, example_conf, scratch_dir

REPO = Path(__file__).resolve().parents[2]
HOST_YAML = REPO / "deploy" / "host.example.yaml"
PF = "0000:3b:00.0"
TIMEOUT = 120


class _Hung(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[None]:
    """Turn a blocking system call into a test failure after 10 s."""
    def fire(_signum: int, _frame: FrameType | None) -> None:
        raise _Hung("blocked on a non-regular file")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def work() -> Iterator[Path]:
    with scratch_dir("sysfs-root-inputs-") as path:
        yield path


def _replace(path: Path, make: str) -> None:
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)
    elif make == "socket":
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
    else:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "cyborg_smartnic.cli.main", *argv],
                          capture_output=True, text=True, env=env, timeout=TIMEOUT,
                          check=False)


@pytest.mark.parametrize(("make", "kind"), [("fifo", "a FIFO"), ("socket", "a socket"),
                                            ("chr", "a character device")])
def test_reader_refuses_without_opening(work: Path, alarm: None, make: str,
                                        kind: str) -> None:
    if make == "chr" and os.geteuid() != 0:
        pytest.fail("creating a device node needs root (the project's tests run as root)")
    (work / "sys").mkdir()
    target = work / "sys/attr"
    target.write_text("x\n")
    _replace(target, make)
    (work / "sys/link").symlink_to("attr")
    reader = SysfsReader(work)
    for path in (target, work / "sys/link"):  # also when reached through a symlink
        with pytest.raises(UnreadableAttribute) as caught:
            reader.read(str(path))
        assert str(caught.value) == (f"cannot read /sys/{path.name}: not a regular file "
                                     f"({kind}); refusing to open it")
        with pytest.raises(UnreadableAttribute):
            reader.read_bytes(str(path))
    assert reader.link_name(str(target)) is None  # readlink of a non-link: not there
    (work / "sys/ok").write_text("0x15b3\n")
    (work / "sys/ok-link").symlink_to("ok")
    assert reader.read(str(work / "sys/ok-link")) == "0x15b3"


@pytest.fixture
def fifo_host(work: Path) -> tuple[Path, Path]:
    """The example host with FIFOs where a PF's vendor file, one recorded devlink answer
    and the recorded host name should be (the latter read when no hostname is configured)."""
    tree = build_scenario(work / "tree", "example")
    conf = work / "cyborg.conf"
    conf.write_text(example_conf(tree))
    root = tree.root
    vendor = Path(os.path.realpath(root / f"sys/bus/pci/devices/{PF}")) / "vendor"
    _replace(vendor, "fifo")
    devlink = sorted((root / "devlink").glob("dev-info-0000:5e:00.0*"))[0]
    _replace(devlink, "fifo")
    (root / "etc").mkdir(exist_ok=True)
    os.mkfifo(root / "etc/hostname")
    return root, conf


def test_every_command_finishes_on_a_tree_with_fifos(work: Path,
                                                     fifo_host: tuple[Path, Path]) -> None:
    root, conf = fifo_host
    common = ["--sysfs-root", str(root), "--config-file", str(conf)]
    done = _run("discover", *common, "-f", "json")
    assert done.returncode == 0, done.stderr
    host = json.loads(done.stdout)
    assert {"address": PF, "reason": f"cannot read /sys/bus/pci/devices/{PF}/vendor: not a "
                                     f"regular file (a FIFO); refusing to open it"} in \
        host["skipped"]
    assert PF not in [pf["address"] for pf in host["physical_functions"]]
    assert len(host["physical_functions"]) == 5
    done = _run("discover", "--sysfs-root", str(root), "-f", "json")  # reads etc/hostname
    assert done.returncode == 0, done.stderr
    done = _run("report", *common, "-f", "json")
    assert done.returncode == 0, done.stderr
    assert PF not in done.stdout and "0000:5e:00.0" in done.stdout
    done = _run("host", "plan", *common, str(HOST_YAML))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"no PF '{PF}' on this host (discovery skipped it: cannot read" in done.stderr
    archive = work / "s.tar.gz"
    done = _run("snapshot", "-o", str(archive), *common)
    assert done.returncode == 0, done.stderr
    assert "2 left out" in done.stdout  # the FIFO vendor file and devlink answer
    assert "/0000:3b:00.0/vendor: not a regular file" in done.stderr
    assert "dev-info-0000:5e:00.0.json: not a regular file" in done.stderr


def test_host_commands_finish_on_a_tree_with_fifos(work: Path) -> None:
    """The host tool's own readers of the tree (recorded devlink params and OVS state, the
    kernel release and config the doctor reads) refuse FIFOs the same way: both hung."""
    tree = build_scenario(work / "tree", "example")
    root = tree.root
    for relative in (f"devlink/dev-param-{PF}.json", "ovs/ovsdb.json",
                     "proc/sys/kernel/osrelease", f"boot/config-{os.uname().release}"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(root / relative)
    done = _run("host", "plan", "--sysfs-root", str(root), "-f", "json", str(HOST_YAML))
    assert done.returncode == 0, done.stderr
    done = _run("host", "doctor", "--sysfs-root", str(root), "--profiles",
                str(REPO / "profiles" / "xdp.yaml"), str(HOST_YAML))
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr
    assert "[ ok ] profile xdp-netdev" in done.stdout
    assert "ovs/ovsdb.json: not a regular file (a FIFO)" in done.stderr


def test_a_fifo_the_whole_scan_needs_is_one_error_line(work: Path) -> None:
    tree = build_scenario(work / "tree", "example")
    _replace(tree.root / "proc/cmdline", "fifo")
    done = _run("discover", "--sysfs-root", str(tree.root))
    assert done.returncode == 1
    assert done.stderr == ("cyborg-smartnic: error: cannot read /proc/cmdline: not a regular "
                           "file (a FIFO); refusing to open it\n")


@pytest.mark.parametrize("command", [
    ["discover"], ["report"], ["profile", "check", str(REPO / "profiles")],
    ["host", "plan", str(HOST_YAML)], ["host", "doctor"]])
def test_missing_root_is_an_error(work: Path, command: list[str]) -> None:
    """An empty report of a mistyped root looks like a host without NICs: refuse it."""
    missing = work / "nonexistent"
    done = _run(*command, "--sysfs-root", str(missing))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"cyborg-smartnic: error: {missing}: does not exist: not a sysfs "
                           f"root (is sysfs mounted there? for a snapshot, pass its "
                           f"snapshot-<host> directory)\n")
    (work / "empty").mkdir()
    done = _run(*command, "--sysfs-root", str(work / "empty"))
    assert done.returncode == 1
    assert done.stderr.startswith(f"cyborg-smartnic: error: {work / 'empty'}: has no "
                                  f"sys/bus/pci/devices: ")
    assert len(done.stderr.splitlines()) == 1
