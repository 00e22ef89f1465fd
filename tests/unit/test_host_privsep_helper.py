"""``cyborg-smartnic-privsep-helper``: what it accepts before it starts a root daemon.

The argument table is pure. The socket checks use real directories and sockets (we run as
root, so ownership can be handed to another uid with ``chown``); the last tests start the
real wrapper as a process: refused arguments give one line and exit 2, and a good call
starts the real privsep daemon in its own session with the context's capabilities, for
each of the two contexts.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from oslo_config import cfg

from cyborg_smartnic.host import firmware_privileged, privileged, privsep_helper
from cyborg_smartnic.host.privsep_helper import CONTEXT, FIRMWARE_CONTEXT, Refused, check_argv
from cyborg_smartnic.hostgen import build_scenario

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


def _through_wrapper(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> Iterator[None]:
    """``module``'s context started the way sudo would start it, minus sudo (we are root);
    both contexts' environment asks for CAP_SYS_ADMIN, which the wrapper must ignore."""
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.setenv("OS_CYBORG_SMARTNIC_PRIVILEGED__CAPABILITIES", "CAP_SYS_ADMIN")
    monkeypatch.setenv("OS_CYBORG_SMARTNIC_FIRMWARE_PRIVILEGED__CAPABILITIES", "CAP_SYS_BOOT")
    cfg.CONF.set_override("helper_command", shlex.join(
        [sys.executable, "-m", "cyborg_smartnic.host.privsep_helper"]),
        group=module.CONFIG_SECTION)
    assert module.context.client_mode, "another test left the context in-process"
    try:
        yield
    finally:
        module.context.stop()
        cfg.CONF.clear_override("helper_command", group=module.CONFIG_SECTION)


@pytest.fixture
def through_wrapper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _through_wrapper(monkeypatch, privileged)


@pytest.fixture
def firmware_through_wrapper(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield from _through_wrapper(monkeypatch, firmware_privileged)


def _effective_caps(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("CapEff:")), 16)


DAC_OVERRIDE, NET_ADMIN, SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_ADMIN, SYS_BOOT = (
    1 << 1, 1 << 12, 1 << 16, 1 << 17, 1 << 19, 1 << 21, 1 << 22)


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
    effective = _effective_caps(daemon_pid)
    # the sysfs writes' narrow set; the firmware tools' capabilities are in their own context
    assert effective == DAC_OVERRIDE | NET_ADMIN | SYS_PTRACE
    assert os.getsid(daemon_pid) == daemon_pid != os.getsid(0), "not in its own session"
    # asked for through oslo.config's environment source, which privsep-helper would read
    assert os.environ["OS_CYBORG_SMARTNIC_PRIVILEGED__CAPABILITIES"] == "CAP_SYS_ADMIN"
    assert not effective & SYS_ADMIN, "the daemon took a capability from the environment"


@needs_root
def test_the_wrapper_starts_the_firmware_daemon(firmware_through_wrapper: None,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The firmware context gets a daemon of its own, with the firmware tools' capabilities
    (and not CAP_SYS_PTRACE); a refused argument is refused inside it, nothing runs."""
    caplog.set_level(logging.INFO)
    with pytest.raises(ValueError, match="is not one this tool reloads"):
        firmware_privileged.reload_driver("mlx5_core")
    started = [r for r in caplog.records
               if r.getMessage() == f"privsep daemon for {FIRMWARE_CONTEXT} starting"]
    assert started and started[0].process not in (None, os.getpid())
    daemon_pid = started[0].process
    assert daemon_pid is not None
    effective = _effective_caps(daemon_pid)
    assert effective == SYS_ADMIN | SYS_RAWIO | SYS_MODULE | NET_ADMIN | DAC_OVERRIDE
    assert not effective & SYS_BOOT, "the daemon took a capability from the environment"
    assert os.getsid(daemon_pid) == daemon_pid != os.getsid(0), "not in its own session"
    assert privileged.context.channel is None, "the sysfs daemon was started too"


@pytest.mark.parametrize("name", [CONTEXT, FIRMWARE_CONTEXT])
def test_each_known_context_maps_to_its_object(name: str) -> None:
    assert check_argv(["--privsep_context", name, "--privsep_sock_path", SOCK]) == SOCK
    module = firmware_privileged if name == FIRMWARE_CONTEXT else privileged
    assert privsep_helper.context_object(name) is module.context
    assert privsep_helper.CONTEXTS == (CONTEXT, FIRMWARE_CONTEXT)


@pytest.mark.parametrize("name", [
    "cyborg_smartnic.host.ovs.privileged.context", "cyborg_smartnic.host.beneath.context",
    "cyborg_smartnic.host.firmware_privileged.context.x", "os_brick.privileged.default"])
def test_an_unknown_context_is_refused(name: str) -> None:
    with pytest.raises(Refused, match=re.escape(f"is not {CONTEXT} or {FIRMWARE_CONTEXT}")):
        check_argv(["--privsep_context", name, "--privsep_sock_path", SOCK])
    with pytest.raises(Refused, match="is not"):
        privsep_helper.context_object(name)


def test_the_wrapper_refuses_an_unknown_context_as_a_process() -> None:
    done = _run_wrapper("--privsep_context", "cyborg_smartnic.host.beneath.context",
                        "--privsep_sock_path", SOCK)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"{privsep_helper.SCRIPT}: refused: privsep context "
        f"'cyborg_smartnic.host.beneath.context' is not {CONTEXT} or {FIRMWARE_CONTEXT}"]
