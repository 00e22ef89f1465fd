"""The in-use guard: one rule for the planner and for the executor's re-check before each write.

The planner asks it once per step while planning; the executor asks it again right before a
step (or an undo step) that would destroy or rebind VFs, with the witnesses read afresh. Both
go through ``witnesses`` and ``refusal``, so a witness added to one cannot be missing from the
other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host import inuse

if TYPE_CHECKING:
    from cyborg_smartnic.apiclient import RetryPolicy


def witnesses(root: str, host: Host, cloud: str | None,
              policy: RetryPolicy | None = None) -> inuse.InUse:
    """Every witness of VF use: the local ones under ``root`` and, when ``cloud`` names a
    clouds.yaml entry, the accelerator requests Cyborg has bound on this host (each API
    request bounded by ``policy``)."""
    return inuse.detect(root, host).merged(inuse.cyborg_in_use(cloud, host.hostname, policy))


def refusal(in_use: inuse.InUse, vfs: Iterable[str]) -> str | None:
    """Why destroying or rebinding ``vfs`` must not happen now, or None when it may.

    Blind (some witness could not be read) refuses any VF: the tool cannot know it is free.
    """
    wanted = tuple(dict.fromkeys(vfs))
    if wanted and in_use.blind:
        return f"cannot tell whether these VFs are free: {in_use.blind}"
    busy = [f"VF {address} is in use ({why})" for address in wanted
            if (why := in_use.reason_for(address))]
    return "; ".join(busy) or None
