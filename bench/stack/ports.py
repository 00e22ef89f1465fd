"""Local stack benchmark with Neutron: start time, and boot-to-ACTIVE with a Neutron port.

Starts deploy/stack.py on the bundled example host (timing the whole `start` and reading the
per-step marks, Neutron's among them), applies profiles/, then boots servers one at a time,
each with a new port made from the first Cyborg-scheduled port profile of profiles/
(`profile render`'s port arguments on the stack's real Neutron), and times each from
`POST /servers` to ACTIVE; every run checks the port came back bound (`hw_veb`) and was
released on delete. Prints a Markdown table with the load average. Stops the stack.

    .venv/bin/python bench/stack/ports.py [--boots 5] [--work-dir build/bench-ports]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # deploy.* and cyborg_smartnic from this checkout

from timed_stack import print_start, started, tool  # noqa: E402

from deploy.stacklib import client, neutron_ports, noauth  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--work-dir", default=str(REPO / "build" / "bench-ports"))
    args = parser.parse_args()
    with started(Path(args.work_dir).resolve()) as stack:
        state, api = stack.state, stack.api
        rendered = json.loads(tool("profile", "render", "-f", "json", str(REPO / "profiles"),
                                   env=stack.env))
        networks = {f"provider-{p}" for p in state["provider_networks"]}
        profile, request = sorted(
            (n, r) for n, r in neutron_ports.port_profiles(rendered).items()
            if r.cyborg_scheduled and r.network in networks)[0]
        flavor = client.json_of(api.nova.post("/flavors", json={"flavor": {
            "name": "bench.port", "vcpus": 1, "ram": 512, "disk": 1}}), "flavor")["flavor"]
        seconds = []
        for index in range(args.boots):
            booted = neutron_ports.boot_with_port(
                state, api, profile, request, flavor_id=flavor["id"],
                name=f"bench-port-{index}", project_id=noauth.PROJECT_ID)
            if (booted.status, booted.vif_type) != ("ACTIVE", "hw_veb") or \
                    booted.released["binding:vif_type"] != "unbound":
                raise SystemExit(f"boot {index}: {booted}")
            seconds.append(booted.seconds)
        load_after = os.getloadavg()[0]
    print_start(stack, load_after)
    print("\n| port profile | boots | to ACTIVE median | min | max |\n|---|---:|---:|---:|---:|")
    print(f"| {profile} ({request.vnic_type}) | {len(seconds)} | "
          f"{statistics.median(seconds):.2f} | {min(seconds):.2f} | {max(seconds):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
