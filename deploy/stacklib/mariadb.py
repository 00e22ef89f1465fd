"""A private MariaDB server for the local stack, from Debian's mariadb-server package.

Its data dir, unix socket, PID file, error log and option file live in the work dir, and it
listens on a free TCP port of 127.0.0.1 only, so two stacks (or the machine's own MariaDB)
never meet. `mariadb-install-db` initialises a fresh data dir on every start (about 2 s);
the server is tuned for a throwaway test database (small buffer pool and redo log, no
binary log, no fsync, one shared tablespace) and is stopped by PID like every other service.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.stacklib import procs

NAME = "mariadb"  # the service, its work subdirectory and its stack.json entry
SERVER = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
CLIENT = "/usr/bin/mariadb"
INSTALL_HINT = "apt-get install mariadb-server"
# A unix socket path longer than this does not fit in sockaddr_un.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class Server:
    """Where the server keeps its files and how the services log in."""

    base: Path
    port: int
    user: str
    password: str

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def defaults_file(self) -> Path:
        return self.base / "my.cnf"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database (PyMySQL over TCP, as the services use)."""
        return (f"mysql+pymysql://{self.user}:{self.password}@127.0.0.1:{self.port}"
                f"/{database}?charset=utf8")


def state_entry(server: Server, databases: Sequence[str]) -> dict[str, Any]:
    """What stack.json records, enough for `from_state` and for a client on the socket."""
    return {"port": server.port, "socket": str(server.socket), "user": server.user,
            "password": server.password, "databases": list(databases)}


def from_state(base: Path, entry: Mapping[str, Any]) -> Server:
    """The running server `state_entry` recorded (its files under ``base``)."""
    return Server(base=base, port=int(entry["port"]), user=str(entry["user"]),
                  password=str(entry["password"]))


def check_installed() -> None:
    """Fail with one line when the Debian package is missing."""
    missing = [path for path in (SERVER, INSTALL_DB, CLIENT) if not os.access(path, os.X_OK)]
    if missing:
        raise procs.StackError(
            f"mariadb-server is not installed (no {missing[0]}): run `{INSTALL_HINT}`")


def plan(base: Path) -> Server:
    server = Server(base=base, port=procs.free_port(), user="stack",
                    password=secrets.token_hex(8))
    if len(str(server.socket)) > MAX_SOCKET_PATH:
        raise procs.StackError(f"{server.socket}: the path is too long for a unix socket; "
                               "use a shorter --work-dir")
    return server


def options(server: Server) -> str:
    """The server's whole option file (read with --defaults-file, so /etc/mysql is not)."""
    base = server.base
    lines = [
        "[mysqld]",
        f"datadir = {base / 'data'}",
        f"socket = {server.socket}",
        f"pid-file = {base / 'mysqld.pid'}",
        f"log-error = {base / 'error.log'}",
        f"port = {server.port}",
        "bind-address = 127.0.0.1",
        "skip-name-resolve",
        "skip-log-bin",
        "character-set-server = utf8",
        "collation-server = utf8_general_ci",
        "max_connections = 400",
        "innodb_buffer_pool_size = 64M",
        "innodb_log_file_size = 16M",
        # A throwaway database: durability is not worth an fsync. The schemas of Nova,
        # Cyborg and Placement are hundreds of CREATE/ALTER TABLE, and with fsyncs they wait
        # on the disk (minutes on a busy machine) rather than on the CPU.
        "innodb_flush_log_at_trx_commit = 0",
        "innodb_doublewrite = 0",
        "innodb_flush_method = nosync",
        "innodb_file_per_table = OFF",
    ]
    if os.geteuid() == 0:
        lines.append("user = root")  # mariadbd refuses to run as root unless told
    return "\n".join(lines) + "\n"


def prepare(server: Server, log_dir: Path) -> None:
    """A fresh data dir every start keeps runs independent."""
    shutil.rmtree(server.base, ignore_errors=True)
    (server.base / "data").mkdir(parents=True)
    server.defaults_file.write_text(options(server))
    log = log_dir / "mariadb-install-db.log"
    with open(log, "wb") as out:
        done = subprocess.run(
            [INSTALL_DB, f"--defaults-file={server.defaults_file}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=120,
            check=False,
            cwd=server.base)
    if done.returncode != 0:
        raise procs.StackError(f"mariadb-install-db failed (exit {done.returncode}); "
                               f"last lines of {log}:\n{procs.log_tail(log)}")


def start(server: Server, log_dir: Path) -> procs.Proc:
    return procs.spawn(NAME, [SERVER, f"--defaults-file={server.defaults_file}"],
                       {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                        "LANG": "C.UTF-8", "HOME": str(server.base)},
                       log_dir, cwd=server.base)


def sql(server: Server, statements: str, timeout: float = 30.0
        ) -> subprocess.CompletedProcess[str]:
    """Run SQL as the server's root over its unix socket."""
    return subprocess.run(
        [CLIENT, "--no-defaults", f"--socket={server.socket}", "--user=root", "--batch",
         "--execute", statements], capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False)


def wait_ready(server: Server, proc: procs.Proc, timeout: float) -> None:
    procs.wait_until(lambda: server.socket.exists() and sql(server, "SELECT 1").returncode == 0,
                     proc, "waiting for MariaDB to accept connections", timeout, interval=0.2)


def create_databases(server: Server, names: Sequence[str]) -> None:
    """Empty databases and one user with every right on them (over TCP from 127.0.0.1)."""
    statements = [f"CREATE DATABASE `{name}` CHARACTER SET utf8" for name in names]
    statements.append(f"CREATE USER '{server.user}'@'127.0.0.1' "
                      f"IDENTIFIED BY '{server.password}'")
    statements.extend(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{server.user}'@'127.0.0.1'"
                      for name in names)
    done = sql(server, ";\n".join(statements) + ";")
    if done.returncode != 0:
        raise procs.StackError(f"creating the stack's databases failed: "
                               f"{(done.stderr or done.stdout).strip()}")
