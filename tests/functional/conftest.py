"""Pytest fixtures over ``tests/functional/harness.py``: a fresh in-process cloud per test.

``stack`` is a started ``Stack`` with default options; ``make_stack(**kwargs)`` builds one with
other ``[smartnic]`` / pool options (or ``start_agent=False`` to test agent start-up). One stack
lives at a time in a process: Cyborg's configuration and the intercepted URLs are global.
Every test collected in this folder carries the ``functional`` marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily: the filters below must be in place first
    from tests.functional.harness import Stack

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
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []

    from tests.functional.harness import Stack

    def _make(**kwargs: Any) -> Stack:
        if started:
            raise RuntimeError("one Stack per test: Cyborg's CONF and the URLs are global")
        stack = Stack(tmp_path / "stack", **kwargs)
        started.append(stack)
        stack.setUp()
        return stack

    yield _make
    for stack in reversed(started):
        stack.cleanUp()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
