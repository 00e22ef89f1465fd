"""An API endpoint that accepts connections and never answers costs a bounded, logged wait.

The endpoint is a real listening socket on 127.0.0.1 that accepts and then says nothing (what
a hung load balancer or a stopped-but-listening service looks like); ``profile apply`` and
``host plan --os-cloud`` go through openstacksdk to it and must give up after ``--attempts``
tries of ``--api-timeout`` seconds each, saying so, instead of waiting forever.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic import apiclient
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.examples import find as find_examples
from cyborg_smartnic.host import inuse

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """http://127.0.0.1:PORT that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def silent_cloud(silent_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  silent:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {silent_endpoint}\n      token: t\n"
        f"    accelerator_endpoint_override: {silent_endpoint}/v2\n"
        f"    compute_endpoint_override: {silent_endpoint}/compute\n"
        "    region_name: RegionOne\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    return "silent"


def test_profile_apply_gives_up_after_its_budget(
        silent_cloud: str, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    code = main(["profile", "apply", "--os-cloud", silent_cloud, "--dry-run",
                 "--api-timeout", "0.5", "--attempts", "2", "--retry-delay", "0",
                 str(REPO / "profiles")])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    assert elapsed < 20, elapsed  # 2 tries of 0.5 s (plus discovery), never forever
    assert "(attempt 1 of 2), retrying" in caplog.text  # a timeout is said, not silent
    assert err.splitlines()[-1].startswith(
        "cyborg-smartnic: error: read device profiles, flavors and accelerator requests "
        "failed: ")
    assert "(tried 2 times)" in err.splitlines()[-1]


def test_host_plan_asks_cyborg_within_its_budget_and_fails_closed(
        silent_cloud: str, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = main(["host", "plan", "--example-host", "--os-cloud", silent_cloud,
                 "--api-timeout", "0.5", "--attempts", "2", "--retry-delay", "0",
                 "-f", "json", str(find_examples().host_config)])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert elapsed < 20, elapsed
    assert code in (0, 1)
    assert "cannot ask Cyborg (silent) which VFs are bound" in captured.out + captured.err


def test_each_request_is_bounded_by_the_policy_timeout(silent_cloud: str) -> None:
    policy = apiclient.RetryPolicy(attempts=1, timeout=0.3, sleep=lambda _: None)
    started = time.monotonic()
    found = inuse.cyborg_in_use(silent_cloud, "node1", policy)
    assert time.monotonic() - started < 10
    assert found.blind is not None and "(silent)" in found.blind
