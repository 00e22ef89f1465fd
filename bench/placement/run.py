"""Allocation-candidates benchmark: a device-profile boot request against 200 SmartNIC hosts.

Real Placement 16 (its WSGI app, called in process) on the stack's private database server
(deploy/stacklib/database.py, MariaDB: own data dir, socket and port, stopped by PID). The fleet is
``--hosts`` compute nodes, each with the pool providers this driver and Cyborg's conductor
create for ``large(--pfs, --vfs)`` (see fleet.py), and running instances holding VFs. Each
request is the ``GET /allocation_candidates`` nova-scheduler sends for a flavor with
``accel:device_profile``: the compute node's VCPU/MEMORY_MB/DISK_GB unsuffixed,
``root_required=OWNER_NOVA,!COMPUTE_STATUS_DISABLED``, ``limit=1000``
(``[scheduler] max_placement_results``) and one numbered group per device-profile group
(``request_groups_query``). Every request runs under each Placement setting of
``[placement] max_allocation_candidates``, ``[workarounds] optimize_for_wide_provider_trees``
and ``[placement] allocation_candidates_generation_strategy`` (one app per setting, same
database); medians of ``--runs`` timed calls after one warm-up (wall clock, this process's
CPU, mariadbd's CPU), candidates returned and distinct hosts among them.

    .venv/bin/python bench/placement/run.py [--hosts 200] [--pfs 16] [--vfs 32] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]

import fleet  # noqa: E402

from deploy.stacklib import database, procs  # noqa: E402
from tests.functional.harness import request_groups_query  # noqa: E402

VERSION = "placement 1.39"
PROJECT = "6f70656e-7374-6163-6b20-70726f6a6563"
USER = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ROOT_QUERY = ("resources=DISK_GB:20,MEMORY_MB:4096,VCPU:2"
              "&root_required=OWNER_NOVA,!COMPUTE_STATUS_DISABLED&limit=1000")
# (max_allocation_candidates, optimize_for_wide_provider_trees,
#  allocation_candidates_generation_strategy)
Setting = tuple[int, bool, str]
SETTINGS: tuple[Setting, ...] = (
    (-1, False, "depth-first"), (-1, True, "depth-first"),
    (1000, False, "depth-first"), (1000, True, "depth-first"),
    (100, False, "depth-first"), (100, True, "depth-first"),
    (1000, False, "breadth-first"), (1000, True, "breadth-first"),
    (100, False, "breadth-first"), (100, True, "breadth-first"))

App = Callable[..., Any]


@dataclass(frozen=True)
class Request:
    label: str
    groups: tuple[dict[str, str], ...]

    @property
    def query(self) -> str:
        return f"{ROOT_QUERY}&{request_groups_query(self.groups)}"


def requests(vf_class: str, physnets: Sequence[str], forbidden: str) -> tuple[Request, ...]:
    """1 and 2 device-profile groups, each with and without a forbidden trait."""
    def group(physnet: str, forbid: bool) -> dict[str, str]:
        found = {f"resources:{vf_class}": "1", f"trait:{physnet}": "required"}
        if forbid:
            found[f"trait:{forbidden}"] = "forbidden"
        return found

    return (
        Request("1 group", (group(physnets[0], False),)),
        Request("1 group, forbidden trait", (group(physnets[0], True),)),
        Request("2 groups (isolate)", (group(physnets[0], False), group(physnets[1], False))),
        Request("2 groups, forbidden trait", (group(physnets[0], True),
                                              group(physnets[1], True))),
    )


# -- Placement ------------------------------------------------------------------------------
def placement_conf(work: Path, url: str, setting: Setting) -> Any:
    """Placement's options for one setting, from a config file of its own: oslo.config keeps
    ``set_override`` values on the option group, which every ConfigOpts that registered
    Placement's groups shares, so overrides would leak from one app into the others."""
    from oslo_config import cfg
    from placement import conf as placement_conf_module

    max_candidates, optimize, strategy = setting
    path = work / f"placement-{max_candidates}-{optimize}-{strategy}.conf"
    path.write_text(f"[api]\nauth_strategy = noauth2\n"
                    f"[placement_database]\nconnection = {url}\nsync_on_startup = true\n"
                    f"[placement]\nmax_allocation_candidates = {max_candidates}\n"
                    f"allocation_candidates_generation_strategy = {strategy}\n"
                    f"[workarounds]\noptimize_for_wide_provider_trees = {optimize}\n")
    conf = cfg.ConfigOpts()
    placement_conf_module.register_opts(conf)
    conf([], project="placement", default_config_files=[str(path)])
    return conf


def load_app(conf: Any) -> App:
    from placement import db_api, deploy

    db_api.configure(conf)  # once per process (run_once); every app shares the engine
    return deploy.loadapp(conf)  # type: ignore[no-any-return]


