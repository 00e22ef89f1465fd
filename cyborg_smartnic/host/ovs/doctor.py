"""The doctor's OVS offload checks: is offload asked, in effect, wired and really used?

Pure: OVSDB's state, the discovery model and the datapath/tc/ethtool readings in, checks
with remedies out. The chain that must hold for a flow to run on the NIC, in check order:
hw-offload set in OVSDB and read by the running ovs-vswitchd (it started after the change);
the PF uplink on its bridge with its eswitch in switchdev; the representors of Neutron's
ports on the bridge; ``hw-tc-offload`` on the uplink and each representor; and finally
what the datapath says: flows offloaded vs not, and tc filters ``in_hw`` vs ``not_in_hw``
per representor (what operators otherwise check by hand with tcpdump on the representor).
"""

from __future__ import annotations

import time

from cyborg_smartnic.discovery.model import ESWITCH_SWITCHDEV, Host
from cyborg_smartnic.host.config import OVS_BRIDGE, OvsConfig
from cyborg_smartnic.host.doctor import FAIL, OK, WARN, Check
from cyborg_smartnic.host.ovs import plan as ovs_plan
from cyborg_smartnic.host.ovs.datapath import NON_OFFLOADED, OFFLOADED, Readings
from cyborg_smartnic.host.ovs.state import OvsState

APPLY = "cyborg-smartnic host apply --yes HOST.yaml"
RESTART = ovs_plan.RESTART_COMMAND
TC_FEATURE = "hw-tc-offload"
SOFTWARE_SHARE = 0.01  # more packets than this in software flows is worth a warning


def wants_checks(config: OvsConfig | None, state: OvsState | None) -> bool:
    """Run the offload checks when host.yaml has ``ovs:`` or OVS has offload on."""
    return config is not None or (
        state is not None and state.other_config.get(ovs_plan.HW_OFFLOAD) == "true")


def devices(config: OvsConfig | None, state: OvsState | None, host: Host) -> tuple[str, ...]:
    """The netdevs whose tc filters and features matter: uplinks and Neutron's
    representors on the bridge."""
    names = [u.netdev for u in (config.uplinks if config else ())]
    names += neutron_representors(config, state, host)[0]
    return tuple(dict.fromkeys(names))


def neutron_representors(config: OvsConfig | None, state: OvsState | None, host: Host
                         ) -> tuple[list[str], list[str]]:
    """(representors, other Neutron ports) plugged into the bridge."""
    if state is None:
        return [], []
    bridge = state.bridge(config.bridge if config else OVS_BRIDGE)
    if bridge is None:
        return [], []
    reps = {r for pf in host.physical_functions for r in pf.representors}
    ports = [i for i in bridge.interfaces if i.neutron_port]
    return ([i.name for i in ports if i.name in reps],
            [i.name for i in ports if i.name not in reps])


def checks(config: OvsConfig | None, state: OvsState | None, unreadable: str | None,
           host: Host, readings: Readings) -> list[Check]:
    """Every offload check, in the order of the chain above."""
    if state is None:
        return [Check("ovs", FAIL, f"cannot read Open vSwitch: {unreadable or 'not running'}",
                      "start Open vSwitch (systemctl start openvswitch-switch) or point "
                      "--ovs-rundir at its run directory")]
    out = [_settings(config, state)]
    out += _uplinks(config, state, host, readings)
    out += _representors(config, state, host, readings)
    out += _datapaths(state, readings)
    return out


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def _settings(config: OvsConfig | None, state: OvsState) -> Check:
    want = ovs_plan.wanted(config) if config else {ovs_plan.HW_OFFLOAD: "true"}
    wrong = [f"{k}={ovs_plan.current(state, k)} (host.yaml: {v})" for k, v in want.items()
             if ovs_plan.current(state, k) != v]
    if wrong:
        return Check("ovs hw-offload", FAIL, "Open vSwitch settings differ: " + ", ".join(wrong),
                     APPLY)
    offload = ovs_plan.current(state, ovs_plan.HW_OFFLOAD) == "true"
    shown = ", ".join(f"{k}={ovs_plan.current(state, k)}" for k in ovs_plan.DEFAULTS)
    proc = state.vswitchd
    if proc is None:
        return Check("ovs hw-offload", FAIL, f"{shown}, but ovs-vswitchd is not running",
                     "systemctl start openvswitch-switch")
    stale = ovs_plan.not_in_effect(state)
    if stale:
        when = max(state.changed_at[k] for k in stale)
        return Check("ovs hw-offload", FAIL,
                     f"{', '.join(stale)} changed at {_when(when)}, after ovs-vswitchd "
                     f"(pid {proc.pid}) started at {_when(proc.started_at)}: not in effect",
                     f"{RESTART} (disruptive: the datapath is flushed), or host apply "
                     f"--restart-ovs")
    if not offload:
        return Check("ovs hw-offload", OK, f"{shown} (offload not asked for)")
    since = state.changed_at.get(ovs_plan.HW_OFFLOAD)
    if since is None:
        return Check("ovs hw-offload", WARN, f"{shown}; cannot tell whether ovs-vswitchd "
                     f"(started {_when(proc.started_at)}) started after it was set (database "
                     f"file unreadable)", f"restart ovs-vswitchd once to be sure: {RESTART}")
    return Check("ovs hw-offload", OK, f"{shown}; in effect: set {_when(since)}, ovs-vswitchd "
                                       f"(pid {proc.pid}) started {_when(proc.started_at)}")


