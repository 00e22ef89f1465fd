"""Fill in the mlx5 ``flow_steering_mode`` devlink parameter when discovery left it unknown.

Only the host tool needs this parameter (the plan must know whether to pass through legacy
mode to change it), so it is read here, read-only, through discovery's devlink tool source
(``devlink.param_query``): the live command on the running host, the recorded answer in a
generated tree or snapshot.
"""

from __future__ import annotations

from dataclasses import replace

from cyborg_smartnic.catalog import MLX5_DRIVER
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.sysfs import SysfsReader

PARAM = dl.FLOW_STEERING_PARAM


def read_param(root: str, address: str, name: str = PARAM) -> str | None:
    """Recorded file under a tree root, or the live command on ``/``."""
    text = dl.tool_source(SysfsReader(root)).answer(dl.param_query(address, name))
    return None if text is None else dl.parse_param(text, address, name)


def with_flow_steering(host: Host, root: str) -> Host:
    """``host`` with ``flow_steering_mode`` read for mlx5 PFs that lack it."""
    pfs = tuple(
        replace(pf, flow_steering_mode=read_param(root, str(pf.address)))
        if pf.driver == MLX5_DRIVER and pf.flow_steering_mode is None else pf
        for pf in host.physical_functions)
    return replace(host, physical_functions=pfs)
