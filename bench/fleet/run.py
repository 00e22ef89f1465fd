"""Fleet bench: N simulated compute nodes against one Placement and one Cyborg.

For each fleet size and driver revision: ``deploy/stack.py start --only fleet`` (MariaDB,
RabbitMQ, Placement with an access log, Cyborg API and conductor), one compute-node provider
per host created in Placement as nova-compute would, then ``--agents`` processes of
``bench/fleet/agent.py`` that run every host's own ``SmartNicDriver`` and send its report
with ``ConductorAPI().report_data`` over RabbitMQ to the real conductor. Hosts are generated
once per size with the repo's generated-host builder (``large()``): every ``--big-every``-th
host is big (16 PFs x 128 VFs), the others small (2 PFs x 16 VFs); one pool per PF.

Measured per revision and size: wall time until every first report has landed (every
``report_data`` call returned, and Placement and Cyborg hold every pool); ``--cycles``
unchanged cycles (Placement requests from Placement's access log, conductor CPU from
/proc); one cycle in which host 0's first PF loses 8 VFs, and the cycle after it; database
size. Results are merged into ``--results`` (JSON); ``bench/fleet/plot.py`` prints the table
and draws the PNG.

    .venv/bin/python bench/fleet/run.py --sizes 10,50,200 --driver-rev . --driver-rev REV
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fleet import measure
from cyborg_smartnic.hostgen import SysfsTree, large, scratch_dir
from deploy.stacklib import database, placement

REPO = Path(__file__).resolve().parents[2]

BIG = (16, 128)
SMALL = (2, 16)
NOISE = 16  # unrelated PCI functions per host
CHANGED_PF = "0000:10:00.0"  # large() puts its first PF there
CHANGED_LOSS = 8
FIRST_REPORT_CYCLES = 4
WORKTREE = "."


@dataclass(frozen=True)
class Host:
    hostname: str
    root: Path
    pfs: int
    vfs: int
    tree: SysfsTree


def build_hosts(base: Path, count: int, big_every: int) -> list[Host]:
    hosts = []
    for i in range(count):
        pfs, vfs = BIG if big_every and i % big_every == 0 else SMALL
        root = base / f"host-{i:04d}"
        tree = large(root, pfs=pfs, vfs=vfs, noise=NOISE)
        hosts.append(Host(f"fleet-{i:04d}.example.org", root, pfs, vfs, tree))
    return hosts


def describe(hosts: Sequence[Host]) -> str:
    big = sum(1 for h in hosts if (h.pfs, h.vfs) == BIG)
    vfs = sum(h.pfs * h.vfs for h in hosts)
    return (f"{big} x {BIG[0]}x{BIG[1]} + {len(hosts) - big} x {SMALL[0]}x{SMALL[1]} "
            f"({sum(h.pfs for h in hosts)} pools, {vfs} VFs)")


def code_tree(rev: str, dest: Path) -> tuple[Path, str]:
    """(directory to put first on PYTHONPATH, label) for a driver revision."""
    if rev == WORKTREE:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "cyborg_smartnic")
        return REPO, f"worktree ({head}{'+changes' if dirty else ''})"
    commit = _git("rev-parse", "--short", f"{rev}^{{commit}}")
    target = dest / f"rev-{commit}"
    if not target.exists():
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "cyborg_smartnic"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target, commit


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def fleet_stack(work: Path) -> Iterator[dict[str, Any]]:
    stack = [sys.executable, str(REPO / "deploy" / "stack.py")]
    started = subprocess.run([*stack, "start", "--only", "fleet", "--work-dir", str(work),
                              "-f", "json", "--timeout", "300"], capture_output=True, text=True,
                             check=False)
    if started.returncode != 0:
        raise SystemExit(f"fleet: stack start failed: {started.stderr.strip()[-2000:]}")
    try:
        yield json.loads(started.stdout[started.stdout.index("{\n"):])
    finally:
        subprocess.run([*stack, "stop", "--work-dir", str(work)], capture_output=True,
                       check=False)


def host_conf(host: Host, state_dir: Path) -> Path:
    path = state_dir / f"{host.hostname}.conf"
    path.write_text("[smartnic]\n"
                    f"hostname = {host.hostname}\n"
                    f"sysfs_root = {host.root}\n"
                    f"state_file = {state_dir / host.hostname}.state.json\n"
                    "use_devlink = false\n")
    return path


class Agents:
    """The agent processes, each with a round-robin share of the hosts."""

    def __init__(self, hosts: Sequence[Host], state: dict[str, Any], pythonpath: Path,
                 run_dir: Path, *, count: int, threads: int) -> None:
        override = run_dir / "agent-override.conf"
        # a first report of a big host waits for the conductor longer than the stack's 20 s
        override.write_text("[DEFAULT]\nrpc_response_timeout = 1800\ndebug = false\n"
                            "[placement]\nconnect_retries = 3\nconnect_retry_delay = 1\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["PYTHONPATH"] = str(pythonpath)
        self.procs: list[subprocess.Popen[str]] = []
        for n in range(count):
            share = [{"hostname": h.hostname, "conf": str(host_conf(h, run_dir))}
                     for h in hosts[n::count]]
            listing = run_dir / f"agent-{n}.json"
            listing.write_text(json.dumps(share))
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("agent.py")), "--hosts",
                 str(listing), "--config-file", state["cyborg_config"], "--config-file",
                 str(override), "--log-file", str(run_dir / f"agent-{n}.log"),
                 "--threads", str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr(run_dir / f"agent-{n}.err"), text=True, env=env,
                cwd=run_dir))
        for proc in self.procs:
            _reply(proc.stdout)

    @staticmethod
    def _stderr(path: Path) -> IO[str]:
        return open(path, "w")  # the child holds it; closed when this process exits

    def cycle(self) -> dict[str, Any]:
        start = time.perf_counter()
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("cycle\n")
            proc.stdin.flush()
        replies = [_reply(proc.stdout) for proc in self.procs]
        errors = [e for r in replies for e in r["errors"]]
        # a failed report is logged and sent again the next cycle, as cyborg-agent does
        return {"wall_s": round(time.perf_counter() - start, 2),
                "discover_s": round(sum(r["discover_s"] for r in replies), 2),
                "failed_reports": len(errors), "first_failure": errors[0][:500] if errors
                else None}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _reply(stream: IO[str] | None) -> dict[str, Any]:
    assert stream is not None
    line = stream.readline()
    if not line:
        raise SystemExit("fleet: an agent process exited (see agent-N.log in the run dir)")
    reply: dict[str, Any] = json.loads(line)
    return reply


class Probe:
    """One measured cycle: Placement requests and the CPU of the conductor, Placement and
    MariaDB around the agents' cycle."""

    SERVICES = ("cyborg-conductor", "placement", database.NAME)

    def __init__(self, state: dict[str, Any]) -> None:
        self.log = measure.AccessLog(Path(state["placement_access_log"]))
        self.pids = {name: measure.descendants(int(state["services"][name]["pid"]))
                     for name in self.SERVICES}

    def _cpu(self) -> dict[str, float]:
        return {name: measure.cpu_seconds(pids) for name, pids in self.pids.items()}

    def cycle(self, agents: Agents, hosts: int) -> dict[str, Any]:
        self.log.mark()
        before = self._cpu()
        result = agents.cycle()
        used = {name: round(cpu - before[name], 2) for name, cpu in self._cpu().items()}
        cpu = used["cyborg-conductor"]
        time.sleep(0.5)  # gunicorn writes the access line after the response
        requests = self.log.since_mark()
        return {**result, "conductor_cpu_s": cpu, "placement_cpu_s": used["placement"],
                "mariadb_cpu_s": used[database.NAME], "requests": requests.total,
                "conductor_requests": requests.conductor, "writes": requests.writes,
                "by_method": requests.by_method,
                "requests_per_host": round(requests.total / hosts, 2),
                "conductor_cpu_ms_per_host": round(1000 * cpu / hosts, 1)}


