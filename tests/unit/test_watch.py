"""``discovery.watch``: the diff of two discover exports (table-driven), event relevance, and
the debounced loop on a generated host mutated between synthetic events (fake clock)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic.discovery.export import host_to_dict
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.watch import (
    DeviceEvent,
    WatchLimits,
    change_line,
    diff_hosts,
    is_empty,
    watch,
)
from cyborg_smartnic.hostgen import SysfsTree, build_scenario, scratch_dir

PF = "0000:3b:00.0"


def _vf(address: str, index: int, driver: str = "mlx5_core",
        netdev: str | None = "ens1f0v0") -> dict[str, Any]:
    return {"address": address, "index": index, "device_id": "101e", "driver": driver,
            "netdev": netdev, "iommu_group": 40 + index, "numa_node": 0,
            "link": {"mac": "02:00:00:00:00:0" + str(index), "operstate": "up"}}


BASE: dict[str, Any] = {
    "hostname": "node-1",
    "physical_functions": [{
        "address": PF, "vendor_id": "15b3", "device_id": "101d", "model": "ConnectX-6 Dx",
        "driver": "mlx5_core", "numa_node": 0, "netdev": "ens1f0", "eswitch_mode": "legacy",
        "firmware": {"version": "22.36.1010", "mode": None}, "physnet": "physnet1",
        "sriov": {"total_vfs": 8, "num_vfs": 2}, "representors": [],
        "virtual_functions": [_vf("0000:3b:00.2", 0, "vfio-pci", None),
                              _vf("0000:3b:00.3", 1, netdev="ens1f0v1")],
    }],
    "skipped": [{"address": "0000:00:03.0", "reason": "not catalogued"}],
    "iommu_enabled": True,
    "kernel_cmdline": "ro intel_iommu=on",
    "hugepages": [{"numa_node": None, "size_kb": 2048, "total": 512, "free": 500, "surplus": 0},
                  {"numa_node": 0, "size_kb": 2048, "total": 512, "free": 500, "surplus": 0}],
}


def _edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    host = copy.deepcopy(BASE)
    change(host)
    return host


def _pf(host: dict[str, Any]) -> dict[str, Any]:
    return host["physical_functions"][0]  # type: ignore[no-any-return]


def _add_vf(host: dict[str, Any]) -> None:
    _pf(host)["virtual_functions"].append(_vf("0000:3b:00.4", 2, netdev="ens1f0v2"))
    _pf(host)["sriov"]["num_vfs"] = 3


def _drop_vf(host: dict[str, Any]) -> None:
    _pf(host)["virtual_functions"].pop()
    _pf(host)["sriov"]["num_vfs"] = 1


def _rebind(host: dict[str, Any]) -> None:
    vf = _pf(host)["virtual_functions"][1]
    vf["driver"], vf["netdev"] = "vfio-pci", None


def _firmware(host: dict[str, Any]) -> None:
    _pf(host)["firmware"]["version"] = "22.39.1002"


def _pf_gone(host: dict[str, Any]) -> None:
    host["physical_functions"] = []


def _vf_skipped(host: dict[str, Any]) -> None:
    _pf(host)["virtual_functions"].pop()
    host["skipped"].append({"address": "0000:3b:00.3", "reason": "VF 1 disappeared"})


def _reason_changes(host: dict[str, Any]) -> None:
    host["skipped"][0]["reason"] = "selected but not SR-IOV"


def _hugepages(host: dict[str, Any]) -> None:
    host["hugepages"][1]["free"] = 498


def _cmdline_and_switchdev(host: dict[str, Any]) -> None:
    host["kernel_cmdline"] = "ro intel_iommu=on iommu=pt"
    _pf(host)["eswitch_mode"] = "switchdev"
    _pf(host)["representors"] = ["ens1f0_0", "ens1f0_1"]


def _change(address: str | None, name: str, old: Any, new: Any) -> dict[str, Any]:
    return {"address": address, "field": name, "old": old, "new": new}


DIFF_CASES: list[tuple[str, Callable[[dict[str, Any]], None], dict[str, Any]]] = [
    ("unchanged", lambda host: None, {"added": [], "removed": [], "changed": []}),
    ("vf added", _add_vf, {"added": ["0000:3b:00.4"], "removed": [],
                           "changed": [_change(PF, "sriov.num_vfs", 2, 3)]}),
    ("vf removed", _drop_vf, {"added": [], "removed": ["0000:3b:00.3"],
                              "changed": [_change(PF, "sriov.num_vfs", 2, 1)]}),
    ("vf rebound to vfio-pci", _rebind, {
        "added": [], "removed": [],
        "changed": [_change("0000:3b:00.3", "driver", "mlx5_core", "vfio-pci"),
                    _change("0000:3b:00.3", "netdev", "ens1f0v1", None)]}),
    ("nested field", _firmware, {
        "added": [], "removed": [],
        "changed": [_change(PF, "firmware.version", "22.36.1010", "22.39.1002")]}),
    ("pf and its vfs gone", _pf_gone, {
        "added": [], "removed": [PF, "0000:3b:00.2", "0000:3b:00.3"], "changed": []}),
    ("vf becomes skipped", _vf_skipped, {
        "added": [], "removed": ["0000:3b:00.3"],
        "changed": [_change("0000:3b:00.3", "skipped", None, "VF 1 disappeared")]}),
    ("skip reason changes", _reason_changes, {
        "added": [], "removed": [],
        "changed": [_change("0000:00:03.0", "skipped", "not catalogued",
                            "selected but not SR-IOV")]}),
    ("host-wide hugepages", _hugepages, {
        "added": [], "removed": [],
        "changed": [_change(None, "hugepages.node0.2048kB.free", 500, 498)]}),
    ("host-wide first, lists whole", _cmdline_and_switchdev, {
        "added": [], "removed": [],
        "changed": [_change(None, "kernel_cmdline", "ro intel_iommu=on",
                            "ro intel_iommu=on iommu=pt"),
                    _change(PF, "eswitch_mode", "legacy", "switchdev"),
                    _change(PF, "representors", [], ["ens1f0_0", "ens1f0_1"])]}),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in DIFF_CASES],
                         ids=[name for name, _, _ in DIFF_CASES])
def test_diff_hosts(change: Callable[[dict[str, Any]], None], expected: dict[str, Any]) -> None:
    new = _edit(change)
    assert diff_hosts(BASE, new) == expected
    assert is_empty(expected) == (new == BASE)


def test_diff_is_symmetric_for_added_and_removed() -> None:
    new = _edit(_add_vf)
    back = diff_hosts(new, BASE)
    assert back["removed"] == ["0000:3b:00.4"] and back["added"] == []
    assert back["changed"] == [_change(PF, "sriov.num_vfs", 3, 2)]


@pytest.mark.parametrize(("event", "relevant"), [
    (DeviceEvent("add", "pci", "0000:3b:00.6"), True),
    (DeviceEvent("remove", "pci", "0000:3b:00.6"), True),
    (DeviceEvent("bind", "pci", "0000:3b:00.6"), True),
    (DeviceEvent("unbind", "pci", "0000:3b:00.6"), True),
    (DeviceEvent("change", "pci", PF), True),
    (DeviceEvent("add", "net", "ens1f0v4"), True),
    (DeviceEvent("move", "net", "eth7", "ens1f0v4"), True),
    (DeviceEvent("remove", "net", "ens1f0v4"), True),
    (DeviceEvent("move", "pci", PF), False),
    (DeviceEvent("add", "usb", "1-1"), False),
    (DeviceEvent("online", "cpu", "cpu3"), False),
    (DeviceEvent("", "pci", PF), False),
])
def test_event_relevance(event: DeviceEvent, relevant: bool) -> None:
    assert event.relevant is relevant


def test_change_line_names_actions_and_devices() -> None:
    events = [DeviceEvent("move", "net", "eth7", "ens1f0v1"),
              DeviceEvent("change", "pci", PF), DeviceEvent("change", "pci", PF)]
    diff = diff_hosts(BASE, _edit(_rebind))
    assert change_line(events, diff) == {
        "event": "change,move",
        "devices": ["net/ens1f0v1", "net/eth7", f"pci/{PF}"],
        "diff": diff}


# ---------------------------------------------------------------------------- the loop
class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


@dataclass
class Step:
    at: float
    event: DeviceEvent | None  # None: a message the monitor filtered out
    mutate: Callable[[], None] | None = None


@dataclass
class ScriptedSource:
    """Delivers scripted events at their times on the fake clock (mutating the tree first);
    between them, waiting ``timeout`` just moves the clock."""

    clock: FakeClock
    steps: list[Step]
    waits: list[float | None] = field(default_factory=list)
    closed: bool = False

    def next_event(self, timeout: float | None) -> DeviceEvent | None:
        self.waits.append(timeout)
        if self.steps and (timeout is None or self.steps[0].at <= self.clock.t + timeout):
            step = self.steps.pop(0)
            self.clock.t = max(self.clock.t, step.at)
            if step.mutate is not None:
                step.mutate()
            return step.event
        if timeout is None:
            raise AssertionError("the loop would block forever")
        self.clock.t += timeout
        return None

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def tree() -> Iterator[SysfsTree]:
    with scratch_dir("watch-") as path:
        yield build_scenario(path, "cx6dx_switchdev")


class Rescanner:
    """Scans the tree like ``discover --watch`` does, noting when (fake time) it ran."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.root = root
        self.clock = clock
        self.times: list[float] = []

    def __call__(self) -> dict[str, Any]:
        self.times.append(round(self.clock.t, 6))
        return host_to_dict(scan(self.root, ScanOptions(hostname="node-1")))


