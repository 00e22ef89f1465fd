"""Talk to the running OVSDB with ovsdbapp (Neutron's library), never by parsing ovs-vsctl.

``read_state`` is the read-only view the plan and the doctor use; ``write_other_config`` is
called only from the privsep entry points in ``privileged``. Each call opens its own
connection and closes it, so nothing lingers in a short-lived CLI process or the daemon.
Where the daemon keeps its files is ``OvsPaths``: Debian's defaults, or a private instance's
run directory (tests, a second OVS).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cyborg_smartnic.discovery.procfs import ProcReader
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host.ovs import state as st

DEFAULT_RUNDIR = "/var/run/openvswitch"
DEFAULT_DB_FILE = "/etc/openvswitch/conf.db"
TIMEOUT = 10.0
_TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface")


class OvsUnavailable(SmartNicError):
    msg_fmt = "Open vSwitch database %(connection)s: %(reason)s"


@dataclass(frozen=True, slots=True)
class OvsPaths:
    """Where a running Open vSwitch keeps its socket, pidfile, control sockets and db."""

    rundir: str = DEFAULT_RUNDIR
    db_file: str = DEFAULT_DB_FILE

    @property
    def socket(self) -> str:
        return os.path.join(self.rundir, "db.sock")

    @property
    def connection(self) -> str:
        return f"unix:{self.socket}"

    @property
    def vswitchd_pidfile(self) -> str:
        return os.path.join(self.rundir, "ovs-vswitchd.pid")

    def vswitchd_ctl(self, pid: int) -> str:
        """The daemon's unixctl socket (its default name), for ``ovs-appctl -t``."""
        return os.path.join(self.rundir, f"ovs-vswitchd.{pid}.ctl")


@contextmanager
def _api(connection: str, timeout: float = TIMEOUT) -> Iterator[Any]:
    socket = connection[len("unix:"):] if connection.startswith("unix:") else None
    if socket is not None and not os.path.exists(socket):
        raise OvsUnavailable(connection=connection,
                             reason="no such socket (is Open vSwitch running?)")
    with warnings.catch_warnings():  # python-ovs imports eventlet, which warns on import
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
        from ovsdbapp.backend.ovs_idl import connection as ovs_connection  # noqa: PLC0415
        from ovsdbapp.backend.ovs_idl import idlutils  # noqa: PLC0415
        from ovsdbapp.schema.open_vswitch import impl_idl  # noqa: PLC0415
    try:
        helper = idlutils.get_schema_helper(connection, "Open_vSwitch")
    except Exception as exc:  # ovsdbapp raises bare Exception when it cannot connect
        raise OvsUnavailable(connection=connection, reason=str(exc) or type(exc).__name__) \
            from exc
    for table in _TABLES:
        helper.register_table(table)
    idl = ovs_connection.OvsdbIdl(connection, helper)
    conn = ovs_connection.Connection(idl, timeout=timeout)
    try:
        api = impl_idl.OvsdbIdl(conn, start=True)
    except Exception as exc:
        conn.stop()
        raise OvsUnavailable(connection=connection, reason=str(exc) or type(exc).__name__) \
            from exc
    try:
        yield api
    finally:
        conn.stop()


def _scalar(value: Any) -> Any:
    """OVSDB optional columns come back as ``[]`` or ``[x]``."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def read_state(paths: OvsPaths, proc: ProcReader | None = None) -> st.OvsState:
    """OVSDB's view plus the daemon's start time and the keys' change times."""
    with _api(paths.connection) as api:
        root = api.db_list("Open_vSwitch", columns=["other_config", "ovs_version"]
                           ).execute(check_error=True)
        bridges = api.db_list("Bridge", columns=["name", "datapath_type", "ports"]
                              ).execute(check_error=True)
        ports = api.db_list("Port", columns=["_uuid", "interfaces"]).execute(check_error=True)
        ifaces = api.db_list("Interface", columns=["_uuid", "name", "type", "external_ids",
                                                   "ofport", "error"]
                             ).execute(check_error=True)
    by_port = {row["_uuid"]: row["interfaces"] for row in ports}
    by_iface = {row["_uuid"]: row for row in ifaces}
    model = []
    for bridge in bridges:
        members = [by_iface[i] for p in bridge["ports"] for i in by_port.get(p, ())
                   if i in by_iface]
        model.append(st.OvsBridge(
            name=bridge["name"], datapath_type=bridge["datapath_type"] or "",
            interfaces=tuple(sorted((st.OvsInterface(
                name=i["name"], type=i["type"] or "", external_ids=dict(i["external_ids"]),
                ofport=_scalar(i["ofport"]), error=_scalar(i["error"])) for i in members),
                key=lambda i: i.name))))
    row = root[0] if root else {}
    return st.OvsState(
        other_config=dict(row.get("other_config", {})),
        bridges=tuple(sorted(model, key=lambda b: b.name)),
        ovs_version=_scalar(row.get("ovs_version")),
        vswitchd=st.vswitchd_from_pidfile(paths.vswitchd_pidfile, proc),
        changed_at=st.read_change_times(paths.db_file),
        source=paths.connection)


def write_other_config(connection: str, changes: Mapping[str, str | None]) -> None:
    """Set (or, for ``None``, remove) ``Open_vSwitch:other_config`` keys in one transaction.

    Only for the privsep entry points, which validate ``changes`` first.
    """
    with _api(connection) as api, api.transaction(check_error=True) as txn:
        setting = {k: v for k, v in changes.items() if v is not None}
        if setting:
            txn.add(api.db_set("Open_vSwitch", ".", ("other_config", setting)))
        for key in (k for k, v in changes.items() if v is None):
            txn.add(api.db_remove("Open_vSwitch", ".", "other_config", key, if_exists=True))


def read_other_config(connection: str) -> dict[str, str]:
    with _api(connection) as api:
        value = api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True)
    return dict(value or {})
