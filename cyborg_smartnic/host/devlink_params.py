"""Fill in the mlx5 ``flow_steering_mode`` devlink parameter when discovery left it unknown.

Only the host tool needs this parameter (the plan must know whether to pass through legacy
mode to change it), so it is read here, read-only, the way discovery reads devlink: on the
running host ``devlink -j dev param show pci/<pf> name flow_steering_mode`` (no shell), for
generated trees and snapshots ``<root>/devlink/dev-param-<pf>.json`` holding the same output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import replace
from typing import Any

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.sysfs import open_regular

LOG = logging.getLogger(__name__)

PARAM = "flow_steering_mode"
MLX5 = "mlx5_core"
TIMEOUT = 10.0


def parse_param(text: str, address: str, name: str = PARAM) -> str | None:
    """The runtime value of ``name`` from ``devlink -j dev param show`` output."""
    try:
        data: Any = json.loads(text)
        entries = data["param"][f"pci/{address}"]
        for entry in entries:
            if entry.get("name") != name:
                continue
            for value in entry.get("values", ()):
                if value.get("cmode") == "runtime":
                    return str(value["value"])
    except (ValueError, KeyError, TypeError, AttributeError):
        LOG.warning("ignoring unreadable devlink param output for %s", address)
    return None


def read_param(root: str, address: str, name: str = PARAM) -> str | None:
    """Recorded file under a tree root, or the live command on ``/``."""
    if os.path.realpath(root) != "/":
        path = os.path.join(root, "devlink", f"dev-param-{address}.json")
        try:
            with open_regular(path, encoding="utf-8") as stream:
                return parse_param(stream.read(), address, name)
        except OSError:
            return None
    binary = shutil.which("devlink")
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "-j", "dev", "param", "show", f"pci/{address}", "name",
                               name], capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("devlink param show %s failed: %s", address, exc)
        return None
    return parse_param(done.stdout, address, name) if done.returncode == 0 else None


def with_flow_steering(host: Host, root: str) -> Host:
    """``host`` with ``flow_steering_mode`` read for mlx5 PFs that lack it."""
    pfs = tuple(
        replace(pf, flow_steering_mode=read_param(root, str(pf.address)))
        if pf.driver == MLX5 and pf.flow_steering_mode is None else pf
        for pf in host.physical_functions)
    return replace(host, physical_functions=pfs)
