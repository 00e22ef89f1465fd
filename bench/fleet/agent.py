"""One fleet-bench agent process: simulated compute nodes reporting the way cyborg-agent does.

Started by ``bench/fleet/run.py`` with ``PYTHONPATH`` set to the tree of the driver revision
under test (``git archive REV cyborg_smartnic``), so an older driver runs with its own
modules. Each host gets its own ``SmartNicDriver`` with a ``ConfigOpts`` of its own
(``[smartnic] hostname``, ``sysfs_root`` of its generated tree, ``state_file``); a cycle
calls every host's ``discover()`` and sends the result with
``ConductorAPI().report_data(context, hostname, devices)`` over RabbitMQ to the real
conductor, which is what cyborg-agent's ``ResourceTracker.update_usage`` does every 60 s.

Protocol: one command per stdin line (``cycle`` or ``quit``); after ``cycle`` one JSON line
on stdout: ``{"hosts", "errors", "wall_s", "discover_s", "rpc_s"}``. Logs go to ``--log-file``.

    python bench/fleet/agent.py --hosts hosts.json --config-file cyborg.conf
        --config-file override.conf --log-file agent.log [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    hostname: str
    discover_s: float
    rpc_s: float
    error: str | None


class Fleet:
    """This process's share of the simulated compute nodes."""

    def __init__(self, hosts: list[dict[str, str]], threads: int) -> None:
        from cyborg import context as cyborg_context
        from cyborg.conductor import rpcapi
        from oslo_config import cfg

        from cyborg_smartnic.driver import SmartNicDriver

        self.drivers: list[tuple[str, Any]] = []
        for host in hosts:
            conf = cfg.ConfigOpts()
            conf(args=[], default_config_files=[host["conf"]], use_env=False)
            self.drivers.append((host["hostname"], SmartNicDriver(conf)))
        self.api = rpcapi.ConductorAPI()
        self.context = cyborg_context.get_admin_context()
        self.pool = ThreadPoolExecutor(max_workers=threads)

    def _report(self, hostname: str, driver: Any) -> Outcome:
        start = time.perf_counter()
        try:
            devices = driver.discover()
        except Exception as exc:
            return Outcome(hostname, time.perf_counter() - start, 0.0,
                           f"discover: {exc!r}"[:300])
        scanned = time.perf_counter()
        try:
            self.api.report_data(self.context, hostname, devices)
        except Exception as exc:
            return Outcome(hostname, scanned - start, time.perf_counter() - scanned,
                           f"report_data: {exc!r}"[:300])
        return Outcome(hostname, scanned - start, time.perf_counter() - scanned, None)

    def cycle(self) -> dict[str, Any]:
        start = time.perf_counter()
        outcomes = list(self.pool.map(lambda hd: self._report(*hd), self.drivers))
        return {"hosts": len(outcomes),
                "errors": [f"{o.hostname}: {o.error}" for o in outcomes if o.error],
                "wall_s": round(time.perf_counter() - start, 3),
                "discover_s": round(sum(o.discover_s for o in outcomes), 3),
                "rpc_s": round(sum(o.rpc_s for o in outcomes), 3)}

    def close(self) -> None:
        self.pool.shutdown()
        for _, driver in self.drivers:
            close = getattr(driver, "close", None)
            if close is not None:
                close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", required=True, help="JSON list of {hostname, conf}")
    parser.add_argument("--config-file", action="append", required=True)
    parser.add_argument("--log-file", required=True)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    from cyborg.common import service as cyborg_service

    cyborg_argv = ["fleet-agent", "--log-file", args.log_file]
    for path in args.config_file:
        cyborg_argv += ["--config-file", path]
    cyborg_service.prepare_service(cyborg_argv)  # CONF, logging, RPC transport, objects
    with open(args.hosts) as stream:
        fleet = Fleet(json.load(stream), args.threads)
    try:
        print(json.dumps({"ready": len(fleet.drivers)}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "cycle":
                print(json.dumps(fleet.cycle()), flush=True)
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    finally:
        fleet.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
