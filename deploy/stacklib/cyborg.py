"""The Cyborg-specific steps of the stack: the schema, and knowing when a report is through."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from deploy.stacklib import placement, procs
from deploy.stacklib.config import ADMIN_TOKEN
from deploy.stacklib.procs import Proc, StackError


def start_schema_upgrade(bin_dir: Path, conf: Path, log_dir: Path, env: Mapping[str, str]
                         ) -> procs.Job:
    """`cyborg-dbsync upgrade` (Cyborg's migrations, as production runs them on MariaDB);
    wait for it with `procs.finish_job`."""
    return procs.start_job("cyborg-dbsync upgrade",
                           [str(bin_dir / "cyborg-dbsync"), "--config-file", str(conf),
                            "upgrade"], log_dir / "cyborg-dbsync.log", env)


def start_expected_deployables(bin_dir: Path, conf: Path, sysfs_root: Path,
                                env: Mapping[str, str]) -> subprocess.Popen[str]:
    """`cyborg-smartnic report` for the deployable names the smartnic driver will report;
    started early, read with expected_deployables()."""
    return subprocess.Popen(
        [str(bin_dir / "cyborg-smartnic"), "report", "--sysfs-root", str(sysfs_root),
         "--config-file", str(conf), "-f", "json"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=dict(env))


def expected_deployables(report: subprocess.Popen[str], timeout: float = 120) -> set[str]:
    try:
        stdout, stderr = report.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        report.kill()
        report.communicate()
        raise StackError(f"cyborg-smartnic report gave no answer in {timeout:.0f} s") from exc
    if report.returncode != 0:
        raise StackError(f"cyborg-smartnic report failed: {stderr.strip()[-500:]}")
    try:
        devices = json.loads(stdout)
        return {str(d["name"]) for dev in devices for d in dev["deployable_list"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise StackError(f"cyborg-smartnic report printed no device list: {exc}") from exc


def deployables(cyborg_url: str) -> dict[str, str | None]:
    """Deployable name -> its resource provider uuid, as the Cyborg API lists them."""
    request = urllib.request.Request(  # noqa: S310 (the stack's own 127.0.0.1 URL)
        f"{cyborg_url}/v2/deployables", headers={"X-Auth-Token": ADMIN_TOKEN})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            rows = json.loads(response.read())["deployables"]
    except (OSError, ValueError, KeyError):
        return {}
    return {str(row["name"]): row.get("rp_uuid") for row in rows}


def wait_reported(state: Mapping[str, str], agent: Proc, conductor: Proc,
                  expected: set[str] | None, timeout: float) -> set[str]:
    """Until the agent's report is through: Cyborg's deployables and Placement's providers.

    The conductor handles a report one deployable at a time: provider, inventory, traits,
    then the deployable's rp_uuid; an rp_uuid on every expected deployable means done.
    Without an expectation (another driver), any linked deployable will do.
    """
    seen: set[str] = set()

    def reported() -> bool:
        nonlocal seen
        if not procs.is_alive(conductor):
            raise procs.died_error(conductor, "the agent reported")
        linked = {n for n, rp in deployables(state["cyborg_url"]).items() if rp}
        if not (expected <= linked if expected else linked):
            return False
        seen = placement.child_names(state["placement_url"], state["compute_rp_uuid"])
        return (expected or linked) <= seen

    what = (f"waiting for the agent's {len(expected)} deployables in Cyborg and Placement"
            if expected else "waiting for the agent's deployables in Cyborg and Placement")
    try:
        procs.wait_until(reported, agent, what, timeout, interval=1.0)
    except StackError as exc:
        raise StackError(f"{exc}\nlast lines of {conductor.log}:\n"
                         f"{procs.log_tail(conductor.log, 15)}") from exc
    return seen
