"""One private, real Open vSwitch per test session (per xdist worker), see
deploy/stacklib/private_ovs.py.

``ovs`` hands it to a test clean: no bridges, empty other_config, ovs-vswitchd running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cyborg_smartnic.host.ovs.ovsdb import OvsPaths
from deploy.stacklib.private_ovs import PrivateOvs, available, private_ovs


@pytest.fixture(scope="session")
def real_ovs() -> Iterator[PrivateOvs]:
    missing = available()
    if missing:
        pytest.fail(f"these tests need a real Open vSwitch: {missing}")
    with private_ovs() as ovs:
        yield ovs


@pytest.fixture
def ovs(real_ovs: PrivateOvs) -> Iterator[PrivateOvs]:
    if real_ovs.vswitchd is None or real_ovs.vswitchd.poll() is not None:
        real_ovs.start_vswitchd()
    yield real_ovs
    for bridge in real_ovs.vsctl("list-br").split():
        real_ovs.vsctl("--if-exists", "del-br", bridge)
    real_ovs.vsctl("clear", "Open_vSwitch", ".", "other_config")


@pytest.fixture
def ovs_paths(ovs: PrivateOvs) -> OvsPaths:
    return OvsPaths(rundir=str(ovs.rundir), db_file=str(ovs.db_file))
