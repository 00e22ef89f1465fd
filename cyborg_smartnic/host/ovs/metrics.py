"""Prometheus text format for monitoring: per-PF/VF capacity and use, offload counters,
and what ovs-vswitchd costs. Built with prometheus-client on a private registry, so the
process's own default metrics never leak in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.ovs.cost import CLASSES, Cost
from cyborg_smartnic.host.ovs.datapath import NON_OFFLOADED, OFFLOADED, Readings

PREFIX = "cyborg_smartnic_"


def render(host: Host, in_use: InUse, cost: Cost | None = None,
           readings: Readings | None = None) -> bytes:
    registry = CollectorRegistry(auto_describe=True)
    pf_labels = ["pf", "netdev", "model"]
    capacity = Gauge(PREFIX + "pf_vfs_total", "VFs the PF can create (sriov_totalvfs)",
                     pf_labels, registry=registry)
    enabled = Gauge(PREFIX + "pf_vfs_enabled", "VFs that exist (sriov_numvfs)", pf_labels,
                    registry=registry)
    used = Gauge(PREFIX + "pf_vfs_in_use", "VFs in use (bound to a guest or a host user)",
                 pf_labels, registry=registry)
    vf_used = Gauge(PREFIX + "vf_in_use", "1 when the VF is in use", ["pf", "vf", "index"],
                    registry=registry)
    for pf in host.physical_functions:
        labels = (str(pf.address), pf.netdev or "", pf.model)
        capacity.labels(*labels).set(pf.total_vfs)
        enabled.labels(*labels).set(pf.num_vfs)
        busy = 0
        for vf in pf.virtual_functions:
            flag = in_use.reason_for(str(vf.address)) is not None
            busy += flag
            vf_used.labels(str(pf.address), str(vf.address), str(vf.index)).set(int(flag))
        used.labels(*labels).set(busy)
    if readings is not None:
        filters = Gauge(PREFIX + "tc_flower_filters", "tc flower filters on a netdev's "
                        "ingress (representor or uplink) by hardware state",
                        ["netdev", "state"], registry=registry)
        for netdev, count in sorted(readings.tc.items()):
            if count is not None:
                filters.labels(netdev, "in_hw").set(count.in_hw)
                filters.labels(netdev, "not_in_hw").set(count.not_in_hw)
        flows = Gauge(PREFIX + "ovs_datapath_flows", "datapath flows by offload state",
                      ["datapath", "type"], registry=registry)
        for dp, kinds in sorted(readings.flows.items()):
            for kind in (OFFLOADED, NON_OFFLOADED):
                found = kinds.get(kind)
                if found is not None:
                    flows.labels(dp, kind).set(found.flows)
    if cost is not None:
        cores = Gauge(PREFIX + "ovs_vswitchd_cores", "CPU cores ovs-vswitchd's threads used "
                      "over the measured interval", ["thread_class"], registry=registry)
        threads = Gauge(PREFIX + "ovs_vswitchd_threads", "ovs-vswitchd threads",
                        ["thread_class"], registry=registry)
        for kind in CLASSES:
            cores.labels(kind).set(cost.cores.get(kind, 0.0))
            threads.labels(kind).set(cost.threads.get(kind, 0))
        pps = Gauge(PREFIX + "ovs_datapath_packets_per_second", "datapath lookups per second "
                    "over the measured interval", ["datapath"], registry=registry)
        for load in cost.datapaths:
            pps.labels(load.name).set(load.packets_per_second)
        Gauge(PREFIX + "ovs_smartnic_pays", "1 when OVS uses more cores than the rule of "
              "thumb (4)", registry=registry).set(int(cost.pays))
    return generate_latest(registry)
