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
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # deploy.* and cyborg_smartnic from this checkout

from deploy.stacklib import client  # noqa: E402

ACCEL_FLAVOR = "xdp.medium"  # 4 vCPU, 4 GiB, 20 GB, one VF (profiles/xdp.yaml)
PLAIN_FLAVOR = "bench.plain"


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "deploy" / "stack.py"), *args],
                          capture_output=True, text=True, timeout=600, check=False,
                          stdin=subprocess.DEVNULL)


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
    work = Path(args.work_dir).resolve()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    done = _stack("start", "--work-dir", str(work))
    start_seconds = time.monotonic() - started
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    try:
        state = json.loads((work / "stack.json").read_text())
        info = client.StackInfo.from_state(state)
        api = client.Clients(info)
        env = {**os.environ, "OS_CLIENT_CONFIG_FILE": state["clouds_yaml"],
               "OS_CLOUD": state["cloud"]}
        subprocess.run([str(Path(sys.executable).parent / "cyborg-smartnic"), "profile",
                        "apply", "--yes", str(REPO / "profiles")], check=True, env=env,
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
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
    finally:
        if not args.keep:
            _stack("stop", "--work-dir", str(work))

    marks = state["startup_seconds"]
    print(f"load average (1 min) before/after: {load_before:.1f} / {load_after:.1f}\n")
    print("| what | seconds |\n|---|---:|")
    print(f"| `stack.py start`, whole command | {start_seconds:.1f} |")
    for step, seconds in marks.items():
        print(f"| - {step} (mark) | {seconds:.1f} |")
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
