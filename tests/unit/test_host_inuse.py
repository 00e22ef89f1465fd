"""In-use detection: vfio holders in /proc, enslaved VF netdevs, Cyborg-bound ARQs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import inuse
from tests.fixtures.kernel import KernelEmulator
from tests.fixtures.sysfs import build_scenario

PF = "0000:18:00.0"


@pytest.fixture
def kernel(tmp_path: Path) -> KernelEmulator:
    return KernelEmulator(build_scenario(tmp_path, "x710_legacy"))


def test_nothing_in_use_on_a_quiet_host(kernel: KernelEmulator) -> None:
    root = str(kernel.tree.root)
    found = inuse.detect(root, scan(root))
    assert found.users == () and found.notes == ()


def test_a_process_holding_the_vfio_group(kernel: KernelEmulator) -> None:
    vf = kernel.tree.vfs(PF)[2]
    group = kernel.iommu_group(vf)
    kernel.hold_vfio(777, group, comm="qemu-kvm")
    kernel.hold_vfio(778, 9999)  # some other group: not ours
    root = str(kernel.tree.root)
    found = inuse.detect(root, scan(root))
    assert found.users == (inuse.VfUser(vf, f"/dev/vfio/{group} is held open by pid 777 "
                                            f"(qemu-kvm)"),)
    assert found.reason_for(vf) is not None and found.reason_for(kernel.tree.vfs(PF)[0]) is None


def test_a_process_holding_the_vfio_cdev(kernel: KernelEmulator) -> None:
    vf = kernel.tree.vfs(PF)[1]
    (kernel.tree.device_path(vf) / "vfio-dev" / "vfio3").mkdir(parents=True)
    proc = kernel.tree.root / "proc" / "900"
    (proc / "fd").mkdir(parents=True)
    (proc / "comm").write_text("dpdk-testpmd\n")
    (proc / "fd" / "5").symlink_to("/dev/vfio/devices/vfio3")
    root = str(kernel.tree.root)
    assert inuse.detect(root, scan(root)).reason_for(vf) == (
        "/dev/vfio/devices/vfio3 is held open by pid 900 (dpdk-testpmd)")


def test_an_enslaved_vf_netdev(kernel: KernelEmulator) -> None:
    kernel.enslave("ens3f0v1", "bond0")
    root = str(kernel.tree.root)
    found = inuse.detect(root, scan(root))
    assert found.users == (inuse.VfUser(kernel.tree.vfs(PF)[1],
                                        "its netdev ens3f0v1 is enslaved to bond0"),)


def test_unreadable_processes_are_noted(kernel: KernelEmulator) -> None:
    """EACCES (not root) or anything odd: counted and said, never silently ignored."""
    proc = kernel.tree.root / "proc"
    (proc / "55").mkdir()
    (proc / "55" / "fd").write_text("")  # listdir fails with ENOTDIR, as EACCES would
    (proc / "56").mkdir()  # exited meanwhile: no fd directory left, not a problem
    holders, notes = inuse.vfio_holders(str(kernel.tree.root))
    assert holders == {}
    assert notes == ["could not read the open files of 1 process(es) (run as root): a VF "
                     "they hold would not be seen as in use"]


def test_missing_proc_is_a_note_not_a_guess(tmp_path: Path) -> None:
    holders, notes = inuse.vfio_holders(str(tmp_path))
    assert holders == {} and notes[0].startswith(f"cannot list {tmp_path}/proc")


@dataclass
class Arq:
    uuid: str
    hostname: str | None
    state: str
    attach_handle_type: str | None
    attach_handle_info: dict[str, str] | None
    instance_uuid: str | None = "inst-1"


def test_cyborg_bound_arqs_on_this_host(caplog: pytest.LogCaptureFixture) -> None:
    info = {"domain": "0000", "bus": "18", "device": "01", "function": "2",
            "physical_network": "physnet5"}
    arqs = [
        Arq("a1", "node1", "Bound", "PCI", info),
        Arq("a2", "node2", "Bound", "PCI", info),  # another host
        Arq("a3", "node1", "Initial", None, None),  # not bound yet
        Arq("a4", "node1", "Bound", "PCI", {"bus": "zz"}),  # unreadable: logged, blind
    ]
    with caplog.at_level(logging.WARNING):
        found = inuse.cyborg_bound(arqs, "node1")
    assert found.users == (inuse.VfUser("0000:18:01.2", "Cyborg accelerator request a1 is "
                                                        "bound to it (instance inst-1)"),)
    assert [r.getMessage() for r in caplog.records] == [
        "accelerator request a4 has an unreadable attach handle {'bus': 'zz'}"]
    # a4 could be bound to any VF of this host: destroying steps must be refused
    assert found.blind == ("Cyborg accelerator request(s) a4 bound on node1 have an "
                           "unreadable attach handle")


def test_readable_bound_arqs_do_not_blind_detection() -> None:
    info = {"domain": "0000", "bus": "18", "device": "01", "function": "2"}
    found = inuse.cyborg_bound([Arq("a1", "node1", "Bound", "PCI", info),
                                Arq("a4", "node2", "Bound", "PCI", {"bus": "zz"})], "node1")
    assert found.blind is None and found.addresses() == ("0000:18:01.2",)


def test_an_unreachable_cyborg_makes_detection_blind(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  down:\n    auth_type: admin_token\n    auth:\n"
                      "      token: admin\n      endpoint: http://127.0.0.1:9/\n"
                      "    accelerator_endpoint_override: http://127.0.0.1:9/\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    found = inuse.cyborg_in_use("down", "node1")
    assert found.users == ()
    assert found.blind is not None and found.blind.startswith("cannot ask Cyborg (down) ")


def test_cyborg_check_is_skipped_without_a_cloud() -> None:
    found = inuse.cyborg_in_use(None, "node1")
    assert found.users == ()
    assert found.notes == ("Cyborg accelerator requests not checked (no --os-cloud / "
                           "OS_CLOUD)",)


def test_unreadable_processes_make_detection_blind(kernel: KernelEmulator) -> None:
    (kernel.tree.root / "proc" / "55").mkdir()
    (kernel.tree.root / "proc" / "55" / "fd").write_text("")
    root = str(kernel.tree.root)
    found = inuse.detect(root, scan(root))
    assert found.blind is not None and found.blind.startswith("could not read the open files")
    assert inuse.InUse().merged(found).blind == found.blind


def test_plan_refuses_to_destroy_vfs_when_a_bound_handle_is_unreadable(tmp_path: Path) -> None:
    """A bound ARQ whose VF we cannot name may hold any VF: no VF may be destroyed."""
    from cyborg_smartnic.discovery.scan import ScanOptions, scan
    from cyborg_smartnic.host.config import load_host_config
    from cyborg_smartnic.host.plan import plan
    from tests.fixtures.sysfs import build_scenario

    build_scenario(tmp_path, "x710_legacy")
    host = scan(tmp_path, ScanOptions(hostname="node1"))
    found = inuse.cyborg_bound([Arq("a4", "node1", "Bound", "PCI", {"bus": "zz"})], "node1")
    config = tmp_path / "host.yaml"
    config.write_text('devices:\n  - address: "0000:18:00.0"\n    vf_count: 0\n')
    result = plan(load_host_config(config), host, found)
    destroying = [step for step in result.steps if step.destroys_vfs]
    assert destroying, "the plan should want to remove the PF's VFs"
    assert all(step.refused and "unreadable attach handle" in step.refused
               for step in destroying)
    assert result.refused
