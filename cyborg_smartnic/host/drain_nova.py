"""The drain's calls to the clouds (openstacksdk): nova-compute service, servers, ARQs, ports.

Every request goes through ``apiclient`` (a per-request timeout, 409/5xx retried with
backoff, and each write asks whether it happened anyway before trying again). What the
clouds answer is turned into ``host.drain``'s frozen view right here, so the planning stays
pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cyborg_smartnic import apiclient
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import drain

BINARY = "nova-compute"


class NoComputeService(SmartNicError):
    msg_fmt = ("Nova has no %(binary)s service on host %(host)s (the drain disables it): is "
               "[smartnic] hostname this host's name in Nova?")


@dataclass
class Clouds:
    """One openstacksdk connection for the drain of ``hostname``."""

    conn: Any
    hostname: str
    policy: apiclient.RetryPolicy

    @classmethod
    def connect(cls, cloud: str | None, hostname: str,
                policy: apiclient.RetryPolicy) -> Clouds:
        return cls(apiclient.connect(cloud, policy), hostname, policy)

    # ------------------------------------------------------------------ reads

    def services(self) -> tuple[drain.Service, ...]:
        found = apiclient.read("list nova-compute services",
                               lambda: list(self.conn.compute.services(binary=BINARY)),
                               self.policy)
        return tuple(_service(s) for s in found)

    def service(self) -> drain.Service:
        mine = [s for s in self.services() if s.host == self.hostname]
        if not mine:
            raise NoComputeService(binary=BINARY, host=self.hostname)
        return mine[0]

    def server(self, server_id: str) -> drain.Server | None:
        found = apiclient.read(f"show server {server_id}", lambda: [self.conn.compute.find_server(
            server_id, ignore_missing=True, all_projects=True)], self.policy)[0]
        if found is None:
            return None
        return _server(self.conn.compute.get_server(found.id) if not _has_flavor(found)
                       else found)

    def view(self) -> drain.CloudView:
        """Services, the servers on this host, and the VFs bound ARQs and ports hold here."""
        services = self.services()
        mine = next((s for s in services if s.host == self.hostname), None)
        if mine is None:
            raise NoComputeService(binary=BINARY, host=self.hostname)
        listed = apiclient.read(
            f"list the servers on {self.hostname}",
            lambda: list(self.conn.compute.servers(details=True, all_projects=True,
                                                   compute_host=self.hostname)), self.policy)
        servers = {str(s.id): _server(s) for s in listed}
        arqs = apiclient.read("list Cyborg accelerator requests",
                              lambda: list(self.conn.accelerator.accelerator_requests()),
                              self.policy)
        ports = apiclient.read(f"list the ports bound on {self.hostname}",
                               lambda: list(self.conn.network.ports(
                                   **{"binding:host_id": self.hostname})), self.policy)
        holdings = (drain.arq_holdings(arqs, self.hostname)
                    + drain.port_holdings(ports, self.hostname))
        for instance in sorted({h.instance for h in holdings} - set(servers)):
            server = self.server(instance)  # held VFs of a server Nova places elsewhere
            if server is not None:
                servers[instance] = server
        return drain.CloudView(self.hostname, mine,
                               tuple(s for s in services if s.host != self.hostname),
                               servers, holdings)

    # ------------------------------------------------------------------ writes

    def disable(self, service: drain.Service, why: str) -> None:
        def done() -> bool:
            now = self.service()
            return now.status == "disabled" and now.disabled_reason == why

        apiclient.call(f"disable {BINARY} on {self.hostname}",
                       lambda: self.conn.compute.disable_service(service.id,
                                                                 disabled_reason=why),
                       self.policy, done)

    def enable(self, service: drain.Service) -> None:
        apiclient.call(f"enable {BINARY} on {self.hostname}",
                       lambda: self.conn.compute.enable_service(service.id), self.policy,
                       lambda: self.service().status == "enabled")

    def live_migrate(self, server_id: str) -> None:
        """Ask Nova to live-migrate; the scheduler picks the host. A 409 (a task still
        running on the server) is retried; a retry is not sent once the server moves."""
        def started() -> bool:
            now = self.server(server_id)
            return now is None or now.host != self.hostname or now.status == "MIGRATING"

        apiclient.call(f"live-migrate server {server_id}",
                       lambda: self.conn.compute.live_migrate_server(
                           server_id, host=None, block_migration="auto"),
                       self.policy, started)

    def migration_fault(self, server_id: str) -> str | None:
        """The last failed migration of the server, as Nova records it (None if none)."""
        try:
            found = apiclient.read(
                f"list the migrations of {server_id}",
                lambda: list(self.conn.compute.migrations(instance_uuid=server_id)),
                self.policy)
        except apiclient.CloudError:
            return None
        failed = [m for m in found if getattr(m, "status", "") in ("error", "failed")]
        if not failed:
            return None
        last = failed[-1]
        return f"migration {last.id} to {getattr(last, 'dest_compute', None) or '?'} " \
               f"ended {last.status}"


def _service(found: Any) -> drain.Service:
    return drain.Service(str(found.id), str(found.host), str(found.status),
                         str(found.state), found.disabled_reason or None)


def _has_flavor(found: Any) -> bool:
    return getattr(found, "flavor", None) is not None


def _server(found: Any) -> drain.Server:
    flavor = getattr(found, "flavor", None)
    name = (getattr(flavor, "original_name", None) or getattr(flavor, "name", None) or ""
            ) if flavor is not None else ""
    specs = dict(getattr(flavor, "extra_specs", None) or {}) if flavor is not None else {}
    return drain.Server(str(found.id), str(found.name or ""), str(found.status or ""),
                        found.compute_host, bool(found.is_locked), str(name),
                        {str(k): str(v) for k, v in specs.items()})
