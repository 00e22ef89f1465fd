#!/usr/bin/env python3
"""Start, stop or show a real local OpenStack stack for cyborg-smartnic.

    python deploy/stack.py start [--work-dir build/stack] [--sysfs-root DIR] ...
    python deploy/stack.py start --only fleet   (MariaDB, RabbitMQ, Placement, Cyborg API and
                                                 conductor: what bench/fleet reports into)
    python deploy/stack.py status [-f json]
    python deploy/stack.py restart SERVICE...   (cyborg-agent, nova-compute, ...)
    python deploy/stack.py stop

Separate processes, all on 127.0.0.1 with free ports: MariaDB and RabbitMQ (Debian's
packages, private instances), Placement and the Cyborg API under gunicorn, cyborg-conductor,
cyborg-agent with the smartnic driver reading a recorded sysfs tree (the bundled example
host by default), Nova (nova-api under gunicorn, nova-conductor, nova-scheduler and
nova-compute with the fake virt driver), Neutron (its API under gunicorn and
neutron-rpc-server, ML2 with sriovnicswitch and openvswitch), a stand-in for the image API and
one for the state reports of Neutron's agents (stacklib/neutron_agents.py).
State, configs, PIDs, databases and one log per service live in the work dir; `stack.json`
there tells clients where everything is, `clouds.yaml` is an openstacksdk cloud for it.
Run it with the project's virtualenv Python (it runs the services from that venv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: import deploy.* from this checkout, not deploy/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from deploy.stacklib import (
    config,
    cyborg,
    database,
    neutron,
    nova,
    placement,
    procs,
    rabbit,
    standins,
)
from deploy.stacklib.config import ADMIN_TOKEN, SERVICE_TOKEN, TEMPLATES
from deploy.stacklib.procs import Proc, StackError

DEPLOY_DIR = Path(__file__).resolve().parent
REPO_DIR = DEPLOY_DIR.parent  # on the services' path: deploy.stacklib.* (WSGI apps, auth filter)
BIN = Path(sys.executable).parent
STATE = "stack.json"
PIDS = "pids.json"
DEFAULT_HOSTNAME = "compute-0"
SUBDIRS = ("logs", "placement", "cyborg", "nova", "rabbitmq", database.NAME, "neutron")
DATABASES = ("placement", "cyborg", "nova_api", "nova", "nova_cell0", "neutron")
# `--only fleet`: the services N simulated compute nodes report into (bench/fleet), and the
# databases they use. Placement then writes an access log (one line per request).
FLEET_DATABASES = ("placement", "cyborg")
PLACEMENT_ACCESS_LOG = "placement-access.log"
# The fleet's conductor retries a Placement call whose connection failed (with hundreds of
# reports, one meets a keep-alive connection gunicorn has just closed), as an operator sets.
FLEET_CYBORG_CONF = "[placement]\nconnect_retries = 3\nconnect_retry_delay = 1\n"


def _log(message: str) -> None:
    print(f"stack: {message}", flush=True)


def _service_env(**extra: str) -> dict[str, str]:
    """The services' environment: ours minus anything that would point them elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OS_", "RABBITMQ_", "ERL_", "PYTHON"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra)
    return env


def _gunicorn(name: str, app: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--name", name,
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4",
            "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "5",
            *extra, app]


class Starter:
    """One `start`: remembers every process it spawned so a failure stops them all."""

    def __init__(self, work: Path, timeout: float) -> None:
        self.work = work
        self.deadline = time.monotonic() + timeout
        self.started: list[Proc] = []
        self.timings: dict[str, float] = {}
        self._t0 = time.monotonic()

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def add(self, proc: Proc) -> Proc:
        self.started.append(proc)
        procs.save(self.started, self.work / PIDS)
        return proc

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Proc:
        return self.add(procs.spawn(name, argv, env, self.work / "logs", cwd=self.work))

    def by_name(self, name: str) -> Proc:
        return next(p for p in self.started if p.name == name)

    def mark(self, step: str) -> None:
        self.timings[step] = round(time.monotonic() - self._t0, 1)
        _log(f"{step} ({self.timings[step]} s)")


