"""The driver's state file lost, corrupt or shared: a bound VF keeps its attach handle.

Each test binds VF 3 of a four-VF pool to an instance, damages ``[smartnic] state_file``,
restarts the agent and then makes VF 1 unreadable (the scan skips it). Sent as scanned, that
report would make Cyborg's conductor delete the pool's newest handle row, VF 3's, and the
bound ARQ would answer 404 (``test_driver_handle_order.py``). Without a usable state the
driver re-reads Placement first: the pool has an allocation and no longer matches the scan,
so its PF is sent as a stub (left untouched) until the instance goes; then the unused pool
is rebuilt and the host converges. Before this, an unusable file was silently ignored (the
ARQ lost its VF) and ``Infinity`` or deeply nested JSON stopped the agent at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.statefile import StateFileInUse
from tests.functional.harness import InProcessCloud
from tests.functional.test_driver_inuse import (
    GROUP,
    PF,
    RC,
    Bound,
    address,
    boot,
    delete_instance,
    only_last_vf_in_use,
    pool_name,
)


@pytest.fixture
def bound(make_inproc: Callable[..., InProcessCloud]) -> tuple[InProcessCloud, SysfsTree, Bound]:
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens1f0"})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=4,
        vf_driver="vfio-pci", eswitch="switchdev"))
    inproc.run_agent_cycle()
    inproc.create_device_profile("physnet1", [GROUP])
    return inproc, tree, only_last_vf_in_use(inproc, tree)


def state_file(inproc: InProcessCloud) -> Path:
    return inproc.workdir / "smartnic-state.json"


def valid_state(inproc: InProcessCloud) -> dict[str, object]:
    data: dict[str, object] = json.loads(state_file(inproc).read_text())
    return data


def _infinity(inproc: InProcessCloud) -> None:
    text = json.dumps(valid_state(inproc)).replace('"num_accelerators": 4',
                                                  '"num_accelerators": Infinity')
    assert "Infinity" in text
    state_file(inproc).write_text(text)


def _nested(inproc: InProcessCloud) -> None:
    state_file(inproc).write_text('{"version": 2, "report": ' + "[" * 200_000 + "]" * 200_000
                                 + ', "ledger": {}}')


def _wrong_types(inproc: InProcessCloud) -> None:
    data = valid_state(inproc)
    data["report"][0]["deployable_list"][0]["num_accelerators"] = "4"  # type: ignore[index]
    data["ledger"] = list(data["ledger"])  # type: ignore[call-overload]
    state_file(inproc).write_text(json.dumps(data))


def _bad_json(inproc: InProcessCloud) -> None:
    state_file(inproc).write_text(state_file(inproc).read_text()[:-40])


def _directory(inproc: InProcessCloud) -> None:
    state_file(inproc).unlink()
    state_file(inproc).mkdir()


def _other_host(inproc: InProcessCloud) -> None:
    """A well-formed file of another host (a shared or copied state directory)."""
    text = state_file(inproc).read_text().replace(inproc.hostname, "compute2.example.org")
    assert "compute2.example.org" in text
    state_file(inproc).write_text(text)


def _empty_report(inproc: InProcessCloud) -> None:
    """Well-formed but stale: says nothing was reported (e.g. copied from a fresh host)."""
    state_file(inproc).write_text(json.dumps({"version": 2, "report": [], "ledger": {}}))


def _missing(inproc: InProcessCloud) -> None:
    state_file(inproc).unlink()


CORRUPTIONS: dict[str, tuple[Callable[[InProcessCloud], None], str]] = {
    "bad-json": (_bad_json, "not JSON"),
    "infinity": (_infinity, "Infinity is not a number JSON allows"),
    "deeply-nested": (_nested, "JSON nested too deeply"),
    "wrong-types": (_wrong_types, "is not of type"),
    "directory": (_directory, "not a regular file"),
    "other-host": (_other_host, "written for host 'compute2.example.org'"),
    "missing": (_missing, "does not exist yet"),
}


def _assert_bound_survives_and_host_converges(inproc: InProcessCloud, tree: SysfsTree,
                                              last: Bound) -> None:
    vf1 = tree.vfs(PF)[1]
    tree.set_attr(vf1, "device", "junk\n")  # VF 1 is skipped by the scan from now on
    inproc.run_agent_cycle()
    (driver,) = inproc.agent._rt.acc_drivers
    assert driver.stubs == (PF,)
    arq = inproc.get_arq(last.arq)
    assert arq["state"] == "Bound" and arq["attach_handle_info"] == last.attach_info
    in_use = [ah for ah in inproc.attach_handles() if ah["in_use"]]
    assert [address(json.loads(ah["attach_info"])) for ah in in_use] == [
        address(last.attach_info)]
    inproc.run_agent_cycle()  # still in use: still untouched
    assert inproc.get_arq(last.arq)["attach_handle_info"] == last.attach_info

    # The instance goes: the unused pool is rebuilt and the host converges.
    delete_instance(inproc, last)
    inproc.run_agent_cycle()
    assert driver.stubs == () and driver.rebuilds == (pool_name(inproc),)
    inproc.run_agent_cycle()
    handles = sorted(address(json.loads(ah["attach_info"])) for ah in inproc.attach_handles())
    assert handles == sorted(a for i, a in tree.vfs(PF).items() if i != 1)
    view = inproc.provider_view()
    assert list(view) == [pool_name(inproc)]
    assert view[pool_name(inproc)]["inventories"][RC]["total"] == 3


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_an_unusable_state_file_never_costs_a_bound_vf_its_handle(
        bound: tuple[InProcessCloud, SysfsTree, Bound], corruption: str,
        caplog: pytest.LogCaptureFixture) -> None:
    inproc, tree, last = bound
    damage, reason = CORRUPTIONS[corruption]
    damage(inproc)
    caplog.set_level(logging.INFO, logger="cyborg_smartnic")
    inproc.restart_agent()  # the file is read when cyborg-agent loads the driver
    lines = [r.getMessage() for r in caplog.records if "state file" in r.getMessage()]
    assert len(lines) == 1 and reason in lines[0], lines
    _assert_bound_survives_and_host_converges(inproc, tree, last)


# CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: what lets root read a file whatever its mode.
_DAC_CAPS = (1 << 1) | (1 << 2)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@contextmanager
def without_dac_override() -> Iterator[None]:
    """This thread reads files as an ordinary user would (as cyborg-agent runs), by dropping
    the two capabilities from its effective set; they are put back afterwards."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    assert libc.capget(ctypes.byref(header), data) == 0
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_CAPS
    assert libc.capset(ctypes.byref(header), data) == 0, os.strerror(ctypes.get_errno())
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0


