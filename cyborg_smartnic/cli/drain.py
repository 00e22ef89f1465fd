"""``host plan|apply --drain``: its options, its connection and how the drain reads.

The planning is ``host.drain`` (pure), the calls ``host.drain_nova``, the sequence
``host.drain_run``; this module only wires them to the command line.
"""

from __future__ import annotations

import argparse
import os

from cyborg_smartnic.cli import common
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import drain
from cyborg_smartnic.host.drain_nova import Clouds
from cyborg_smartnic.host.steps import Plan

HINT = ("`host apply --drain --os-cloud CLOUD` live-migrates the instances holding them "
        "through Nova first")


class DrainNeedsCloud(SmartNicError):
    msg_fmt = "--drain needs --os-cloud (or OS_CLOUD): the drain goes through Nova"


def add_arguments(parser: argparse.ArgumentParser, *, apply: bool) -> None:
    group = parser.add_argument_group("drain through Nova")
    group.add_argument("--drain", action="store_true",
                       help="before any step that disturbs VFs, disable this host's "
                            "nova-compute and live-migrate the instances holding them "
                            "(never implicit); the plan shows the drain first")
    if apply:
        group.add_argument("--drain-timeout", type=float, default=600.0, metavar="SECONDS",
                           help="how long the live migrations may take together "
                                "(default 600)")


def connect(args: argparse.Namespace, hostname: str) -> Clouds | None:
    """The drain's connection when ``--drain`` is given, else None."""
    if not getattr(args, "drain", False):
        return None
    if not args.os_cloud:
        raise DrainNeedsCloud()
    return Clouds.connect(args.os_cloud, hostname, common.retry_policy(args))


def why(host_config: str) -> str:
    return f"host apply of {os.path.basename(host_config)}"


def hint(plan: Plan, args: argparse.Namespace) -> str:
    """What a refusal over VFs in use adds when ``--drain`` was not given."""
    if getattr(args, "drain", False) or not any("is in use" in (s.refused or "")
                                               for s in plan.refused):
        return ""
    return f"; {HINT}"


def table(planned: drain.DrainPlan, why: str = "...") -> str:
    """The drain, shown before the steps (``why``: what the disabled reason says)."""
    service = planned.service
    state = "no nova-compute" if service is None else f"{service.status}, {service.state}"
    if not planned.needed:
        return (f"Drain: no step disturbs a VF; nova-compute on {planned.hostname} ({state}) "
                f"is left as it is.")
    lines = [f"Drain of {planned.hostname} before the steps:"]
    if service is not None and service.status == "enabled":
        lines.append(f"  disable nova-compute on {planned.hostname} ({state}), reason "
                     f"\"{drain.reason(why)}\"; re-enabled once the host is verified")
    elif service is not None and service.ours:
        lines.append(f"  nova-compute on {planned.hostname} is disabled by an earlier drain "
                     f"({service.disabled_reason}); re-enabled once the host is verified")
    elif service is not None:
        lines.append(f"  nova-compute on {planned.hostname} is already disabled by someone "
                     f"else ({service.disabled_reason or 'no reason'}); left disabled")
    lines.append(f"  {len(planned.disturbed_vfs)} VF(s) disturbed; "
                 f"{len(planned.moves)} instance(s) hold them")
    if planned.moves:
        rows = [[m.instance, m.name, " ".join(m.vfs), ", ".join(m.via), m.action, m.why]
                for m in planned.moves]
        lines.append(common.render_table(("instance", "name", "VFs", "held through", "action",
                                          "why"), rows))
    if planned.blocked:
        lines.append(f"  BLOCKED: {len(planned.blocked)} instance(s) cannot be moved; "
                     f"apply stops before touching the host")
    return "\n".join(lines)