def start(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir).resolve()
    running = [p for p in procs.load(work / PIDS) if procs.is_alive(p)]
    if running:
        raise StackError(f"a stack is already running in {work} "
                         f"({', '.join(p.name for p in running)}): run `stop` first")
    rabbit.check_installed()
    database.check_installed()
    if (args.only == "all" and args.driver == "smartnic_driver"
            and not (BIN / "cyborg-smartnic").exists()):
        raise StackError(f"{BIN}/cyborg-smartnic is missing: install the project (make install)")
    work.mkdir(parents=True, exist_ok=True)
    for sub in SUBDIRS:
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir()
    (work / STATE).unlink(missing_ok=True)
    st = Starter(work, args.timeout)
    try:
        state = _start(st, args)
    except BaseException as exc:
        _log(f"start failed, stopping the {len(st.started)} processes it started")
        _stop_all(list(reversed(st.started)))
        (work / PIDS).unlink(missing_ok=True)
        if isinstance(exc, StackError | KeyboardInterrupt):
            raise
        raise StackError(f"start failed: {exc!r}") from exc
    return state


@dataclass(frozen=True)
class Plan:
    """Ports, URLs and names of everything (stack.json's content) and the template values."""

    state: dict[str, Any]
    values: dict[str, str]
    broker: rabbit.Broker
    db_server: database.Server


def _plan(work: Path, args: argparse.Namespace) -> Plan:
    """Decide every port, URL and name before anything starts."""
    smartnic = config.smartnic_options(args.smartnic)
    if args.sysfs_root:
        sysfs_root = Path(args.sysfs_root).resolve()
    else:  # the example host comes with its [smartnic] options; --smartnic ones win
        sysfs_root, example_options = config.example_host(work / "host")
        smartnic = {**example_options, **smartnic}
    hostname = args.hostname or smartnic.get("hostname") or DEFAULT_HOSTNAME
    smartnic.setdefault("state_file", str(work / "cyborg" / "smartnic-last-report.json"))
    broker = rabbit.plan(work / "rabbitmq")
    db_server = database.plan(work / database.NAME)
    ports = {name: procs.free_port()
             for name in ("placement", "cyborg", "nova", "standins", "neutron")}
    stand_ins = f"http://127.0.0.1:{ports['standins']}"
    state: dict[str, Any] = {
        "work_dir": str(work),
        "hostname": hostname,
        "sysfs_root": str(sysfs_root),
        "driver": args.driver,
        "placement_url": f"http://127.0.0.1:{ports['placement']}",
        "cyborg_url": f"http://127.0.0.1:{ports['cyborg']}/accelerator",
        "nova_url": f"http://127.0.0.1:{ports['nova']}/v2.1",
        "image_url": f"{stand_ins}/image",
        "network_url": f"http://127.0.0.1:{ports['neutron']}",
        "neutron_config_dir": str(work / "neutron"),
        "physnets": neutron.physnets(smartnic),
        "image_id": standins.IMAGE_ID,
        "transport_url": broker.transport_url,
        "rabbitmq_node": broker.node,
        "rabbitmq_account": {"node": broker.node, "amqp_port": broker.amqp_port,
                             "dist_port": broker.dist_port, "epmd_port": broker.epmd_port,
                             "user": broker.user, "password": broker.password,
                             "vhost": broker.vhost},
        database.NAME: database.state_entry(db_server, _databases(args.only)),
        "admin_token": ADMIN_TOKEN,
        "service_token": SERVICE_TOKEN,
        "cyborg_config": str(work / "cyborg" / "cyborg.conf"),
        "nova_config": str(work / "nova" / "nova.conf"),
        "clouds_yaml": str(work / "clouds.yaml"),
        "cloud": "smartnic-stack",
        "logs": str(work / "logs"),
    }
    if args.only == "fleet":
        state["only"] = "fleet"
        state["placement_access_log"] = str(work / "logs" / PLACEMENT_ACCESS_LOG)
    values = {"work_dir": str(work), "hostname": hostname, "debug": str(args.debug),
              "transport_url": broker.transport_url, "cyborg_port": str(ports["cyborg"]),
              "drivers": args.driver, "placement_url": state["placement_url"],
              "nova_url": state["nova_url"], "cyborg_url": state["cyborg_url"],
              "image_url": state["image_url"], "network_url": state["network_url"],
              "service_token": SERVICE_TOKEN, "sysfs_root": str(sysfs_root),
              "smartnic_extra": config.ini_lines(smartnic),
              **neutron.template_values(smartnic),
              **{f"{name}_db": db_server.url(name) for name in DATABASES}}
    return Plan(state=state, values=values, broker=broker, db_server=db_server)