def _pci(action: str, name: str) -> DeviceEvent:
    return DeviceEvent(action, "pci", name)


def _net(action: str, name: str) -> DeviceEvent:
    return DeviceEvent(action, "net", name)


def _rebind_vf2_to_vfio(tree: SysfsTree) -> None:
    vf = tree.vfs(PF)[2]
    tree.remove_netdev("ens1f0v2")
    tree.unbind(vf)
    tree.bind(vf, "vfio-pci")


def test_bursts_are_debounced_into_one_rescan_each(tree: SysfsTree) -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, [
        # sriov_numvfs 4 -> 6: two VFs, their netdevs and representors, a change on the PF
        Step(1.0, _pci("add", "0000:3b:00.6"), lambda: tree.set_num_vfs(PF, 6)),
        Step(1.05, _pci("add", "0000:3b:00.7")),
        Step(1.1, _net("add", "ens1f0v4")),
        Step(1.15, _net("add", "ens1f0v5")),
        Step(1.2, _net("add", "ens1f0_4")),
        Step(1.25, _net("add", "ens1f0_5")),
        Step(1.3, _pci("change", PF)),
        Step(1.8, None),  # filtered by the monitor: neither an event nor the end of the wait
        Step(2.0, DeviceEvent("add", "usb", "1-1")),  # irrelevant: does not extend the burst
        # VF 2 moves from mlx5_core to vfio-pci
        Step(5.0, _net("remove", "ens1f0v2"), lambda: _rebind_vf2_to_vfio(tree)),
        Step(5.01, _pci("unbind", "0000:3b:00.4")),
        Step(5.02, _pci("bind", "0000:3b:00.4")),
        # a change event that changes nothing discovery reports
        Step(8.0, _pci("change", PF)),
    ])
    rescan = Rescanner(tree.root, clock)
    lines: list[dict[str, Any]] = []
    emitted = watch(source, rescan, lines.append, WatchLimits(debounce=1.0, watch_for=12.0),
                    now=clock.now)
    assert emitted == len(lines) == 2
    assert rescan.times == [0.0, 2.3, 6.02, 9.0]  # start, then 1 s after each burst's end
    assert clock.t == pytest.approx(12.0)
    first, second = lines
    assert first["event"] == "add,change"
    assert first["devices"] == ["net/ens1f0_4", "net/ens1f0_5", "net/ens1f0v4", "net/ens1f0v5",
                                f"pci/{PF}", "pci/0000:3b:00.6", "pci/0000:3b:00.7"]
    assert first["diff"]["added"] == ["0000:3b:00.6", "0000:3b:00.7"]
    assert first["diff"]["removed"] == []
    assert first["diff"]["changed"] == [
        _change(PF, "representors", ["ens1f0_0", "ens1f0_1", "ens1f0_2", "ens1f0_3"],
                [f"ens1f0_{i}" for i in range(6)]),
        _change(PF, "sriov.num_vfs", 4, 6)]
    assert second["event"] == "bind,remove,unbind"
    assert second["devices"] == ["net/ens1f0v2", "pci/0000:3b:00.4"]
    changed = {c["field"]: (c["old"], c["new"]) for c in second["diff"]["changed"]}
    assert {c["address"] for c in second["diff"]["changed"]} == {"0000:3b:00.4"}
    assert changed["driver"] == ("mlx5_core", "vfio-pci")
    assert changed["netdev"] == ("ens1f0v2", None)
    assert changed["link.mac"][1] is None
    assert second["diff"]["added"] == second["diff"]["removed"] == []


