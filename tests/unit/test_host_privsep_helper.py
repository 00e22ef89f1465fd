"""``cyborg-smartnic-privsep-helper``: what it accepts before it starts a root daemon.

The argument table is pure. The socket checks use real directories and sockets (we run as
root, so ownership can be handed to another uid with ``chown``); the last tests start the
real wrapper as a process: refused arguments give one line and exit 2, and a good call
starts the real privsep daemon in its own session with the context's capabilities.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic.host import privileged, privsep_helper
from cyborg_smartnic.host.privsep_helper import CONTEXT, Refused, check_argv
from tests.fixtures.sysfs import build_scenario

NOBODY = 65534
SOCK = "/tmp/tmpab_cd012/privsep.sock"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown and the daemon need root")


@pytest.mark.parametrize(("argv", "message"), [
    (["--privsep_context", CONTEXT, "--privsep_sock_path", SOCK], None),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/var/tmp/x/tmpab_cd012/"
      "privsep.sock"], None),
    ([], "exactly 4 arguments"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", SOCK, "--privsep_context", "x.y"],
     "exactly 4 arguments"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", SOCK, "--config-file", "/x"],
     "exactly 4 arguments"),
    (["--privsep_sock_path", SOCK, "--privsep_context", CONTEXT], "in that order"),
    (["--privsep_context=" + CONTEXT, "--privsep_sock_path", SOCK, "x"], "in that order"),
    (["--privsep_context", "os_brick.privileged.default", "--privsep_sock_path", SOCK],
     "is not cyborg_smartnic.host.privileged.context"),
    (["--privsep_context", CONTEXT + " ", "--privsep_sock_path", SOCK], "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "tmp/tmpab_cd012/privsep.sock"],
     "is not <dir>/tmpXXXXXXXX/privsep.sock"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/tmp/../etc/tmpab_cd012/"
      "privsep.sock"], "must not contain"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/tmp/./tmpab_cd012/privsep.sock"],
     "must not contain"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/tmp/tmpAB_CD012/privsep.sock"],
     "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/tmp/tmpab_cd0123/privsep.sock"],
     "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/tmp/tmpab_cd012/other.sock"],
     "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", SOCK + " --privsep_context x"],
     "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", SOCK + "\n"], "is not"),
    (["--privsep_context", CONTEXT, "--privsep_sock_path", "/" + "a" * 90 + SOCK],
     "is not"),
])
def test_argv_table(argv: list[str], message: str | None) -> None:
    if message is None:
        assert check_argv(argv) == argv[3]
        return
    with pytest.raises(Refused, match=message):
        check_argv(argv)


@pytest.mark.parametrize(("environ", "uid"), [({"SUDO_UID": "1000"}, 1000), ({}, os.getuid())])
def test_invoking_uid(environ: dict[str, str], uid: int) -> None:
    assert privsep_helper.invoking_uid(environ) == uid


def test_invoking_uid_must_be_a_number() -> None:
    with pytest.raises(Refused, match="not a uid"):
        privsep_helper.invoking_uid({"SUDO_UID": "0 "})


@pytest.fixture
def sockdir(tmp_path: Path) -> Iterator[Path]:
    """What oslo.privsep's client makes: a 0700 ``tmpXXXXXXXX`` dir and a listening socket."""
    path = Path(tempfile.mkdtemp(dir=tmp_path))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path / "privsep.sock"))
    listener.listen(1)
    try:
        yield path
    finally:
        listener.close()


def test_a_good_socket_connects(sockdir: Path) -> None:
    sock = privsep_helper.connect(str(sockdir / "privsep.sock"), os.getuid())
    sock.close()


@needs_root
def test_directory_must_be_private_and_the_callers(sockdir: Path) -> None:
    path = str(sockdir / "privsep.sock")
    sockdir.chmod(0o755)
    with pytest.raises(Refused, match=r"must be a 0700 directory owned by uid 0 .*mode 0755"):
        privsep_helper.connect(path, 0)
    sockdir.chmod(0o700)
    with pytest.raises(Refused, match=f"owned by uid {NOBODY} \\(it is uid 0"):
        privsep_helper.connect(path, NOBODY)