def _databases(only: str) -> tuple[str, ...]:
    return FLEET_DATABASES if only == "fleet" else DATABASES


def _render(work: Path, state: dict[str, Any], values: dict[str, str]) -> None:
    config.render("placement.conf.in", work / "placement" / "placement.conf", values)
    config.render("cyborg.conf.in", work / "cyborg" / "cyborg.conf", values)
    shutil.copy(TEMPLATES / "api-paste.ini", work / "cyborg" / "api-paste.ini")
    config.render("nova.conf.in", work / "nova" / "nova.conf", values)
    # cell0's schema is synced with a copy whose [database] is cell0's.
    config.render("nova.conf.in", work / "nova" / "nova-cell0.conf",
                  {**values, "nova_db": values["nova_cell0_db"]})
    shutil.copy(TEMPLATES / "nova-api-paste.ini", work / "nova" / "api-paste.ini")
    neutron.render(work / "neutron", values)
    config.write_clouds_yaml(state)


def _start(st: Starter, args: argparse.Namespace) -> dict[str, Any]:
    plan = _plan(st.work, args)
    state = plan.state
    _render(st.work, state, plan.values)
    _start_backends(st, plan)
    if state.get("only") == "fleet":
        _start_fleet(st, plan)
    else:
        _start_openstack(st, plan)
    state["services"] = {p.name: {"pid": p.pid, "log": p.log} for p in st.started}
    state["startup_seconds"] = st.timings
    (st.work / STATE).write_text(json.dumps(state, indent=2) + "\n")
    return state


def _start_backends(st: Starter, plan: Plan) -> None:
    """RabbitMQ (booting in the background), the stand-ins, the database server with the
    stack's databases."""
    logs = st.work / "logs"
    rabbit.prepare(plan.broker)
    for proc in rabbit.start(plan.broker, logs):
        st.add(proc)
    if plan.state.get("only") != "fleet":  # the fleet has no Nova to ask for images
        port = plan.state["image_url"].rsplit(":", 1)[1].split("/", 1)[0]
        st.spawn("standins", [sys.executable, str(DEPLOY_DIR / "stacklib" / "standins.py"),
                              "--port", port], _service_env())
    database.prepare(plan.db_server, logs)
    server = st.add(database.start(plan.db_server, logs))
    database.wait_ready(plan.db_server, server, st.remaining())
    database.create_databases(plan.db_server, database.databases_of(plan.state))
    st.mark(f"{database.NAME} up, databases created")