def test_an_unreadable_state_file_never_costs_a_bound_vf_its_handle(
        bound: tuple[InProcessCloud, SysfsTree, Bound], caplog: pytest.LogCaptureFixture) -> None:
    inproc, tree, last = bound
    state_file(inproc).chmod(0o000)
    caplog.set_level(logging.INFO, logger="cyborg_smartnic")
    with without_dac_override():
        with pytest.raises(PermissionError):
            state_file(inproc).read_bytes()
        inproc.restart_agent()
    lines = [r.getMessage() for r in caplog.records if "state file" in r.getMessage()]
    assert len(lines) == 1 and "Permission denied" in lines[0], lines
    _assert_bound_survives_and_host_converges(inproc, tree, last)


def test_without_a_state_file_a_restarted_agent_rereads_placement(
        make_inproc: Callable[..., InProcessCloud]) -> None:
    """Memory only (state_file empty): a physnet renamed under a running instance with an
    agent restart; the new agent re-reads Placement and leaves the in-use pool alone."""
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens1f0",
                                 "state_file": ""})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(PF, PfOptions(
        vendor="15b3", device="101d", driver="mlx5_core", netdev="ens1f0", total_vfs=8, num_vfs=2,
        vf_driver="vfio-pci", eswitch="switchdev"))
    inproc.run_agent_cycle()
    inproc.create_device_profile("physnet1", [GROUP])
    last = boot(inproc)
    inproc.restart_agent(smartnic={"physical_device_mappings": "uplink:ens1f0",
                                  "state_file": ""})
    inproc.run_agent_cycle()
    assert inproc.get_arq(last.arq)["attach_handle_info"] == last.attach_info
    assert [ah["in_use"] for ah in inproc.attach_handles()].count(True) == 1
    delete_instance(inproc, last)
    inproc.run_agent_cycle()
    inproc.run_agent_cycle()
    physnets = {json.loads(ah["attach_info"])["physical_network"]
                for ah in inproc.attach_handles()}
    assert physnets == {"uplink"}
    assert "CUSTOM_PHYSNET_UPLINK" in inproc.provider_view()[pool_name(inproc)]["traits"]


def test_a_second_agent_on_the_same_state_file_refuses_to_start(
        bound: tuple[InProcessCloud, SysfsTree, Bound]) -> None:
    """Two cyborg-agents (two processes) with one state file would each take the other's
    report for what Cyborg holds. The second one stops at start with one line."""
    inproc, _tree, last = bound
    program = (
        "import sys\n"
        "import cyborg.cmd\n"
        "from cyborg.common import service\n"
        "from cyborg_smartnic.driver import SmartNicDriver\n"
        "service.prepare_service(['cyborg-agent', '--config-file', sys.argv[1]])\n"
        "try:\n"
        "    SmartNicDriver()\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "    sys.exit(1)\n")
    second = subprocess.run([sys.executable, "-c", program, str(inproc.config_file)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 1, second.stdout + second.stderr
    assert second.stdout.startswith(StateFileInUse.__name__)
    assert f"{state_file(inproc)} is in use by another cyborg-agent" in second.stdout
    # the first agent goes on as before
    inproc.run_agent_cycle()
    assert inproc.get_arq(last.arq)["attach_handle_info"] == last.attach_info
    # and once it stopped, an agent may take the file over
    inproc.stop_agent()
    again = subprocess.run([sys.executable, "-c", program, str(inproc.config_file)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