def landed(state: dict[str, Any], hosts: Sequence[Host]) -> tuple[bool, dict[str, int]]:
    """Is every pool a provider in Placement and a linked deployable in Cyborg? (report_data
    is an RPC call: when it returns, the conductor is done with that report.)"""
    pools = sum(h.pfs for h in hosts)
    found = measure.counts(database.server_of(state))
    return (found["resource_providers"] == len(hosts) + pools
            and found["linked_deployables"] == pools), found


def first_reports(probe: Probe, agents: Agents, state: dict[str, Any], hosts: Sequence[Host]
                  ) -> dict[str, Any]:
    """Cycles until every first report has landed. Cyborg 17's conductor creates a missing
    trait with GET-then-PUT and takes the 204 of a concurrent report's PUT for a failure: it
    drops that device, and the driver sends it again the next cycle (see docs/scale.md)."""
    cycles = [probe.cycle(agents, len(hosts))]
    done, found = landed(state, hosts)
    while not done and len(cycles) < FIRST_REPORT_CYCLES:
        cycles.append(probe.cycle(agents, len(hosts)))
        done, found = landed(state, hosts)
    if not done:
        raise SystemExit(f"fleet: first reports did not land in {len(cycles)} cycles: {found}")
    log = Path(state["services"]["cyborg-conductor"]["log"]).read_text(errors="replace")
    return {**cycles[0], "cycles": len(cycles),
            "wall_s": round(sum(c["wall_s"] for c in cycles), 2),
            "requests": sum(c["requests"] for c in cycles),
            **{key: round(sum(c[key] for c in cycles), 2)
               for key in ("conductor_cpu_s", "placement_cpu_s", "mariadb_cpu_s")},
            "dropped_devices": log.count("Failed to add device"), "landed": found}