def _start_openstack(st: Starter, plan: Plan) -> None:
    """Placement and the schemas side by side, then Cyborg's and Nova's services."""
    state = plan.state
    logs = st.work / "logs"
    place = st.spawn("placement", _gunicorn("placement", "placement.wsgi.api:application",
                                            _port(state["placement_url"])),
                     _service_env(OS_PLACEMENT_CONFIG_DIR=str(st.work / "placement")))
    manage = nova.Manage(BIN, Path(state["nova_config"]), logs, _service_env())
    upgrade = cyborg.start_schema_upgrade(BIN, Path(state["cyborg_config"]), logs,
                                          _service_env())
    syncs = nova.start_schema_syncs(manage, st.work / "nova" / "nova-cell0.conf")
    report = (cyborg.start_expected_deployables(BIN, Path(state["cyborg_config"]),
                                                Path(state["sysfs_root"]), _service_env())
              if state["driver"] == "smartnic_driver" else None)
    neutron_upgrade = neutron.start_schema_upgrade(BIN, st.work / "neutron", logs,
                                                   _service_env())

    procs.wait_http_ok(state["placement_url"] + "/", place, st.remaining())
    state["compute_rp_uuid"] = placement.ensure_compute_node(state["placement_url"],
                                                             state["hostname"])
    st.mark(f"placement up, compute node {state['hostname']} created")
    rabbit.wait_ready(plan.broker, st.by_name("rabbitmq"), st.remaining())
    st.mark("rabbitmq up")
    procs.finish_job(upgrade, st.remaining())
    st.mark("cyborg database migrated")
    _spawn_cyborg(st, state)  # Cyborg starts while Nova's cells are being mapped
    nova.map_cells(manage, syncs, plan.db_server.url("nova_cell0"), st.remaining())
    st.mark("nova databases synced, cell0 and cell1 mapped")
    _spawn_nova(st, state)
    procs.finish_job(neutron_upgrade, st.remaining())
    st.mark("neutron database migrated")
    _spawn_neutron(st, state)
    _wait_cyborg(st, plan, report)
    _wait_neutron(st, plan)
    _wait_nova(st, plan, manage)


def _start_fleet(st: Starter, plan: Plan) -> None:
    """Placement (with an access log) and Cyborg's API and conductor; no agent, no Nova,
    no Neutron: bench/fleet brings the compute nodes and their reports."""
    state = plan.state
    logs = st.work / "logs"
    place = st.spawn("placement", _gunicorn("placement", "placement.wsgi.api:application",
                                            _port(state["placement_url"]),
                                            ["--access-logfile", state["placement_access_log"]]),
                     _service_env(OS_PLACEMENT_CONFIG_DIR=str(st.work / "placement")))
    upgrade = cyborg.start_schema_upgrade(BIN, Path(state["cyborg_config"]), logs,
                                          _service_env())
    procs.wait_http_ok(state["placement_url"] + "/", place, st.remaining())
    st.mark("placement up")
    rabbit.wait_ready(plan.broker, st.by_name("rabbitmq"), st.remaining())
    st.mark("rabbitmq up")
    procs.finish_job(upgrade, st.remaining())
    st.mark("cyborg database migrated")
    fleet_conf = st.work / "cyborg" / "fleet.conf"
    fleet_conf.write_text(FLEET_CYBORG_CONF)
    _spawn_cyborg(st, state, ["--config-file", str(fleet_conf)])
    _wait_cyborg_services(st, plan)


def _listening(broker: rabbit.Broker, queue: str) -> bool:
    return rabbit.consumers(broker, queue) > 0


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _spawn_cyborg(st: Starter, state: dict[str, Any], conductor_args: Sequence[str] = ()
                  ) -> None:
    """Cyborg's conductor and API (the agent comes later: it needs the conductor)."""
    cyborg_conf = state["cyborg_config"]
    st.spawn("cyborg-conductor", [str(BIN / "cyborg-conductor"), "--config-file", cyborg_conf,
                                  *conductor_args], _service_env())
    st.spawn("cyborg-api", _gunicorn("cyborg-api", "deploy.stacklib.cyborg_wsgi:application",
                                     _port(state["cyborg_url"]),
                                     ["--pythonpath", str(REPO_DIR)]),
             _service_env(CYBORG_STACK_CONFIG=cyborg_conf, SCRIPT_NAME="/accelerator"))


