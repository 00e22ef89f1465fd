"""STAND-IN for Neutron's L2 agents in the local stack: their state reports, nothing else.

ML2 binds a port only on a host where an agent of the mechanism driver's type is alive
(reported within `agent_down_time`, 75 s). The real agents cannot run here: the SR-IOV NIC
agent needs SR-IOV netdevs, the Open vSwitch agent a kernel datapath and links the machine
cannot create. This process sends what those agents send for liveness and nothing more: the
agents' own `report_state` RPC (neutron.agent.rpc.PluginReportStateAPI, on the `neutron`
control exchange that neutron.common.config sets) every --interval seconds, for a
"NIC Switch agent" whose device_mappings cover the physnets and an "Open vSwitch agent"
whose bridge_mappings do. It configures no VF, plugs no port and answers no port update;
Neutron's server, ML2 and its mechanism drivers, which decide the binding, are real.

    python deploy/stacklib/neutron_agents.py --config-file neutron.conf --host HOST \
        --physnets physnet1,physnet2 [--interval 20]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

NIC_SWITCH = "NIC Switch agent"
OPEN_VSWITCH = "Open vSwitch agent"
RETRY_TIMEOUT = 5


def agent_states(host: str, physnets: Sequence[str]) -> list[dict[str, Any]]:
    """The two agents' state bodies, shaped as the real agents shape them (pure)."""
    device_mappings = {net: [f"standin-{net}"] for net in physnets}
    bridge_mappings = {net: f"br-{net}" for net in physnets}
    return [
        {"binary": "neutron-sriov-nic-agent", "host": host, "topic": "N/A",
         "agent_type": NIC_SWITCH, "start_flag": True,
         "configurations": {"device_mappings": device_mappings, "extensions": [],
                            "stand_in": "deploy/stacklib/neutron_agents.py"}},
        {"binary": "neutron-openvswitch-agent", "host": host, "topic": "N/A",
         "agent_type": OPEN_VSWITCH, "start_flag": True,
         "configurations": {"bridge_mappings": bridge_mappings,
                            "integration_bridge": "br-int", "tunnel_types": [],
                            "datapath_type": "system", "ovs_hybrid_plug": False,
                            "ovs_capabilities": {"datapath_types": ["system"],
                                                 "iface_types": []},
                            "extensions": [],
                            "stand_in": "deploy/stacklib/neutron_agents.py"}},
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neutron_agents.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="the stack's neutron.conf")
    parser.add_argument("--host", required=True, help="the compute host the agents serve")
    parser.add_argument("--physnets", required=True, help="comma-separated physnets")
    parser.add_argument("--interval", type=float, default=20.0)
    args = parser.parse_args(argv)
    physnets = [p.strip() for p in args.physnets.split(",") if p.strip()]

    # Heavy imports here, not at import time: the stack imports this module for its states.
    from neutron.agent import rpc as agent_rpc  # noqa: PLC0415
    from neutron.common import config as common_config  # noqa: PLC0415
    from neutron.conf.agent import common as agent_config  # noqa: PLC0415
    from neutron_lib import context  # noqa: PLC0415
    from neutron_lib.agent import topics  # noqa: PLC0415
    from oslo_config import cfg  # noqa: PLC0415
    from oslo_log import log as logging  # noqa: PLC0415

    common_config.register_common_config_options()  # sets control_exchange = neutron
    agent_config.register_agent_state_opts_helper(cfg.CONF)
    common_config.init(["--config-file", args.config_file])
    common_config.setup_logging()
    log = logging.getLogger("neutron_agents_standin")
    # The client's call timeout is [AGENT] report_interval: short, so that a report sent
    # before neutron-rpc-server listens (the stack starts both together) is soon retried.
    cfg.CONF.set_override("report_interval", RETRY_TIMEOUT, "AGENT")
    reporter = agent_rpc.PluginReportStateAPI(topics.REPORTS)
    states = agent_states(args.host, physnets)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ctx = context.get_admin_context_without_session()
    while not stop.is_set():
        failed = False
        for state in states:
            try:
                outcome = reporter.report_state(ctx, state, use_call=True)
            except Exception as exc:
                log.warning("report_state for %s failed: %s", state["agent_type"], exc)
                failed = True
                continue
            # None: the server dropped the report as older than its own start; resend.
            failed = failed or outcome is None
            log.info("reported %s on %s: %s", state["agent_type"], args.host, outcome)
            if outcome is not None:
                state["start_flag"] = False
        stop.wait(RETRY_TIMEOUT / 5 if failed else args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