def test_no_symlink_on_the_path(sockdir: Path, tmp_path: Path) -> None:
    link = tmp_path / "via"
    link.symlink_to(sockdir.parent)
    with pytest.raises(Refused, match="no symlink may be on the socket path"):
        privsep_helper.connect(str(link / sockdir.name / "privsep.sock"), 0)
    other = Path(tempfile.mkdtemp(dir=tmp_path))
    (other / "privsep.sock").symlink_to(sockdir / "privsep.sock")  # a socket not its own
    with pytest.raises(Refused, match="must be a socket owned by uid 0"):
        privsep_helper.connect(str(other / "privsep.sock"), 0)


@needs_root
def test_socket_of_another_user_is_refused(sockdir: Path) -> None:
    os.chown(sockdir / "privsep.sock", NOBODY, NOBODY)
    with pytest.raises(Refused, match="must be a socket owned by uid 0"):
        privsep_helper.connect(str(sockdir / "privsep.sock"), 0)


@needs_root
def test_peer_must_be_a_process_of_the_caller(sockdir: Path) -> None:
    """Directory and socket look like nobody's, but the process listening is root's: a swap
    after the checks would show exactly this, and the connection is dropped."""
    os.chown(sockdir, NOBODY, NOBODY)
    os.chown(sockdir / "privsep.sock", NOBODY, NOBODY)
    with pytest.raises(Refused, match=rf"held by pid {os.getpid()} of uid 0, not uid {NOBODY}"):
        privsep_helper.connect(str(sockdir / "privsep.sock"), NOBODY)


def _run_wrapper(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    return subprocess.run([sys.executable, "-m", "cyborg_smartnic.host.privsep_helper", *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_refusal_is_one_line_and_exit_2() -> None:
    done = _run_wrapper("--privsep_context", CONTEXT, "--privsep_sock_path", SOCK,
                        "--privsep_context", "os_brick.privileged.default")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"{privsep_helper.SCRIPT}: refused: expected exactly 4 arguments (--privsep_context "
        f"{CONTEXT} --privsep_sock_path PATH), got 6"]


@pytest.fixture
def through_wrapper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The context started the way sudo would start it, minus sudo (we are root)."""
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.setenv("OS_CYBORG_SMARTNIC_PRIVILEGED__CAPABILITIES", "CAP_SYS_BOOT")
    cfg.CONF.set_override("helper_command", shlex.join(
        [sys.executable, "-m", "cyborg_smartnic.host.privsep_helper"]),
        group=privileged.CONFIG_SECTION)
    assert privileged.context.client_mode, "another test left the context in-process"
    try:
        yield
    finally:
        privileged.context.stop()
        cfg.CONF.clear_override("helper_command", group=privileged.CONFIG_SECTION)


@needs_root
def test_the_wrapper_starts_the_daemon(tmp_path: Path, through_wrapper: None,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    tree = build_scenario(tmp_path, "x710_legacy")
    privileged.set_sriov_numvfs(str(tmp_path), "0000:18:00.1", 2)
    assert (tree.device_path("0000:18:00.1") / "sriov_numvfs").read_text() == "2\n"
    writes = [r for r in caplog.records if r.getMessage().startswith("writing '2' to ")]
    assert writes and writes[0].process != os.getpid(), "the write ran in our own process"
    daemon_pid = writes[0].process
    assert daemon_pid is not None
    status = Path(f"/proc/{daemon_pid}/status").read_text()
    effective = int(next(line.split()[1] for line in status.splitlines()
                         if line.startswith("CapEff:")), 16)
    # DAC_OVERRIDE, NET_ADMIN, SYS_PTRACE; SYS_MODULE, SYS_RAWIO, SYS_ADMIN for the firmware
    # tools (modprobe ice, mstconfig/mlxfwreset: host.firmware_privileged)
    assert effective == ((1 << 1) | (1 << 12) | (1 << 19)
                         | (1 << 16) | (1 << 17) | (1 << 21))
    assert os.getsid(daemon_pid) == daemon_pid != os.getsid(0), "not in its own session"
    # asked for through oslo.config's environment source, which privsep-helper would read
    assert os.environ["OS_CYBORG_SMARTNIC_PRIVILEGED__CAPABILITIES"] == "CAP_SYS_BOOT"
    assert not effective & (1 << 22), "the daemon took a capability from the environment"
