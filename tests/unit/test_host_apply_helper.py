"""A privileged helper that cannot start (not root, no sudo rule): one clear step failure
saying what to do, not an oslo.privsep traceback. The real oslo.privsep client starts the
helper command; here that command is ``false``, as a refused ``sudo`` would end."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import inuse, privileged
from cyborg_smartnic.host.apply import Executor
from cyborg_smartnic.host.steps import SET_HUGEPAGES, Plan, Step
from cyborg_smartnic.hostgen import build_scenario


@pytest.fixture
def refused_helper() -> Iterator[None]:
    false = shutil.which("false")
    assert false is not None
    cfg.CONF.set_override("helper_command", false, group=privileged.CONFIG_SECTION)
    assert privileged.context.client_mode and privileged.context.channel is None
    try:
        yield
    finally:
        privileged.context.stop()
        cfg.CONF.clear_override("helper_command", group=privileged.CONFIG_SECTION)


def test_a_helper_that_cannot_start_fails_the_step_with_a_remedy(
        tmp_path: Path, refused_helper: None) -> None:
    tree = build_scenario(tmp_path / "host", "example")
    root = str(tree.root)
    step = Step(SET_HUGEPAGES, "node0 1048576kB", "test", 8, 12, numa_node=0,
                  size_kb=1048576)
    result = Executor(root, lambda: scan(root), lambda h: inuse.detect(root, h)).apply(
        Plan((step,)))
    assert result.error is not None
    assert result.error.startswith("node0 1048576kB: cannot start the privileged helper "
                                   "(privsep helper command exited non-zero (1)): run host "
                                   "apply as root")
    assert (tree.sys / "devices/system/node/node0/hugepages/hugepages-1048576kB/"
            "nr_hugepages").read_text() == "8\n"
