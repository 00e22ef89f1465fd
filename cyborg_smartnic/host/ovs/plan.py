"""Diff host.yaml's ``ovs:`` section against the running Open vSwitch into steps (pure).

Order, after every PF step (the eswitch must be in switchdev before OVS offloads to it):
``other_config`` writes (hw-offload, tc-policy, max-idle), then an ovs-vswitchd restart when
a setting the daemon reads only at start changed or is not in effect yet. ovs-vswitchd reads
``hw-offload`` and ``tc-policy`` once, when it enables the flow API (its log says "netdev:
Flow API Enabled" and "tc: Using policy ..."); ``max-idle`` is read on every reconfigure.
The restart is disruptive (datapath flows are flushed and rebuilt), so it is a manual step
unless the operator asked for it (``--restart-ovs``). Missing uplinks are manual steps too:
bridges and their ports belong to Neutron or the operator, not to this tool.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cyborg_smartnic.discovery.model import ESWITCH_SWITCHDEV, Host, PhysicalFunction
from cyborg_smartnic.errors import SourceError
from cyborg_smartnic.host.config import InvalidHostConfig, OvsConfig, OvsUplink
from cyborg_smartnic.host.ovs.state import OvsState
from cyborg_smartnic.host.steps import MANUAL, RESTART_OVS, SET_ESWITCH_MODE, SET_OVS_CONFIG, Step

HW_OFFLOAD = "hw-offload"
TC_POLICY = "tc-policy"
MAX_IDLE = "max-idle"
#: What Open vSwitch assumes when the key is absent (vswitch.xml).
DEFAULTS = {HW_OFFLOAD: "false", TC_POLICY: "none", MAX_IDLE: "10000"}
#: Keys ovs-vswitchd reads only when it starts (enables the flow API).
READ_AT_START = (HW_OFFLOAD, TC_POLICY)
TARGET = "Open_vSwitch"
VSWITCHD = "ovs-vswitchd"
RESTART_COMMAND = "systemctl restart openvswitch-switch"


@dataclass(frozen=True, slots=True)
class OvsInput:
    """What the planner knows about the running OVS: its state, or why it could not read
    it; and whether the operator allows the restart (``--restart-ovs``)."""

    state: OvsState | None
    unreadable: str | None = None
    restart: bool = False


def wanted(config: OvsConfig) -> dict[str, str]:
    """other_config values host.yaml asks for, in write order."""
    out: dict[str, str] = {}
    if config.hw_offload is not None:
        out[HW_OFFLOAD] = "true" if config.hw_offload else "false"
    if config.tc_policy is not None:
        out[TC_POLICY] = config.tc_policy
    if config.max_idle_ms is not None:
        out[MAX_IDLE] = str(config.max_idle_ms)
    return out


def current(state: OvsState, key: str) -> str:
    return state.other_config.get(key, DEFAULTS[key])


def not_in_effect(state: OvsState) -> list[str]:
    """Read-at-start keys changed after the running ovs-vswitchd started."""
    proc = state.vswitchd
    if proc is None:
        return []
    return [key for key in READ_AT_START
            if key in state.changed_at and state.changed_at[key] > proc.started_at]


def steps(config: OvsConfig, host: Host, ovs: OvsInput,
          earlier: Iterable[Step] = ()) -> tuple[list[Step], list[str]]:
    """The OVS steps and notes; raises ``InvalidHostConfig`` for an uplink this host lacks."""
    uplink_pfs = _uplink_pfs(config, host)
    state = ovs.state
    if state is None:
        why = ovs.unreadable or "not running"
        return [Step(SET_OVS_CONFIG, TARGET, reason="configure Open vSwitch offload",
                       refused=f"cannot read Open vSwitch ({why}); start it or point "
                               f"--ovs-rundir at it")], []
    out: list[Step] = []
    notes: list[str] = []
    for key, value in wanted(config).items():
        have = current(state, key)
        if have != value:
            out.append(Step(SET_OVS_CONFIG, TARGET, reason=_why(key, value),
                              from_value=state.other_config.get(key), to_value=value,
                              param=key))
    restart_for = [s.param for s in out if s.param in READ_AT_START]
    stale = [k for k in not_in_effect(state) if k not in restart_for]
    if (restart_for or stale) and state.vswitchd is not None:
        keys = ", ".join(str(k) for k in [*restart_for, *stale])
        reason = (f"ovs-vswitchd reads {keys} only when it starts"
                  + (" (set after the running daemon started)" if stale else "")
                  + "; the restart flushes the datapath: traffic stalls until flows are "
                    "rebuilt")
        if ovs.restart:
            out.append(Step(RESTART_OVS, VSWITCHD, reason=reason, disruptive=True))
        else:
            out.append(Step(MANUAL, VSWITCHD, reason=f"{reason}. Run `{RESTART_COMMAND}` "
                                                         f"in a quiet window, or apply with "
                                                         f"--restart-ovs", disruptive=True))
    elif restart_for:
        notes.append(f"ovs-vswitchd is not running: {', '.join(str(k) for k in restart_for)} "
                     f"take effect when it starts")
    switchdev_after = _eswitch_after(host, earlier)
    for uplink, pf in uplink_pfs:
        mode = switchdev_after.get(str(pf.address), pf.eswitch_mode)
        if config.hw_offload and mode != ESWITCH_SWITCHDEV:
            notes.append(f"uplink {uplink.netdev} ({pf.address}) stays in {mode or 'unknown'} "
                         f"eswitch mode: nothing on it is offloaded (set eswitch_mode: "
                         f"switchdev)")
        on = state.bridge_of(uplink.netdev)
        if on is not None and on.name == uplink.bridge:
            continue
        where = f" (it is on {on.name})" if on is not None else ""
        command = (f"ovs-vsctl del-port {on.name} {uplink.netdev} -- " if on else "ovs-vsctl ")
        command += f"add-port {uplink.bridge} {uplink.netdev}"
        reason = f"uplink {uplink.netdev} must be a port of {uplink.bridge}{where}: `{command}`"
        if state.bridge(uplink.bridge) is None:
            reason += f" (bridge {uplink.bridge} does not exist yet: Neutron's agent or " \
                      f"`ovs-vsctl add-br` creates it)"
        out.append(Step(MANUAL, uplink.netdev, reason=reason, pf=str(pf.address),
                          to_value=uplink.bridge))
    return out, notes


def _why(key: str, value: str) -> str:
    if key == HW_OFFLOAD:
        return "offload datapath flows to the NIC (TC flower)" if value == "true" else \
            "stop offloading flows"
    if key == TC_POLICY:
        return {"skip_sw": "flows only in hardware (fail when the NIC cannot)",
                "skip_hw": "flows only in the kernel's tc software path",
                "none": "hardware when possible, else software"}[value]
    return f"datapath flows idle for {value} ms are removed"


def _uplink_pfs(config: OvsConfig, host: Host) -> list[tuple[OvsUplink, PhysicalFunction]]:
    by_netdev = {pf.netdev: pf for pf in host.physical_functions if pf.netdev}
    errors: list[SourceError] = []
    found: list[tuple[OvsUplink, PhysicalFunction]] = []
    for uplink in config.uplinks:
        pf = by_netdev.get(uplink.netdev)
        if pf is None:
            errors.append(uplink.origin.error(f"no PF netdev {uplink.netdev!r} on this host "
                                              f"(an uplink is a PF's netdev)"))
            continue
        found.append((uplink, pf))
    if errors:
        raise InvalidHostConfig(tuple(errors))
    return found


def _eswitch_after(host: Host, earlier: Iterable[Step]) -> dict[str, str]:
    modes: dict[str, str] = {}
    for step in earlier:
        if step.kind == SET_ESWITCH_MODE and step.pf and not step.refused:
            modes[step.pf] = str(step.to_value)
    return modes