def test_a_never_ending_burst_is_still_reported(tree: SysfsTree) -> None:
    clock = FakeClock()
    steps = [Step(1.0, _pci("add", "0000:3b:00.6"), lambda: tree.set_num_vfs(PF, 5))]
    steps += [Step(1.0 + 0.5 * n, _pci("change", PF)) for n in range(1, 200)]
    rescan = Rescanner(tree.root, clock)
    lines: list[dict[str, Any]] = []
    watch(ScriptedSource(clock, steps), rescan, lines.append,
          WatchLimits(debounce=1.0, max_delay=30.0, watch_for=40.0), now=clock.now)
    assert rescan.times == [0.0, 31.0, 40.0]
    assert len(lines) == 1 and lines[0]["diff"]["added"] == ["0000:3b:00.6"]


def test_max_changes_stops_after_that_many_lines(tree: SysfsTree) -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, [
        Step(1.0, _pci("remove", "0000:3b:00.5"), lambda: tree.set_num_vfs(PF, 3)),
        Step(4.0, _pci("add", "0000:3b:00.5"), lambda: tree.set_num_vfs(PF, 4)),
    ])
    rescan = Rescanner(tree.root, clock)
    lines: list[dict[str, Any]] = []
    assert watch(source, rescan, lines.append, WatchLimits(max_changes=1), now=clock.now) == 1
    assert lines[0]["event"] == "remove"
    assert lines[0]["diff"]["removed"] == ["0000:3b:00.5"]
    assert len(source.steps) == 1  # the second change was never waited for
    assert rescan.times == [0.0, 2.0]


def test_without_a_deadline_the_first_wait_blocks(tree: SysfsTree) -> None:
    clock = FakeClock()
    source = ScriptedSource(clock, [
        Step(3.0, _pci("unbind", "0000:3b:00.2"), lambda: tree.unbind(tree.vfs(PF)[0]))])
    lines: list[dict[str, Any]] = []
    watch(source, Rescanner(tree.root, clock), lines.append,
          WatchLimits(debounce=0.5, max_changes=1), now=clock.now)
    assert source.waits[0] is None  # nothing pending: wait for the kernel, no polling
    assert all(w is not None and 0 < w <= 0.5 for w in source.waits[1:])
    assert lines[0]["diff"]["changed"][0]["field"] == "driver"
