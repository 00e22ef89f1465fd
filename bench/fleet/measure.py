"""What the fleet bench reads from the running services, outside the driver's view.

Placement requests come from Placement's own access log (gunicorn, one line per request,
written by ``deploy/stack.py start --only fleet``), the conductor's CPU from ``/proc``
through the project's ``ProcReader`` (the cyborg-conductor master and its forked worker),
database sizes from the database server's ``information_schema`` (through
deploy/stacklib/database.py; MySQL-family SQL). Pure parsing functions plus thin readers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cyborg_smartnic.discovery.procfs import ProcReader
from deploy.stacklib import database

# gunicorn's default access log format: ... "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) '
                         r'\S+ "[^"]*" "(?P<agent>[^"]*)"')


@dataclass(frozen=True)
class Requests:
    """Placement requests in one window, by method and by caller."""

    total: int
    by_method: dict[str, int]
    conductor: int  # cyborg-conductor's own calls (its user agent names it)
    writes: int


def parse_access(lines: Iterable[str]) -> Requests:
    methods: Counter[str] = Counter()
    conductor = 0
    for line in lines:
        match = ACCESS_LINE.search(line)
        if match is None:
            continue
        methods[match["method"]] += 1
        conductor += match["agent"].startswith("cyborg-conductor")
    writes = sum(n for m, n in methods.items() if m != "GET")
    return Requests(sum(methods.values()), dict(sorted(methods.items())), conductor, writes)


class AccessLog:
    """Reads what Placement logged since the last mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def since_mark(self) -> Requests:
        with open(self.path, "rb") as stream:
            stream.seek(self.offset)
            data = stream.read()
        return parse_access(data.decode(errors="replace").splitlines())


_PROC = ProcReader("/")


def descendants(pid: int, proc: ProcReader = _PROC) -> list[int]:
    """``pid`` and every process below it (cyborg-conductor forks its worker)."""
    children: dict[int, list[int]] = {}
    for entry in proc.pids():
        fields = proc.stat_fields(entry)  # [1] is the parent's pid
        if fields and len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(entry)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Iterable[int], proc: ProcReader = _PROC) -> float:
    """utime + stime of the processes (proc(5) fields 14 and 15 of /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = proc.stat_fields(pid)
        if fields is not None and len(fields) > 12:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


TABLES_QUERY = ("SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('placement', 'cyborg')")
SIZES_QUERY = ("SELECT table_schema, SUM(data_length + index_length), SUM(table_rows) "
               "FROM information_schema.tables WHERE table_schema IN ('placement', 'cyborg') "
               "GROUP BY table_schema")


def database_sizes(server: database.Server) -> dict[str, dict[str, int]]:
    """Data + index bytes and rows of the placement and cyborg schemas, after ANALYZE TABLE
    refreshed the statistics information_schema reports."""
    tables = database.rows(server, TABLES_QUERY)
    if tables:  # names read from information_schema, quoted as identifiers
        database.rows(server, "ANALYZE TABLE " + ", ".join(f"`{s}`.`{t}`" for s, t in tables))
    sizes = database.rows(server, SIZES_QUERY)
    return {schema: {"bytes": int(size), "rows": int(count)} for schema, size, count in sizes}


def counts(server: database.Server) -> dict[str, int]:
    """Exact row counts of what a report creates."""
    (row,) = database.rows(server,
                           "SELECT (SELECT COUNT(*) FROM placement.resource_providers), "
                 "(SELECT COUNT(*) FROM cyborg.deployables WHERE rp_uuid IS NOT NULL), "
                 "(SELECT COUNT(*) FROM cyborg.attach_handles)")
    providers, deployables, handles = (int(v) for v in row)
    return {"resource_providers": providers, "linked_deployables": deployables,
            "attach_handles": handles}


def connections_used(server: database.Server) -> int:
    """The most client connections the server held at once since it started."""
    ((_, value),) = database.rows(server, "SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
    return int(value)
