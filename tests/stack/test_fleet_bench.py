"""bench/fleet end to end with N=2: its own `stack.py start --only fleet`, two simulated
compute nodes (each its own SmartNicDriver) reporting over RabbitMQ to the real conductor,
Placement's access log and the conductor's /proc counters read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.stack
def test_fleet_bench_two_small_hosts(tmp_path: Path, services_installed: None) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet" / "run.py"), "--sizes", "2",
         "--big-every", "0", "--cycles", "1", "--agents", "1", "--threads", "2",
         "--results", str(results), "--work-dir", str(tmp_path / "stack")],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (point,) = json.loads(results.read_text())
    # 2 hosts x 2 PFs x 16 VFs, one pool per PF, each host a compute-node provider
    assert point["first"]["landed"] == {"resource_providers": 6, "linked_deployables": 4,
                                        "attach_handles": 64}
    assert point["first"]["writes"] > 0
    for cycle in point["unchanged"]:
        assert cycle["writes"] == 0
        # Cyborg's conductor looks the compute node up by name for every report
        assert cycle["conductor_requests"] == 2
        assert cycle["requests"] >= cycle["conductor_requests"]
    # host 0's first PF lost 8 of its 16 VFs: its pool's inventory total changes
    assert point["changed"]["by_method"].get("PUT", 0) >= 1
    assert point["database"]["cyborg"]["bytes"] > 0
    assert point["database"]["placement"]["bytes"] > 0
    assert not (tmp_path / "stack" / "pids.json").exists()  # the bench stopped its stack
    table = subprocess.run([sys.executable, str(REPO / "bench" / "fleet" / "plot.py"),
                            "--results", str(results)], capture_output=True, text=True,
                           check=True).stdout
    assert f"| 2 | {point['driver']} |" in table