def run_point(hosts: Sequence[Host], rev: str, args: argparse.Namespace, scratch: Path
              ) -> dict[str, Any]:
    pythonpath, label = code_tree(rev, scratch)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{len(hosts)}-", dir=scratch))
    print(f"fleet: N={len(hosts)} driver {label}: {describe(hosts)}", flush=True)
    with fleet_stack(Path(args.work_dir)) as state:
        for host in hosts:
            placement.ensure_compute_node(state["placement_url"], host.hostname)
        agents = Agents(hosts, state, pythonpath, run_dir, count=args.agents,
                        threads=args.threads)
        try:
            probe = Probe(state)
            first = first_reports(probe, agents, state, hosts)
            print(f"  first reports: {first['cycles']} cycle(s), {_short(first)}; "
                  f"{first['dropped_devices']} device(s) dropped by the conductor; "
                  f"{first['landed']}", flush=True)
            unchanged = []
            for n in range(args.cycles):
                unchanged.append(probe.cycle(agents, len(hosts)))
                print(f"  unchanged {n + 1}: {_short(unchanged[-1])}", flush=True)
            hosts[0].tree.set_num_vfs(CHANGED_PF, hosts[0].vfs - CHANGED_LOSS)
            try:
                changed = probe.cycle(agents, len(hosts))
                print(f"  one host changes: {_short(changed)}", flush=True)
                after = probe.cycle(agents, len(hosts))
                print(f"  the cycle after: {_short(after)}", flush=True)
            finally:
                hosts[0].tree.set_num_vfs(CHANGED_PF, hosts[0].vfs)
            sizes = measure.database_sizes(database.server_of(state))
            connections = measure.connections_used(database.server_of(state))
        finally:
            agents.close()
    return {"n": len(hosts), "rev": rev, "driver": label, "hosts": describe(hosts),
            "agents": args.agents, "threads": args.threads, "first": first,
            "unchanged": unchanged, "changed": changed, "after": after,
            "database": sizes, "mariadb_max_used_connections": connections,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": round(os.getloadavg()[0], 1)}


def _short(cycle: dict[str, Any]) -> str:
    failed = f", {cycle['failed_reports']} FAILED" if cycle.get("failed_reports") else ""
    return (f"{cycle['wall_s']} s{failed}, {cycle['requests']} requests "
            f"({cycle['conductor_requests']} conductor, {cycle['writes']} writes), CPU s: "
            f"conductor {cycle['conductor_cpu_s']}, placement {cycle['placement_cpu_s']}, "
            f"mariadb {cycle['mariadb_cpu_s']}")


def save(path: Path, point: dict[str, Any]) -> None:
    """Merge one point into the results file (a rerun replaces the same driver and N)."""
    points = json.loads(path.read_text()) if path.exists() else []
    points = [p for p in points if (p["driver"], p["n"]) != (point["driver"], point["n"])]
    points.append(point)
    points.sort(key=lambda p: (p["n"], p["driver"]))
    path.write_text(json.dumps(points, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,200", help="fleet sizes N (comma list)")
    parser.add_argument("--driver-rev", action="append", dest="revs", metavar="REV",
                        help=f"git revision of cyborg_smartnic/ to run ('{WORKTREE}': this "
                             "tree); repeat to compare (default: this tree)")
    parser.add_argument("--big-every", type=int, default=20,
                        help="every Nth host is 16x128 (host 0 first), the others 2x16; "
                             "0: all 2x16 (default 20)")
    parser.add_argument("--cycles", type=int, default=11,
                        help="unchanged cycles measured after the first report (default 11: "
                             "the one after it, then one whole period of a driver that "
                             "sends a full report every 10th cycle)")
    parser.add_argument("--agents", type=int, default=2, help="agent processes (default 2)")
    parser.add_argument("--threads", type=int, default=4,
                        help="concurrent reports per agent process (default 4)")
    parser.add_argument("--work-dir", default="build/fleet", help="the stack's work dir")
    parser.add_argument("--results", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)
    # `kill PID` stops the agents and the stack as Ctrl-C does (the finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    revs = args.revs or [WORKTREE]
    with scratch_dir("bench-fleet-") as scratch:
        for n in sizes:
            hosts = build_hosts(scratch / f"hosts-{n}", n, args.big_every)
            for rev in revs:
                save(Path(args.results), run_point(hosts, rev, args, scratch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
