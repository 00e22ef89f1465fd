"""bench/fleet/measure.py: Placement's access log lines counted by method and caller."""

from __future__ import annotations

import os
from pathlib import Path

from bench.fleet import measure

LINES = [
    '127.0.0.1 - - [27/Nov/2026:09:35:42 +0000] "GET /resource_providers?name=h1 HTTP/1.1" '
    '200 136 "-" "cyborg-conductor keystoneauth1/5.18.1 python-requests/2.34.2"',
    '127.0.0.1 - - [27/Nov/2026:09:35:43 +0000] "PUT /resource_providers/u/inventories '
    'HTTP/1.1" 200 300 "-" "fleet-agent keystoneauth1/5.18.1"',
    '127.0.0.1 - - [27/Nov/2026:09:35:44 +0000] "GET /resource_providers/u/traits HTTP/1.1" '
    '200 88 "-" "fleet-agent keystoneauth1/5.18.1"',
    "[2026-11-27 09:35:41 +0000] [12044] [INFO] Booting worker with pid: 12046",
]


def test_parse_access_counts_methods_callers_and_writes() -> None:
    counted = measure.parse_access(LINES)
    assert counted == measure.Requests(total=3, by_method={"GET": 2, "PUT": 1},
                                       conductor=1, writes=1)


def test_access_log_counts_only_lines_after_the_mark(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(LINES[0] + "\n")
    log = measure.AccessLog(path)
    log.mark()
    with open(path, "a") as stream:
        stream.write("\n".join(LINES[1:3]) + "\n")
    assert log.since_mark().by_method == {"GET": 1, "PUT": 1}


def test_cpu_of_this_process_and_its_tree() -> None:
    pid = os.getpid()
    assert pid in measure.descendants(pid)
    busy = sum(i * i for i in range(200_000))
    assert busy > 0
    assert measure.cpu_seconds([pid]) > 0