def _spawn_nova(st: Starter, state: dict[str, Any]) -> None:
    """Every Nova service at once; nova-compute adopts the compute node provider."""
    nova_conf = state["nova_config"]
    for service in ("nova-conductor", "nova-scheduler"):
        st.spawn(service, [str(BIN / service), "--config-file", nova_conf], _service_env())
    st.spawn("nova-api", _gunicorn("nova-api", "deploy.stacklib.nova_wsgi:application",
                                   _port(state["nova_url"]), ["--pythonpath", str(REPO_DIR)]),
             _service_env(OS_NOVA_CONFIG_DIR=str(Path(nova_conf).parent)))
    nova.write_node_identity(st.work / "nova", state["compute_rp_uuid"])
    st.spawn("nova-compute", [str(BIN / "nova-compute"), "--config-file", nova_conf],
             _service_env())


def _spawn_neutron(st: Starter, state: dict[str, Any]) -> None:
    """Neutron's API (gunicorn) and RPC server, once its schema is there, and the stand-in
    that reports its agents' state."""
    conf_dir = Path(state["neutron_config_dir"])
    st.spawn("neutron-api", _gunicorn("neutron-api", "deploy.stacklib.neutron_wsgi:application",
                                      _port(state["network_url"]),
                                      ["--pythonpath", str(REPO_DIR)]),
             _service_env(**neutron.api_env(conf_dir)))
    st.spawn("neutron-rpc-server", [str(BIN / "neutron-rpc-server"),
                                    *neutron.config_args(conf_dir)], _service_env())
    # -P: the script's own directory must not shadow the `neutron` package with stacklib's.
    st.spawn("neutron-agents-standin", [
        sys.executable, "-P", str(DEPLOY_DIR / "stacklib" / "neutron_agents.py"),
        "--config-file", str(conf_dir / "neutron.conf"), "--host", state["hostname"],
        "--physnets", ",".join(state["physnets"])], _service_env())


def _wait_neutron(st: Starter, plan: Plan) -> None:
    """The API answers (then the provider networks), the RPC server takes state reports,
    and ML2 counts both agent types alive on the compute host (the stand-in's reports)."""
    state = plan.state
    procs.wait_until(lambda: neutron.api_ready(state["network_url"]),
                     st.by_name("neutron-api"), "waiting for the Neutron API", st.remaining())
    procs.wait_until(partial(_listening, plan.broker, "q-reports-plugin"),
                     st.by_name("neutron-rpc-server"),
                     "waiting for neutron-rpc-server to take state reports", st.remaining(),
                     interval=0.5)
    state["provider_networks"] = neutron.create_provider_networks(state["network_url"],
                                                                  state["physnets"])
    st.mark(f"neutron-api, neutron-rpc-server up, {len(state['physnets'])} provider networks")
    procs.wait_until(lambda: not neutron.missing_agents(state["network_url"],
                                                        state["hostname"]),
                     st.by_name("neutron-agents-standin"),
                     "waiting for Neutron to count the agents alive",
                     st.remaining(), interval=0.5)
    st.mark("neutron agents (stand-in reports) alive")


def _wait_cyborg_services(st: Starter, plan: Plan) -> None:
    """The conductor listens on RabbitMQ and the API answers an authenticated GET."""
    state = plan.state
    conductor = st.by_name("cyborg-conductor")
    api = st.by_name("cyborg-api")
    procs.wait_until(partial(_listening, plan.broker, "cyborg-conductor"),
                     conductor, "waiting for cyborg-conductor to listen on RabbitMQ",
                     st.remaining(), interval=1.0)
    st.mark("cyborg-conductor up")
    profiles_url = state["cyborg_url"] + "/v2/device_profiles"
    procs.wait_until(
        lambda: procs.http_status(profiles_url, {"X-Auth-Token": ADMIN_TOKEN}) == 200,
        api, f"waiting for an authenticated GET {profiles_url}", st.remaining())
    st.mark("cyborg-api up")