def call(app: App, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    import webob

    request = webob.Request.blank(path, method=method, headers={
        "X-Auth-Token": "admin", "OpenStack-API-Version": VERSION,
        "Accept": "application/json"})
    if body is not None:
        request.body = json.dumps(body).encode()
        request.content_type = "application/json"
    response = request.get_response(app)
    data = json.loads(response.body) if response.body else None
    return response.status_int, data


def expect(app: App, method: str, path: str, body: Any, ok: Sequence[int]) -> Any:
    status, data = call(app, method, path, body)
    if status not in ok:
        raise RuntimeError(f"{method} {path} -> {status}: {json.dumps(data)[:500]}")
    return data


def populate(app: App, nodes: Sequence[fleet.ComputeNode], per_node: int,
             full_every: int) -> int:
    """Create the fleet through the API; returns the number of requests made."""
    count = 0
    classes, traits = fleet.custom_names(nodes)
    for name in sorted(classes):
        expect(app, "PUT", f"/resource_classes/{name}", None, (201, 204))
        count += 1
    for name in sorted(traits):
        expect(app, "PUT", f"/traits/{name}", None, (201, 204))
        count += 1
    generation: dict[str, int] = {}
    for node in nodes:
        for method, path, body in fleet.node_writes(node):
            if method == "POST":
                created = expect(app, method, path, body, (200,))
                generation[created["uuid"]] = created["generation"]
            else:
                rp = path.split("/")[2]
                done = expect(app, method, path, {**body,
                                                   "resource_provider_generation":
                                                   generation[rp]}, (200,))
                generation[rp] = done["resource_provider_generation"]
            count += 1
    for allocation in fleet.allocations(nodes, per_node, full_every, PROJECT, USER):
        expect(app, "PUT", f"/allocations/{allocation.consumer}", allocation.body, (204,))
        count += 1
    return count


@dataclass(frozen=True)
class Result:
    median_ms: float
    cpu_ms: float  # this process's CPU (Placement's Python side), steadier on a busy machine
    db_cpu_ms: float  # mariadbd's CPU meanwhile
    candidates: int
    hosts: int


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(app: App, request: Request, runs: int, roots: Mapping[str, str],
            db_pid: int) -> Result:
    path = f"/allocation_candidates?{request.query}"
    data = expect(app, "GET", path, None, (200,))  # warm-up, and the answer to count
    times, cpu, db_cpu = [], [], []
    for _ in range(runs):
        start, cpu_start, db_start = time.perf_counter(), time.process_time(), process_cpu(db_pid)
        expect(app, "GET", path, None, (200,))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        db_cpu.append(process_cpu(db_pid) - db_start)
    hosts = {roots[rp] for ar in data["allocation_requests"] for rp in ar["allocations"]
             if rp in roots}
    return Result(statistics.median(times) * 1000, statistics.median(cpu) * 1000,
                  statistics.median(db_cpu) * 1000,
                  len(data["allocation_requests"]),
                  len(hosts))


# -- Database ------------------------------------------------------------------------------
@contextmanager
def private_database(work: Path) -> Iterator[tuple[database.Server, int]]:
    database.check_installed()
    logs = work / "logs"
    logs.mkdir(parents=True)
    server = database.plan(work / database.NAME)
    database.prepare(server, logs)
    proc = database.start(server, logs)
    try:
        database.wait_ready(server, proc, 120)
        database.create_databases(server, ["placement"])
        yield server, proc.pid
    finally:
        procs.stop(proc)


def database_mib(server: database.Server) -> float:
    ((size,),) = database.rows(server, "SELECT SUM(data_length + index_length) FROM "
                                       "information_schema.tables WHERE table_schema = 'placement'")
    return int(size) / 2**20


# -- Main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--pfs", type=int, default=16, help="PFs (= pools) per host")
    parser.add_argument("--vfs", type=int, default=32, help="VFs per PF")
    parser.add_argument("--instances", type=int, default=4, help="running per host")
    parser.add_argument("--full-every", type=int, default=10,
                        help="every Nth host has its first pool fully used")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bench-placement-", dir=shm) as tmp:
        work = Path(tmp)
        nodes = fleet.scanned_pools(work / "host", [fleet.host_name(i)
                                                    for i in range(args.hosts)],
                                    args.pfs, args.vfs)
        with private_database(work) as (server, db_pid):
            return run(work, server, db_pid, nodes, args)


def run(work: Path, server: database.Server, db_pid: int, nodes: Sequence[fleet.ComputeNode],
        args: argparse.Namespace) -> int:
    url = server.url("placement")
    confs = {setting: placement_conf(work, url, setting) for setting in SETTINGS}
    apps = {setting: load_app(conf) for setting, conf in confs.items()}
    for setting, conf in confs.items():  # each app keeps its own setting
        assert (conf.placement.max_allocation_candidates,
                conf.workarounds.optimize_for_wide_provider_trees,
                conf.placement.allocation_candidates_generation_strategy) == setting
    start = time.perf_counter()
    made = populate(apps[SETTINGS[0]], nodes, args.instances, args.full_every)
    took = time.perf_counter() - start
    pool = nodes[0].pools[0]
    physnet_traits = sorted({t for p in nodes[0].pools for t in p.traits
                             if t.startswith("CUSTOM_PHYSNET_")})
    switchdev = "CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV"
    roots = {p.uuid: n.uuid for n in nodes for p in n.pools} | {n.uuid: n.uuid for n in nodes}
    providers = len(nodes) * (1 + args.pfs)
    print(f"{len(nodes)} compute nodes x {args.pfs} pools = {providers} providers, "
          f"{args.instances} instances per host; populated with {made} requests in "
          f"{took:.1f} s; database {database_mib(server):.1f} MiB; medians of {args.runs}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    for request in requests(pool.resource_class, physnet_traits, switchdev):
        print(f"{request.label}: GET /allocation_candidates?{urllib.parse.unquote(request.query)}")
    print("\n| request | max_allocation_candidates | optimize_for_wide_provider_trees "
          "| generation strategy | median ms | CPU ms | MariaDB CPU ms | candidates | hosts |")
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    for request in requests(pool.resource_class, physnet_traits, switchdev):
        for setting in SETTINGS:
            result = measure(apps[setting], request, args.runs, roots, db_pid)
            print(f"| {request.label} | {setting[0]} | {setting[1]} | {setting[2]} "
                  f"| {result.median_ms:.0f} | {result.cpu_ms:.0f} | {result.db_cpu_ms:.0f} "
                  f"| {result.candidates} | {result.hosts} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
