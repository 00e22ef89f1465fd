"""Privsep entry points that change Open vSwitch: other_config keys and a daemon restart.

They run in the same oslo.privsep context as the sysfs/devlink writes
(``cyborg_smartnic.host.privileged.context``) and, like those, re-validate every argument in
the daemon: the OVSDB connection must be ``unix:`` plus an absolute path to an existing
socket; keys come from a fixed set and values from a closed set or a bounded integer; the
restart names one of two systemd units. Writes use ovsdbapp (one transaction), never a shell
and never ovs-vsctl. Connecting to root's OVSDB socket needs CAP_DAC_OVERRIDE, which the
context already keeps.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
from collections.abc import Callable

from cyborg_smartnic.host.config import MAX_MAX_IDLE_MS, MIN_MAX_IDLE_MS, TC_POLICIES
from cyborg_smartnic.host.ovs import ovsdb
from cyborg_smartnic.host.privileged import context

LOG = logging.getLogger(__name__)

BOOLEANS = frozenset({"true", "false"})
OTHER_CONFIG: dict[str, frozenset[str] | tuple[int, int]] = {
    "hw-offload": BOOLEANS,
    "tc-policy": frozenset(TC_POLICIES),
    "max-idle": (MIN_MAX_IDLE_MS, MAX_MAX_IDLE_MS),
}
UNITS = frozenset({"openvswitch-switch.service", "ovs-vswitchd.service"})
SYSTEMCTL_PATHS = ("/usr/bin/systemctl", "/bin/systemctl")
RESTART_TIMEOUT = 120.0

Runner = Callable[[list[str]], None]


def _systemctl(argv: list[str]) -> None:
    binary = next((p for p in SYSTEMCTL_PATHS if os.access(p, os.X_OK)), None)
    if binary is None:
        raise OSError(errno.ENOENT, "systemctl is not installed: restart ovs-vswitchd by hand")
    try:
        done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                              timeout=RESTART_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OSError(errno.ETIMEDOUT, f"{' '.join(argv)}: no answer in "
                                       f"{RESTART_TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        lines = (done.stderr or done.stdout or "").strip().splitlines()
        raise OSError(errno.EIO, f"{' '.join(argv)}: "
                                 f"{lines[-1] if lines else f'exit status {done.returncode}'}")


_runner: Runner = _systemctl


def use_runner(runner: Runner) -> Runner:
    """Swap what runs the restart command (tests: no systemd here); not an entry point."""
    global _runner  # one process-wide sink, swapped only by tests
    previous, _runner = _runner, runner
    return previous


# --------------------------------------------------------------------------- validation
def connection(value: object) -> str:
    """``unix:/abs/path`` of an existing socket, else ValueError."""
    if not isinstance(value, str) or not value.startswith("unix:") or "\0" in value:
        raise ValueError("OVSDB connection must be 'unix:' followed by a socket path")
    path = value[len("unix:"):]
    if not os.path.isabs(path) or ".." in path.split(os.sep):
        raise ValueError(f"OVSDB socket {path!r} must be an absolute path without '..'")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise OSError(exc.errno or errno.ENOENT, f"OVSDB socket {path}: "
                                                 f"{os.strerror(exc.errno or errno.ENOENT)}"
                      ) from exc
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path} is not a socket")
    return f"unix:{os.path.realpath(path)}"


def other_config_value(key: object, value: object) -> str | None:
    """The value to write for ``key`` (``None``: remove the key), else ValueError."""
    if not isinstance(key, str) or key not in OTHER_CONFIG:
        raise ValueError(f"other_config key {key!r} is not one this tool sets "
                         f"({', '.join(sorted(OTHER_CONFIG))})")
    if value is None:
        return None
    allowed = OTHER_CONFIG[key]
    if isinstance(allowed, frozenset):
        if value not in allowed:
            raise ValueError(f"{key} value {value!r} is not one of {sorted(allowed)}")
        return str(value)
    low, high = allowed
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise ValueError(f"{key} value {value!r} is not a whole number of milliseconds")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{key} value {number} is outside {low}-{high}")
    return str(number)


# --------------------------------------------------------------------------- entry points
@context.entrypoint
def ovs_set_other_config(conn: str, key: str, value: str | int | None) -> None:
    """Set ``Open_vSwitch:other_config:<key>`` (or remove it when ``value`` is None)."""
    target = connection(conn)
    checked = other_config_value(key, value)
    LOG.info("OVSDB %s: other_config:%s = %s", target, key,
             "(removed)" if checked is None else checked)
    try:
        ovsdb.write_other_config(target, {key: checked})
    except ovsdb.OvsUnavailable as exc:
        raise OSError(errno.ECONNREFUSED, str(exc)) from exc
    except RuntimeError as exc:  # ovsdbapp's transaction errors
        raise OSError(errno.EIO, f"OVSDB {target}: {exc}") from exc


@context.entrypoint
def ovs_restart_vswitchd(unit: str) -> None:
    """``systemctl restart <unit>`` for one of the units in ``UNITS``."""
    if unit not in UNITS:
        raise ValueError(f"systemd unit {unit!r} is not one of {sorted(UNITS)}")
    argv = ["systemctl", "restart", unit]
    LOG.info("running %s", " ".join(argv))
    _runner(argv)