def _wait_cyborg(st: Starter, plan: Plan, report: subprocess.Popen[str] | None) -> None:
    state = plan.state
    conductor = st.by_name("cyborg-conductor")
    _wait_cyborg_services(st, plan)
    cyborg_conf = Path(state["cyborg_config"])
    expected = cyborg.expected_deployables(report) if report is not None else None
    agent = st.spawn("cyborg-agent", [str(BIN / "cyborg-agent"), "--config-file",
                                      str(cyborg_conf)], _service_env())
    names = cyborg.wait_reported(state, agent, conductor, expected, st.remaining())
    state["resource_providers"] = sorted(names)
    st.mark(f"cyborg-agent reported {len(names)} resource providers")


def _wait_nova(st: Starter, plan: Plan, manage: nova.Manage) -> None:
    state = plan.state
    for service, queue in (("nova-conductor", "conductor"), ("nova-scheduler", "scheduler")):
        procs.wait_until(partial(_listening, plan.broker, queue), st.by_name(service),
                         f"waiting for {service} to listen on RabbitMQ", st.remaining(),
                         interval=1.0)
    procs.wait_until(lambda: nova.api_get(state["nova_url"], "/flavors") is not None,
                     st.by_name("nova-api"), "waiting for the Nova API", st.remaining())
    st.mark("nova-api, nova-conductor, nova-scheduler up")
    nova.wait_compute_ready(state, st.by_name("nova-compute"), manage, plan.db_server,
                            st.remaining())
    st.mark(f"nova-compute up, {state['hostname']} mapped to {nova.CELL}")


def _stop_all(records: Sequence[Proc]) -> list[tuple[str, str]]:
    """The OpenStack services together, then the broker (so they do not retry into a void)."""
    last = ("rabbitmq", "epmd")
    waves = [[p for p in records if p.name not in last],
             *([p for p in records if p.name == name] for name in last)]
    results: list[tuple[str, str]] = []
    for wave in waves:
        try:
            outcomes = procs.stop_many(wave)
        except OSError as exc:
            outcomes = [f"could not stop: {exc}"] * len(wave)
        results.extend(zip((p.name for p in wave), outcomes, strict=True))
    return results


