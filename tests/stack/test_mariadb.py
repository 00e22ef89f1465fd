"""The MariaDB backend's own set-up (deploy/stacklib/mariadb.py) without starting it; the rest
of the stack reaches it through deploy/stacklib/database.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.stacklib import mariadb, procs
from tests.stack.conftest import missing_server_error


def test_missing_mariadb_is_one_line_naming_the_package(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    error = missing_server_error(monkeypatch, mariadb, tmp_path / "mariadbd")
    assert error == (f"mariadb-server is not installed (no {tmp_path}/mariadbd): "
                     "run `apt-get install mariadb-server`")


def test_mariadb_is_private_to_the_work_dir(tmp_path: Path) -> None:
    server = mariadb.plan(tmp_path / "mariadb")
    options = mariadb.options(server)
    assert "bind-address = 127.0.0.1\n" in options
    assert f"port = {server.port}\n" in options
    assert f"socket = {tmp_path}/mariadb/mysqld.sock\n" in options
    assert f"datadir = {tmp_path}/mariadb/data\n" in options
    assert server.url("nova").startswith(f"mysql+pymysql://stack:{server.password}@127.0.0.1:"
                                         f"{server.port}/nova?")
    with pytest.raises(procs.StackError, match="too long for a unix socket"):
        mariadb.plan(tmp_path / ("x" * 120))
