"""Local stack benchmark: start time, and boot-to-ACTIVE with and without an accelerator.

Starts deploy/stack.py on the bundled example host (timing the whole `start` and reading the
per-step marks it records), applies profiles/, makes a plain flavor of the same size as
xdp.medium without `accel:device_profile`, then boots servers one at a time, alternating the
two flavors, and times each from `POST /servers` to ACTIVE (and the delete until the server
is gone). Prints a Markdown table (bench/stack/README.md) with the load average, since the
machine is shared. Stops the stack at the end.

    .venv/bin/python bench/stack/run.py [--boots 5] [--work-dir build/bench-stack] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # deploy.* and cyborg_smartnic from this checkout

from timed_stack import print_start, started  # noqa: E402

from deploy.stacklib import client  # noqa: E402

ACCEL_FLAVOR = "xdp.medium"  # 4 vCPU, 4 GiB, 20 GB, one VF (profiles/xdp.yaml)
PLAIN_FLAVOR = "bench.plain"


def _boot_once(info: client.StackInfo, api: client.Clients, flavor: dict[str, Any],
               name: str) -> tuple[float, float, int]:
    """Seconds to ACTIVE, seconds to gone after delete, ARQs bound while it ran."""
    started = time.monotonic()
    server = client.boot(info, api, flavor, name)
    status = client.wait_server(api, server)["status"]
    active = time.monotonic() - started
    if status != "ACTIVE":
        raise SystemExit(f"{name}: {status}")
    arqs = len(client.arqs_of(api, server))
    started = time.monotonic()
    client.delete_server(api, server)
    return active, time.monotonic() - started, arqs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boots", type=int, default=5, help="servers per flavor (default 5)")
    parser.add_argument("--work-dir", default=str(REPO / "build" / "bench-stack"))
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()
    with started(Path(args.work_dir).resolve(), keep=args.keep) as stack:
        info, api = stack.info, stack.api
        flavors = {f["name"]: f for f in client.json_of(
            api.nova.get("/flavors/detail"), "flavors")["flavors"]}
        accel = flavors[ACCEL_FLAVOR]
        plain = client.json_of(api.nova.post("/flavors", json={"flavor": {
            "name": PLAIN_FLAVOR, "vcpus": accel["vcpus"], "ram": accel["ram"],
            "disk": accel["disk"]}}), "flavor")["flavor"]
        times: dict[str, list[tuple[float, float, int]]] = {"with": [], "without": []}
        for index in range(args.boots):
            times["with"].append(_boot_once(info, api, accel, f"bench-accel-{index}"))
            times["without"].append(_boot_once(info, api, plain, f"bench-plain-{index}"))
        load_after = os.getloadavg()[0]

    print_start(stack, load_after)
    print("\n| flavor | boots | to ACTIVE median | min | max | delete median | ARQs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, name in (("with", ACCEL_FLAVOR), ("without", PLAIN_FLAVOR)):
        rows = times[label]
        active = [r[0] for r in rows]
        print(f"| {name} ({label} accelerator) | {len(rows)} | "
              f"{statistics.median(active):.2f} | {min(active):.2f} | {max(active):.2f} | "
              f"{statistics.median(r[1] for r in rows):.2f} | {rows[0][2]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