def stop(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Stop what `start` recorded, newest first; a second `stop` finds nothing to do."""
    work = Path(args.work_dir).resolve()
    records = procs.load(work / PIDS)
    results = _stop_all(list(reversed(records)))
    (work / PIDS).unlink(missing_ok=True)
    (work / STATE).unlink(missing_ok=True)
    # The unpacked example is a throwaway copy whose sysfs symlinks loop: tools that walk
    # directories following links (setuptools' package finder) must not meet it later.
    config.remove_example_host(work / "host")
    return results


# The RPC services `restart` may restart, and the queue each listens on once it is up.
RESTARTABLE = {"cyborg-agent": "cyborg-agent", "cyborg-conductor": "cyborg-conductor",
               "nova-conductor": "conductor", "nova-scheduler": "scheduler",
               "nova-compute": "compute"}


def restart(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Stop and start RPC services of a running stack (same command line, same log file),
    each up again once it listens on its RabbitMQ queue."""
    work = Path(args.work_dir).resolve()
    unknown = sorted(set(args.services) - set(RESTARTABLE))
    if unknown:
        raise StackError(f"cannot restart {', '.join(unknown)}: one of "
                         f"{', '.join(sorted(RESTARTABLE))}")
    records = procs.load(work / PIDS)
    try:
        state = json.loads((work / STATE).read_text())
    except FileNotFoundError as exc:
        raise StackError(f"no running stack in {work}") from exc
    broker = rabbit.Broker(base=work / "rabbitmq", **state["rabbitmq_account"])
    results = []
    for name in args.services:
        index = next((i for i, p in enumerate(records) if p.name == name), None)
        if index is None:
            raise StackError(f"{name} is not part of the stack in {work}")
        old = records[index]
        outcome = procs.stop(old)
        new = procs.spawn(name, old.argv, _service_env(), work / "logs", cwd=work, append=True)
        records[index] = new
        procs.save(records, work / PIDS)
        procs.wait_until(partial(_listening, broker, RESTARTABLE[name]), new,
                         f"waiting for the restarted {name} to listen on RabbitMQ",
                         args.timeout, interval=0.5)
        results.append((name, f"{outcome}, started again as {new.pid}"))
    state["services"] = {p.name: {"pid": p.pid, "log": p.log} for p in records}
    (work / STATE).write_text(json.dumps(state, indent=2) + "\n")
    return results


def status(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir).resolve()
    state: dict[str, Any] = {"work_dir": str(work)}
    with contextlib.suppress(FileNotFoundError):
        state.update(json.loads((work / STATE).read_text()))
    state["processes"] = [
        {"name": p.name, "pid": p.pid, "running": procs.is_alive(p), "log": p.log}
        for p in procs.load(work / PIDS)]
    return state


def _cmd_start(args: argparse.Namespace) -> int:
    state = start(args)
    if args.format == "json":
        print(json.dumps(state, indent=2))
    else:
        _log(f"up: Nova {state['nova_url']}, Cyborg {state['cyborg_url']}, Placement "
             f"{state['placement_url']}; cloud {state['cloud']} in {state['clouds_yaml']}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    results = stop(args)
    if not results:
        _log("nothing to stop")
    for name, outcome in results:
        _log(f"{name}: {outcome}")
    return 0


def _cmd_restart(args: argparse.Namespace) -> int:
    for name, outcome in restart(args):
        _log(f"{name}: {outcome}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = status(args)
    rows = state["processes"]
    healthy = bool(rows) and all(r["running"] for r in rows)
    if args.format == "json":
        print(json.dumps(state, indent=2))
        return 0 if healthy else 1
    if not rows:
        print(f"no stack recorded in {state['work_dir']}")
        return 1
    for row in rows:
        mark = "running" if row["running"] else "DEAD"
        print(f"{row['name']:<17} {row['pid']:>7}  {mark:<8} {row['log']}")
    for key in ("nova_url", "cyborg_url", "placement_url", "image_url", "network_url",
                "clouds_yaml"):
        if key in state:
            print(f"{key:<17} {state[key]}")
    return 0 if healthy else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status,
        "restart": _cmd_restart}
    for name, func in commands.items():
        cmd = sub.add_parser(name)
        cmd.add_argument("--work-dir", default="build/stack",
                         help="state, configs, PIDs and logs (default: build/stack)")
        cmd.set_defaults(func=func)
        if name in ("start", "status"):
            cmd.add_argument("-f", "--format", choices=("table", "json"), default="table")
        if name == "restart":
            cmd.add_argument("services", nargs="+", metavar="SERVICE",
                             help=f"one of {', '.join(sorted(RESTARTABLE))}")
            cmd.add_argument("--timeout", type=float, default=120.0,
                             help="seconds for each service to be up again (default 120)")
        if name == "start":
            cmd.add_argument("--sysfs-root",
                             help="recorded host for the agent (default: the bundled example)")
            cmd.add_argument("--hostname",
                             help="compute node (resource provider) name (default: the "
                                  f"example host's, else {DEFAULT_HOSTNAME})")
            cmd.add_argument("--driver", default="smartnic_driver",
                             help="[agent] enabled_drivers (default smartnic_driver)")
            cmd.add_argument("--smartnic", action="append", default=[], metavar="KEY=VALUE",
                             help="extra [smartnic] option for the agent (repeatable)")
            cmd.add_argument("--timeout", type=float, default=240.0,
                             help="seconds for the whole start (default 240)")
            cmd.add_argument("--debug", action="store_true", help="services log at DEBUG")
            cmd.add_argument("--only", choices=("all", "fleet"), default="all",
                             help="fleet: only MariaDB, RabbitMQ, Placement (with an access "
                                  "log) and Cyborg's API and conductor, for bench/fleet "
                                  "(default all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stack: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