def _feature(name: str, readings: Readings) -> Check:
    features = readings.features.get(name)
    if features is None:
        return Check(f"{TC_FEATURE} {name}", WARN, "cannot tell: no ethtool answer (not "
                     "installed, or not recorded)", f"ethtool -k {name} | grep {TC_FEATURE}")
    if TC_FEATURE not in features:
        return Check(f"{TC_FEATURE} {name}", FAIL, f"{name} has no {TC_FEATURE} feature: its "
                     f"driver cannot offload tc flower rules", "use a switchdev-capable NIC "
                                                               "and driver")
    if not features[TC_FEATURE]:
        return Check(f"{TC_FEATURE} {name}", FAIL, f"{TC_FEATURE} is off on {name}: OVS "
                     f"flows through it stay in software",
                     f"ethtool -K {name} {TC_FEATURE} on (and persist it, e.g. a udev rule)")
    return Check(f"{TC_FEATURE} {name}", OK, f"{TC_FEATURE} on")


def _uplinks(config: OvsConfig | None, state: OvsState, host: Host,
             readings: Readings) -> list[Check]:
    out: list[Check] = []
    by_netdev = {pf.netdev: pf for pf in host.physical_functions if pf.netdev}
    for uplink in config.uplinks if config else ():
        name = f"ovs uplink {uplink.netdev}"
        pf = by_netdev.get(uplink.netdev)
        on = state.bridge_of(uplink.netdev)
        if pf is None:
            out.append(Check(name, FAIL, f"no PF netdev {uplink.netdev} on this host",
                             "fix ovs.uplinks in host.yaml"))
            continue
        if pf.eswitch_mode != ESWITCH_SWITCHDEV:
            out.append(Check(name, FAIL, f"{pf.address} is in {pf.eswitch_mode or 'unknown'} "
                             f"eswitch mode: nothing is offloaded through it",
                             "eswitch_mode: switchdev in host.yaml, then host apply"))
        elif on is None or on.name != uplink.bridge:
            where = f"on {on.name}" if on else "on no bridge"
            command = (f"ovs-vsctl del-port {on.name} {uplink.netdev} -- " if on else
                       "ovs-vsctl ") + f"add-port {uplink.bridge} {uplink.netdev}"
            out.append(Check(name, FAIL, f"{uplink.netdev} ({pf.address}) is {where}, "
                                         f"expected on {uplink.bridge}", command))
        else:
            out.append(Check(name, OK, f"{uplink.netdev} ({pf.address}, switchdev) is a port "
                                       f"of {uplink.bridge}"))
        out.append(_feature(uplink.netdev, readings))
    return out


