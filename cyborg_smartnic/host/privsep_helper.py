"""``cyborg-smartnic-privsep-helper``: the one command the sudoers rule lets operators run.

oslo.privsep starts its daemon with ``[helper_command] --privsep_context C
--privsep_sock_path S``. The generic ``privsep-helper`` would start any context in any
importable module, read config files and ``OS_*`` variables, and connect as root to any
socket path, so a sudoers rule naming it grants far more than our entry points (sudo's
``*`` also matches spaces: ``--privsep_context other.module.context`` can be appended). This
wrapper instead:

- accepts exactly those four arguments, with one of our two contexts (``CONTEXTS``: the
  sysfs/devlink/OVS writes of ``privileged``, and the firmware tools of
  ``firmware_privileged``, which need capabilities the first must not hold);
- accepts a socket path only of the shape ``mkdtemp()`` makes (``<dir>/tmpXXXXXXXX/
  privsep.sock``), reached without any symlink, in a 0700 directory owned by the user who
  ran sudo (``SUDO_UID``), the socket owned by that user too, and after connecting checks
  the listening peer is a process of that user (``SO_PEERCRED``), so no swap can point the
  root process at someone else's socket;
- then runs the privsep daemon for that context with fixed options: no config file, no
  environment, the context's own capabilities; the daemon
  leaves the caller's session (a terminal's hangup or Ctrl-C must not kill it mid-apply).

It must be installed root-owned (with the package and interpreter it runs), like any
command in sudoers.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import socket
import stat
import struct
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from cyborg_smartnic.host.beneath import open_physical_dir

SCRIPT = "cyborg-smartnic-privsep-helper"
CONTEXT = "cyborg_smartnic.host.privileged.context"
FIRMWARE_CONTEXT = "cyborg_smartnic.host.firmware_privileged.context"
CONTEXTS = (CONTEXT, FIRMWARE_CONTEXT)  # the closed set: context_object maps each one
SOCKET_NAME = "privsep.sock"
SOCKET_PARENT = "/tmp"  # noqa: S108 - the client's socket dir parent; the sudoers rule names it
# tempfile.mkdtemp(): "tmp" + 8 of [a-z0-9_]; any parent, one component per directory
_SOCK_RE = re.compile(r"(?:/[A-Za-z0-9._+@-]+)*/tmp[a-z0-9_]{8}/privsep\.sock")
_UNIX_PATH_MAX = 107

LOG = logging.getLogger(__name__)


class Refused(Exception):
    """The wrapper will not start a daemon for these arguments; one line, said why."""


def check_argv(argv: Sequence[str]) -> str:
    """The socket path, if ``argv`` is exactly what oslo.privsep appends for one of our
    contexts."""
    if len(argv) != 4:
        raise Refused(f"expected exactly 4 arguments (--privsep_context {CONTEXT} "
                      f"--privsep_sock_path PATH), got {len(argv)}")
    if argv[0] != "--privsep_context" or argv[2] != "--privsep_sock_path":
        raise Refused("expected --privsep_context CONTEXT --privsep_sock_path PATH, in "
                      "that order")
    if argv[1] not in CONTEXTS:
        raise Refused(f"privsep context {argv[1]!r} is not {' or '.join(CONTEXTS)}")
    return check_sock_path(argv[3])


def context_object(name: str) -> Any:
    """The ``PrivContext`` for one of ``CONTEXTS`` (a fixed table, never an import of a
    name taken from the command line)."""
    from cyborg_smartnic.host import firmware_privileged, privileged  # noqa: PLC0415

    table = {CONTEXT: privileged.context, FIRMWARE_CONTEXT: firmware_privileged.context}
    if name not in table:
        raise Refused(f"privsep context {name!r} is not {' or '.join(CONTEXTS)}")
    return table[name]


def check_sock_path(path: str) -> str:
    """The shape of the path alone: absolute, no ``.``/``..``, what ``mkdtemp`` makes."""
    if len(path) > _UNIX_PATH_MAX or not _SOCK_RE.fullmatch(path):
        raise Refused(f"socket path {path!r} is not <dir>/tmpXXXXXXXX/{SOCKET_NAME}")
    if any(part in (".", "..") for part in path.split("/")):
        raise Refused(f"socket path {path!r} must not contain '.' or '..'")
    return path


def invoking_uid(environ: Mapping[str, str]) -> int:
    """Who asked: ``SUDO_UID`` (set by sudo itself), else our real uid."""
    text = environ.get("SUDO_UID")
    if text is None:
        return os.getuid()
    if not text.isdigit() or len(text) > 10:
        raise Refused(f"SUDO_UID {text!r} is not a uid")
    return int(text)


def connect(path: str, uid: int) -> socket.socket:
    """Connect to the client's socket after checking where it is and whose it is."""
    try:
        dir_fd = open_physical_dir(os.path.dirname(path))  # O_NOFOLLOW at every component
    except OSError as exc:
        raise Refused(f"{os.path.dirname(path)}: {exc.strerror or exc} (no symlink may be "
                      f"on the socket path)") from exc
    try:
        info = os.fstat(dir_fd)
        if info.st_uid != uid or stat.S_IMODE(info.st_mode) & 0o077:
            raise Refused(f"{os.path.dirname(path)} must be a 0700 directory owned by uid "
                          f"{uid} (it is uid {info.st_uid}, mode "
                          f"{stat.S_IMODE(info.st_mode):04o})")
        try:
            sock_info = os.stat(SOCKET_NAME, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise Refused(f"{path}: {exc.strerror}") from exc
        if not stat.S_ISSOCK(sock_info.st_mode) or sock_info.st_uid != uid:
            raise Refused(f"{path} must be a socket owned by uid {uid}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{dir_fd}/{SOCKET_NAME}")  # the directory checked
            pid, peer_uid, _ = struct.unpack(
                "3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                      struct.calcsize("3i")))
            if peer_uid != uid:
                raise Refused(f"{path} is held by pid {pid} of uid {peer_uid}, not uid {uid}")
        except BaseException:
            sock.close()
            raise
        return sock
    finally:
        os.close(dir_fd)


def serve(sock: socket.socket, name: str = CONTEXT) -> int:
    """Fork the privsep daemon for context ``name`` on ``sock``; the parent returns 0 (the
    client waits for that), the child never returns. What ``privsep-helper`` does, with
    our context and options fixed instead of read from the command line and config files."""
    with warnings.catch_warnings():  # oslo.privsep imports eventlet, which warns on import
        warnings.simplefilter("ignore")
        from oslo_config import cfg  # noqa: PLC0415
        from oslo_privsep import comm, daemon  # noqa: PLC0415

        context = context_object(name)

    cfg.CONF(args=[], project="cyborg-smartnic", prog=SCRIPT, default_config_files=[],
             default_config_dirs=[], use_env=False)
    daemon.set_cloexec(sock)
    channel = comm.ServerChannel(sock)
    if os.fork() != 0:
        return 0
    os.setsid()  # out of the caller's session: no SIGHUP/SIGINT from its terminal
    daemon.replace_logging(daemon.PrivsepLogHandler(channel))
    logging.getLogger().setLevel(logging.INFO)  # the writes are logged to the client
    LOG.info("privsep daemon for %s starting", name)
    try:
        daemon.Daemon(channel, context).run()
    except Exception as exc:  # reported to the client, then exit non-zero
        LOG.exception(exc)
        os._exit(1)
    os._exit(0)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    env = os.environ if environ is None else environ
    try:
        path = check_argv(args)
        if os.geteuid() != 0:
            raise Refused("must be started as root (through sudo, see docs/host.md)")
        sock = connect(path, invoking_uid(env))
    except Refused as exc:
        print(f"{SCRIPT}: refused: {exc}", file=sys.stderr)
        return 2
    os.environ.clear()
    os.environ.update({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    return serve(sock, args[1])


def script_path() -> str:
    """Where this install put the wrapper (a venv's bin/, or the system scripts dir)."""
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, SCRIPT)
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(SCRIPT) or os.path.join("/usr/local/bin", SCRIPT)


def sudo_command() -> list[str]:
    """``[helper_command]`` for a non-root caller: sudo and the wrapper by absolute path
    (the sudoers rule names that path; sudo's secure_path does not hold a venv).
    ``--non-interactive``: without the rule, fail at once instead of asking a password."""
    return ["sudo", "--non-interactive", script_path()]


def use_sudo(conf: Any, section: str) -> None:
    """Client side, not root: start the daemon as ``sudo <wrapper>`` (unless the operator
    configured another ``helper_command``) with its socket directory under ``/tmp``, the
    one parent the shipped sudoers rule accepts (a TMPDIR elsewhere would not match it)."""
    conf.set_default("helper_command", shlex.join(sudo_command()), group=section)
    tempfile.tempdir = SOCKET_PARENT


if __name__ == "__main__":
    sys.exit(main())
