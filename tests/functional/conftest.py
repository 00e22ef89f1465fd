"""Pytest fixtures over ``tests/functional/harness.py``: a fresh in-process cloud per test.

``inproc`` is a started ``InProcessCloud`` with default options; ``make_inproc(**kwargs)``
builds one with other ``[smartnic]`` / pool options (or ``start_agent=False`` to test agent
start-up). One in-process cloud lives at a time in a process: Cyborg's configuration and
the intercepted URLs are global.
Every test collected in this folder carries the ``functional`` marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily: the filters below must be in place first
    from tests.functional.harness import InProcessCloud

_NOISY_WARNINGS = (
    "ignore::UserWarning:oslo_policy.policy",
    "ignore::DeprecationWarning",
    "ignore:\\s*Eventlet is deprecated",
    "ignore:::openstack",
)


def pytest_configure(config: pytest.Config) -> None:
    for line in _NOISY_WARNINGS:
        config.addinivalue_line("filterwarnings", line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.functional)


@pytest.fixture
def make_inproc(tmp_path: Path) -> Iterator[Callable[..., InProcessCloud]]:
    started: list[InProcessCloud] = []

    from tests.functional.harness import InProcessCloud

    def _make(**kwargs: Any) -> InProcessCloud:
        if started:
            raise RuntimeError("one InProcessCloud per test: Cyborg's CONF and the URLs are "
                               "global")
        inproc = InProcessCloud(tmp_path / "inproc", **kwargs)
        started.append(inproc)
        inproc.setUp()
        return inproc

    yield _make
    for inproc in reversed(started):
        inproc.cleanUp()


@pytest.fixture
def inproc(make_inproc: Callable[..., InProcessCloud]) -> InProcessCloud:
    return make_inproc()