def _representors(config: OvsConfig | None, state: OvsState, host: Host,
                  readings: Readings) -> list[Check]:
    if config is not None and config.representors == "none":
        return []
    bridge = config.bridge if config else OVS_BRIDGE
    reps, others = neutron_representors(config, state, host)
    out: list[Check] = []
    if state.bridge(bridge) is None:
        return [Check("ovs representors", WARN, f"bridge {bridge} does not exist",
                      "start Neutron's OVS agent (or ovn-controller), which creates it")]
    if not reps:
        out.append(Check("ovs representors", WARN if not others else FAIL,
                         f"no VF representor of a Neutron port on {bridge}"
                         + (f"; Neutron ports there are not representors: "
                            f"{', '.join(others)}" if others else " (no offloaded port "
                                                                   "plugged yet)"),
                         "boot an instance with a direct port (binding:profile "
                         "capabilities [switchdev]) on a VF of a switchdev PF"
                         if not others else "ports that are not representors (tap, "
                         "vhost-user) are never offloaded: use direct ports with the "
                         "switchdev capability"))
    else:
        detail = f"{len(reps)} on {bridge}: {', '.join(reps)}"
        if others:
            detail += f"; not offloadable (not representors): {', '.join(others)}"
        out.append(Check("ovs representors", OK if not others else WARN, detail))
    for rep in reps:
        out.append(_feature(rep, readings))
        out.append(_tc(rep, readings))
    return out


def _tc(name: str, readings: Readings) -> Check:
    count = readings.tc.get(name)
    label = f"tc {name}"
    if count is None:
        return Check(label, WARN, "cannot tell: no tc answer (not installed, or not "
                                  "recorded)", f"tc -s filter show dev {name} ingress")
    if count.not_in_hw:
        return Check(label, FAIL, f"{count.not_in_hw} of {count.total} flower filter(s) "
                     f"not_in_hw: those flows run in the kernel's software path",
                     f"tc -s filter show dev {name} ingress shows which; usual causes: "
                     f"{TC_FEATURE} off, a match or action the NIC cannot do (e.g. "
                     f"connection tracking on older firmware), or the NIC's flow table "
                     f"full. tc_policy: skip_sw makes such flows fail at insert instead")
    if not count.total:
        return Check(label, OK, "no flower filters (no traffic through it yet)")
    return Check(label, OK, f"{count.in_hw} flower filter(s), all in_hw"
                            + (f" ({count.skip_sw} skip_sw)" if count.skip_sw else ""))


def _datapaths(state: OvsState, readings: Readings) -> list[Check]:
    offload = ovs_plan.current(state, ovs_plan.HW_OFFLOAD) == "true"
    if not readings.datapaths_known:
        return [Check("ovs datapath", WARN, "cannot tell: ovs-appctl did not answer (or "
                                            "nothing recorded)",
                      "ovs-appctl dpctl/dump-flows type=offloaded")]
    out: list[Check] = []
    for dp, counts in sorted(readings.flows.items()):
        hw, sw = counts.get(OFFLOADED), counts.get(NON_OFFLOADED)
        if hw is None or sw is None:
            out.append(Check(f"ovs datapath {dp}", WARN, "cannot tell: dump-flows did not "
                             "answer", f"ovs-appctl dpctl/dump-flows {dp} type=offloaded"))
            continue
        total = hw.flows + sw.flows
        share = f"{hw.flows} of {total} flow(s) offloaded" + (
            f" ({100 * hw.flows / total:.0f}%)" if total else "")
        packets = f"; packets: {hw.packets} in hardware, {sw.packets} in software"
        if not total:
            out.append(Check(f"ovs datapath {dp}", OK, "no flows (no traffic)"))
        elif offload and not hw.flows:
            out.append(Check(f"ovs datapath {dp}", FAIL, share + packets,
                             "no flow reached the NIC: see the tc and hw-tc-offload checks; "
                             "a userspace (netdev) datapath offloads only with DPDK rte_flow"
                             if dp.startswith("netdev@") else
                             "no flow reached the NIC: see the tc and hw-tc-offload checks"))
        elif offload and sw.packets > SOFTWARE_SHARE * (hw.packets + sw.packets):
            out.append(Check(f"ovs datapath {dp}", WARN, share + packets,
                             "more than 1% of the packets take the software path: see the "
                             "tc not_in_hw check of their representor"))
        else:
            out.append(Check(f"ovs datapath {dp}", OK, share + packets))
    if not out:
        out.append(Check("ovs datapath", WARN, "ovs-vswitchd has no datapath",
                         "add a bridge (Neutron's agent creates br-int)"))
    return out

