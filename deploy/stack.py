#!/usr/bin/env python3
"""Start, stop or show a real local OpenStack stack for cyborg-smartnic.

    python deploy/stack.py start [--work-dir build/stack] [--sysfs-root DIR] ...
    python deploy/stack.py status [-f json]
    python deploy/stack.py stop

Separate processes, all on 127.0.0.1 with free ports: RabbitMQ (Debian's package, a private
node), Placement and the Cyborg API under gunicorn, cyborg-conductor, cyborg-agent with the
smartnic driver reading a recorded sysfs tree (the bundled example host by default), and
the Nova stub that receives ARQ bind events. State, configs, PIDs and one log per service
live in the work dir; `stack.json` there tells clients where everything is.
Run it with the project's virtualenv Python (it runs the services from that venv).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stacklib import config, cyborg, placement, procs, rabbit
from stacklib.config import ADMIN_TOKEN, SERVICE_TOKEN, TEMPLATES
from stacklib.procs import Proc, StackError

DEPLOY_DIR = Path(__file__).resolve().parent
NOVA_STUB = DEPLOY_DIR / "nova_stub.py"
BIN = Path(sys.executable).parent
STATE = "stack.json"
PIDS = "pids.json"
DEFAULT_HOSTNAME = "compute-0"


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
    if args.driver == "smartnic_driver" and not (BIN / "cyborg-smartnic").exists():
        raise StackError(f"{BIN}/cyborg-smartnic is missing: install the project (make install)")
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "placement", "cyborg", "rabbitmq"):
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


def _start(st: Starter, args: argparse.Namespace) -> dict[str, Any]:
    work = st.work
    smartnic = config.smartnic_options(args.smartnic)
    if args.sysfs_root:
        sysfs_root = Path(args.sysfs_root).resolve()
    else:  # the example host comes with its [smartnic] options; --smartnic ones win
        sysfs_root, example_options = config.example_host(work / "host")
        smartnic = {**example_options, **smartnic}
    hostname = args.hostname or smartnic.get("hostname") or DEFAULT_HOSTNAME
    smartnic.setdefault("state_file", str(work / "cyborg" / "smartnic-last-report.json"))
    broker = rabbit.plan(work / "rabbitmq")
    ports = {"placement": procs.free_port(), "cyborg": procs.free_port(),
             "nova": procs.free_port()}
    state: dict[str, Any] = {
        "work_dir": str(work),
        "hostname": hostname,
        "sysfs_root": str(sysfs_root),
        "driver": args.driver,
        "placement_url": f"http://127.0.0.1:{ports['placement']}",
        "cyborg_url": f"http://127.0.0.1:{ports['cyborg']}/accelerator",
        "nova_url": f"http://127.0.0.1:{ports['nova']}/v2.1",
        "transport_url": broker.transport_url,
        "rabbitmq_node": broker.node,
        "admin_token": ADMIN_TOKEN,
        "service_token": SERVICE_TOKEN,
        "cyborg_config": str(work / "cyborg" / "cyborg.conf"),
        "clouds_yaml": str(work / "clouds.yaml"),
        "cloud": "smartnic-stack",
        "logs": str(work / "logs"),
    }
    values = {"work_dir": str(work), "hostname": hostname, "debug": str(args.debug),
              "transport_url": broker.transport_url, "cyborg_port": str(ports["cyborg"]),
              "drivers": args.driver, "placement_url": state["placement_url"],
              "nova_url": state["nova_url"], "sysfs_root": str(sysfs_root),
              "smartnic_extra": config.ini_lines(smartnic)}
    placement_conf = config.render("placement.conf.in",
                                   work / "placement" / "placement.conf", values)
    cyborg_conf = config.render("cyborg.conf.in", work / "cyborg" / "cyborg.conf", values)
    shutil.copy(TEMPLATES / "api-paste.ini", work / "cyborg" / "api-paste.ini")
    config.write_clouds_yaml(state)

    # Slow starters first and side by side: the broker, Placement, the Nova stub.
    rabbit.prepare(broker)
    for proc in rabbit.start(broker, work / "logs"):
        st.add(proc)
    rabbitmq = st.started[-1]
    place = st.spawn("placement", _gunicorn("placement", "placement.wsgi.api:application",
                                            ports["placement"]),
                     _service_env(OS_PLACEMENT_CONFIG_DIR=str(placement_conf.parent)))
    nova_stub = Path(args.nova_stub)
    if not nova_stub.is_file():
        raise StackError(f"{nova_stub} is missing (the Nova stub that receives bind events)")
    nova = st.spawn("nova-stub", [sys.executable, str(nova_stub), "--port", str(ports["nova"])],
                    _service_env())
    cyborg.create_schema(BIN, cyborg_conf, work / "logs", _service_env())
    st.mark("cyborg database created")

    procs.wait_http_ok(state["placement_url"] + "/", place, st.remaining())
    state["compute_rp_uuid"] = placement.ensure_compute_node(state["placement_url"], hostname)
    st.mark(f"placement up, compute node {hostname} created")
    procs.wait_until(lambda: procs.http_status(state["nova_url"]) is not None, nova,
                     "waiting for the Nova stub", st.remaining())

    rabbit.wait_ready(broker, rabbitmq, st.remaining())
    rabbit.create_account(broker)
    st.mark("rabbitmq up")

    conductor = st.spawn("cyborg-conductor", [str(BIN / "cyborg-conductor"), "--config-file",
                                              str(cyborg_conf)], _service_env())
    api = st.spawn("cyborg-api", _gunicorn(
        "cyborg-api", "stacklib.cyborg_wsgi:application", ports["cyborg"],
        ["--pythonpath", str(DEPLOY_DIR)]),
        _service_env(CYBORG_STACK_CONFIG=str(cyborg_conf), SCRIPT_NAME="/accelerator"))
    procs.wait_until(lambda: rabbit.consumers(broker).get("cyborg-conductor", 0) > 0,
                     conductor, "waiting for cyborg-conductor to listen on RabbitMQ",
                     st.remaining(), interval=1.0)
    st.mark("cyborg-conductor up")
    procs.wait_http_ok(state["cyborg_url"] + "/", api, st.remaining())
    profiles_url = state["cyborg_url"] + "/v2/device_profiles"
    procs.wait_until(
        lambda: procs.http_status(profiles_url, {"X-Auth-Token": ADMIN_TOKEN}) == 200,
        api, f"waiting for an authenticated GET {profiles_url}", st.remaining())
    st.mark("cyborg-api up")

    expected = (cyborg.expected_deployables(BIN, cyborg_conf, sysfs_root, _service_env())
                if args.driver == "smartnic_driver" else None)
    agent = st.spawn("cyborg-agent", [str(BIN / "cyborg-agent"), "--config-file",
                                      str(cyborg_conf)], _service_env())
    names = cyborg.wait_reported(state, agent, conductor, expected, st.remaining())
    st.mark(f"cyborg-agent reported {len(names)} resource providers")

    state["resource_providers"] = sorted(names)
    state["services"] = {p.name: {"pid": p.pid, "log": p.log} for p in st.started}
    state["startup_seconds"] = st.timings
    (work / STATE).write_text(json.dumps(state, indent=2) + "\n")
    return state


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
        _log(f"up: Placement {state['placement_url']}, Cyborg {state['cyborg_url']}, "
             f"Nova stub {state['nova_url']}; state in {Path(state['work_dir']) / STATE}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    results = stop(args)
    if not results:
        _log("nothing to stop")
    for name, outcome in results:
        _log(f"{name}: {outcome}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    state = status(args)
    if args.format == "json":
        print(json.dumps(state, indent=2))
        return 0
    rows = state["processes"]
    if not rows:
        print(f"no stack recorded in {state['work_dir']}")
        return 0
    for row in rows:
        mark = "running" if row["running"] else "DEAD"
        print(f"{row['name']:<17} {row['pid']:>7}  {mark:<8} {row['log']}")
    for key in ("placement_url", "cyborg_url", "nova_url", "clouds_yaml"):
        if key in state:
            print(f"{key:<17} {state[key]}")
    return 0 if all(r["running"] for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stack.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status}
    for name, func in commands.items():
        cmd = sub.add_parser(name)
        cmd.add_argument("--work-dir", default="build/stack",
                         help="state, configs, PIDs and logs (default: build/stack)")
        cmd.set_defaults(func=func)
        if name != "stop":
            cmd.add_argument("-f", "--format", choices=("table", "json"), default="table")
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
            cmd.add_argument("--nova-stub", default=str(NOVA_STUB),
                             help="script serving Nova's API (default deploy/nova_stub.py)")
            cmd.add_argument("--debug", action="store_true", help="services log at DEBUG")
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
