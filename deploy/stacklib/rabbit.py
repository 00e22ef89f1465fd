"""A private RabbitMQ node for the local stack, from Debian's rabbitmq-server package.

Everything the broker keeps lives in the work dir: its own epmd on a free port (so no
stray epmd outlives the stack), node name, cookie, mnesia, logs, config and env file
(so /etc/rabbitmq/rabbitmq-env.conf of the machine is never read). It runs as root in the
foreground of its own session: the PID we record is the one that gets TERM.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import amqp

from deploy.stacklib import procs

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
INSTALL_HINT = "apt-get install rabbitmq-server"


@dataclass(frozen=True)
class Broker:
    """Where the node listens and how the services log in."""

    base: Path
    node: str
    amqp_port: int
    dist_port: int
    epmd_port: int
    user: str
    password: str
    vhost: str

    @property
    def transport_url(self) -> str:
        return (f"rabbit://{self.user}:{self.password}@127.0.0.1:{self.amqp_port}"
                f"/{self.vhost}")


def check_installed() -> None:
    """Fail with one line when the Debian package is missing."""
    if not os.access(SERVER, os.X_OK) or not shutil.which("epmd"):
        raise procs.StackError(
            f"rabbitmq-server is not installed (no {SERVER}): run `{INSTALL_HINT}`")


def plan(base: Path) -> Broker:
    amqp = procs.free_port()
    return Broker(base=base, node=f"smartnic-{amqp}@localhost", amqp_port=amqp,
                  dist_port=procs.free_port(), epmd_port=procs.free_port(),
                  user="cyborg", password=secrets.token_hex(8), vhost="cyborg")


def env(broker: Broker) -> dict[str, str]:
    base = broker.base
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(base / "home"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_NODENAME": broker.node,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(broker.amqp_port),
        "RABBITMQ_DIST_PORT": str(broker.dist_port),
        "ERL_EPMD_PORT": str(broker.epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }


def prepare(broker: Broker) -> None:
    """Write the node's files; a fresh mnesia every start keeps runs independent."""
    base = broker.base
    shutil.rmtree(base, ignore_errors=True)
    for sub in ("home", "mnesia", "log"):
        (base / sub).mkdir(parents=True)
    cookie = base / "home" / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    (base / "rabbitmq-env.conf").write_text("# the local stack sets everything by env\n")
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{broker.amqp_port}\n"
        "loopback_users.guest = true\n"
        "log.file.level = info\n"
        "disk_free_limit.absolute = 50MB\n"
        f"load_definitions = {base / 'definitions.json'}\n")
    (base / "definitions.json").write_text(json.dumps(definitions(broker), indent=2) + "\n")


def definitions(broker: Broker) -> dict[str, Any]:
    """The vhost, user and permissions, loaded by the node as it boots (no rabbitmqctl
    round trips, each of which starts an Erlang VM)."""
    salt = secrets.token_bytes(4)
    digest = hashlib.sha256(salt + broker.password.encode()).digest()
    return {
        "vhosts": [{"name": broker.vhost}],
        "users": [{"name": broker.user, "tags": "",
                   "password_hash": base64.b64encode(salt + digest).decode(),
                   "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        "permissions": [{"user": broker.user, "vhost": broker.vhost, "configure": ".*",
                         "write": ".*", "read": ".*"}],
    }


def start(broker: Broker, log_dir: Path) -> list[procs.Proc]:
    """Start epmd, then the node; returns both records (epmd first)."""
    environ = env(broker)
    epmd = procs.spawn(
        "epmd", ["epmd", "-port", str(broker.epmd_port), "-address", "127.0.0.1"],
        environ, log_dir)
    server = procs.spawn("rabbitmq", [SERVER], environ, log_dir, cwd=broker.base)
    return [epmd, server]


def _connection(broker: Broker) -> amqp.Connection:
    return amqp.Connection(f"127.0.0.1:{broker.amqp_port}", userid=broker.user,
                           password=broker.password, virtual_host=broker.vhost,
                           connect_timeout=5)


def can_log_in(broker: Broker) -> bool:
    """The services' account works (the node booted and loaded its definitions)."""
    try:
        with _connection(broker):
            return True
    except (OSError, amqp.exceptions.AMQPError):
        return False


def wait_ready(broker: Broker, server: procs.Proc, timeout: float) -> None:
    procs.wait_until(lambda: can_log_in(broker), server,
                     "waiting for RabbitMQ to accept the services' account", timeout,
                     interval=0.5)


def consumers(broker: Broker, queue: str) -> int:
    """How many consumers listen on a queue of the stack's vhost (0 when it does not exist)."""
    try:
        with _connection(broker) as connection:
            declared = connection.channel().queue_declare(queue, passive=True)
            return int(declared.consumer_count)
    except (OSError, amqp.exceptions.AMQPError):
        return 0
