"""In-use detection: every kind of VF user, blind views of /proc, Cyborg-bound ARQs."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.procfs import ProcReader
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import inuse
from cyborg_smartnic.host.config import load_host_config
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.host.steps import Step
from cyborg_smartnic.hostgen import SysfsTree, build_scenario, cx6dx_switchdev, x710_legacy
from cyborg_smartnic.hostgen.kernel import KernelEmulator

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
    (proc / "55" / "comm").write_text("qemu-kvm\n")
    devices = inuse.open_devices(ProcReader(kernel.tree.root))
    assert devices.holders == {}
    assert devices.unreadable == (inuse.Holder(55, "qemu-kvm", "/proc/55/fd"),)
    root = str(kernel.tree.root)
    assert inuse.detect(root, scan(root)).notes == (
        "could not read the open files of 1 process(es) (pid 55 (qemu-kvm); not root, or "
        "denied even to root by ptrace rules or a security module): a VF they hold would not "
        "be seen as in use",)


def test_missing_proc_is_a_note_not_a_guess(tmp_path: Path) -> None:
    build_scenario(tmp_path, "x710_legacy")
    shutil.rmtree(tmp_path / "proc")
    found = inuse.detect(str(tmp_path), scan(tmp_path))
    assert found.notes == ("cannot list /proc (not there): processes holding VFs open were "
                           "not checked",)
    assert found.blind == found.notes[0]


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
    from cyborg_smartnic.hostgen import build_scenario

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


# ------------------------------------------------------------------ every kind of VF user
# Each case builds one user of one VF on a host with a ConnectX-6 Dx (switchdev, VFs 0-1 on
# vfio-pci, 2-3 on mlx5_core) and an X710 (four iavf VFs), and names the witness detection
# must give. Every plan step that destroys or rebinds that VF must then be refused with it.
MLX_PF = "0000:3b:00.0"
X710_PF = "0000:18:00.0"


@dataclass(frozen=True)
class UserCase:
    name: str
    pf: str
    index: int
    rebind_to: str  # a driver other than the VF's, so host.yaml asks for a rebind
    make: Callable[[SysfsTree, str], str]  # builds the user of the VF, returns the witness


def _noiommu(tree: SysfsTree, vf: str) -> str:
    node = f"/dev/vfio/noiommu-{tree.iommu_group_of(vf)}"
    tree.add_process(4100, "dpdk-testpmd", [node])
    return f"{node} is held open by pid 4100 (dpdk-testpmd)"


def _deleted_group_node(tree: SysfsTree, vf: str) -> str:
    node = f"/dev/vfio/{tree.iommu_group_of(vf)} (deleted)"
    tree.add_process(4101, "qemu-kvm", ["/dev/kvm", node])
    return f"{node} is held open by pid 4101 (qemu-kvm)"


def _uio(driver: str) -> Callable[[SysfsTree, str], str]:
    def make(tree: SysfsTree, vf: str) -> str:
        node = tree.add_uio(vf, 3, driver)
        tree.add_process(4102, "dpdk-l3fwd", [node, "/dev/hugepages/rtemap_0"], threads=3)
        return f"{node} is held open by pid 4102 (dpdk-l3fwd)"
    return make


def _uverbs(tree: SysfsTree, vf: str) -> str:
    node = tree.add_uverbs(vf, 2)
    tree.add_process(4103, "dpdk-testpmd", ["/dev/infiniband/rdma_cm", node])
    return f"{node} is held open by pid 4103 (dpdk-testpmd)"


def _vfio_cdev_deleted(tree: SysfsTree, vf: str) -> str:
    node = tree.add_vfio_cdev(vf, 7)
    tree.add_process(4104, "qemu-kvm", ["/dev/iommu", f"{node} (deleted)"])
    return f"{node} (deleted) is held open by pid 4104 (qemu-kvm)"


def _upper(upper: str, devtype: str | None) -> Callable[[SysfsTree, str], str]:
    def make(tree: SysfsTree, vf: str) -> str:
        ifname = _netdev_of(tree, vf)
        tree.add_upper(ifname, upper.format(ifname=ifname), devtype)
        kind = f" ({devtype})" if devtype else ""
        return f"its netdev {ifname} has upper device {upper.format(ifname=ifname)}{kind}"
    return make


def _other_netns(tree: SysfsTree, vf: str) -> str:
    tree.move_netdev_to_namespace(_netdev_of(tree, vf))
    return "has a netdev in another network namespace"


def _no_netdev_here(tree: SysfsTree, vf: str) -> str:
    ifname = _netdev_of(tree, vf)
    tree.remove_netdev(ifname)  # and its "net" directory: nothing left to see from here
    return "shows no netdev in this network namespace"


def _malformed(tree: SysfsTree, vf: str) -> str:
    tree.set_attr(vf, "device", "0xZZZZ\n")
    return "discovery skipped it"


def _netdev_of(tree: SysfsTree, vf: str) -> str:
    return sorted(p.name for p in (tree.device_path(vf) / "net").iterdir())[0]


USER_CASES = [
    UserCase("vfio-noiommu", MLX_PF, 0, "mlx5_core", _noiommu),
    UserCase("vfio-group-deleted", MLX_PF, 1, "mlx5_core", _deleted_group_node),
    UserCase("vfio-cdev-deleted", MLX_PF, 0, "mlx5_core", _vfio_cdev_deleted),
    UserCase("uio_pci_generic", X710_PF, 1, "vfio-pci", _uio("uio_pci_generic")),
    UserCase("igb_uio", X710_PF, 2, "vfio-pci", _uio("igb_uio")),
    UserCase("mlx5-bifurcated-uverbs", MLX_PF, 2, "vfio-pci", _uverbs),
    UserCase("macvtap-upper", X710_PF, 3, "vfio-pci", _upper("macvtap0", None)),
    UserCase("vlan-upper", X710_PF, 0, "vfio-pci", _upper("{ifname}.100", "vlan")),
    UserCase("netdev-in-other-netns", MLX_PF, 3, "vfio-pci", _other_netns),
    UserCase("netdev-driver-without-netdev", X710_PF, 2, "vfio-pci", _no_netdev_here),
    UserCase("skipped-by-discovery", X710_PF, 1, "vfio-pci", _malformed),
]


def _two_nic_host(root: Path) -> SysfsTree:
    tree = SysfsTree(root)
    cx6dx_switchdev(tree)
    x710_legacy(tree)
    return tree


def _plan_for(root: Path, text: str, found: inuse.InUse) -> list[Step]:
    config = root / "host.yaml"
    config.write_text(text)
    return list(plan(load_host_config(config), scan(root), found).steps)


@pytest.mark.parametrize("case", USER_CASES, ids=lambda c: c.name)
def test_every_kind_of_user_is_a_witness(tmp_path: Path, case: UserCase) -> None:
    tree = _two_nic_host(tmp_path)
    vf = tree.vfs(case.pf)[case.index]
    witness = case.make(tree, vf)
    root = str(tmp_path)
    found = inuse.detect(root, scan(root))
    assert found.blind is None
    assert witness in (found.reason_for(vf) or ""), found.users
    others = [u for u in found.users if u.address != vf]
    assert others == [], "only the VF with a user is in use"


@pytest.mark.parametrize("change", ["destroy", "rebind", "eswitch"])
@pytest.mark.parametrize("case", USER_CASES, ids=lambda c: c.name)
def test_every_step_touching_a_used_vf_is_refused(tmp_path: Path, case: UserCase,
                                                 change: str) -> None:
    tree = _two_nic_host(tmp_path)
    vf = tree.vfs(case.pf)[case.index]
    witness = case.make(tree, vf)
    root = str(tmp_path)
    found = inuse.detect(root, scan(root))
    entry = {"destroy": "vf_count: 0",
             "rebind": f'vf_drivers:\n      "{case.index}": {case.rebind_to}',
             "eswitch": "eswitch_mode: " + ("legacy" if case.pf == MLX_PF else "switchdev"),
             }[change]
    steps = _plan_for(tmp_path, f'devices:\n  - address: "{case.pf}"\n    {entry}\n', found)
    touching = [step for step in steps if vf in step.destroys_vfs]
    assert touching, f"the plan should destroy or rebind {vf}: {steps}"
    for step in touching:
        assert step.refused and witness in step.refused, step
    if change == "rebind":  # the rebind names the VF it disturbs, even one the scan skipped
        assert not [step for step in steps if step.vf_index == case.index
                    and step.pf == case.pf and vf not in step.destroys_vfs]


# ------------------------------------------------------------------ blind views of /proc
# A view of /proc that may miss processes must make detection blind, so every destroying
# step is refused: finding no holder proves nothing when holders can be hidden from us.
@dataclass(frozen=True)
class BlindCase:
    name: str
    make: Callable[[SysfsTree], None]
    reason: str  # what the blind reason must say


def _hidepid(value: str) -> Callable[[SysfsTree], None]:
    def make(tree: SysfsTree) -> None:
        tree.set_proc_mount(f"rw,hidepid={value}")
        tree.set_credentials(uid=1000, gids=(1000, 27))
    return make


def _private_pid_namespace(tree: SysfsTree) -> None:
    # root inside a container: its own /proc shows only its own processes, pid 1 included
    tree.set_pid_namespace("pid:[4026532571]")


def _fewer_threads_than_the_kernel_counts(tree: SysfsTree) -> None:
    tree.set_kernel_threads(900)


def _no_namespace_link(tree: SysfsTree) -> None:
    (tree.root / "proc/self/ns/pid").unlink()


def _no_mountinfo(tree: SysfsTree) -> None:
    (tree.root / "proc/self/mountinfo").unlink()


def _no_loadavg(tree: SysfsTree) -> None:
    (tree.root / "proc/loadavg").unlink()


def _fifo_loadavg(tree: SysfsTree) -> None:
    (tree.root / "proc/loadavg").unlink()
    os.mkfifo(tree.root / "proc/loadavg")  # reading it would block forever


def _vfio_open_nobody_holds(tree: SysfsTree) -> None:
    tree.set_module_refcnt("vfio_pci", 1)  # a device is open, no visible process holds one


def _more_uio_opens_than_holders(tree: SysfsTree) -> None:
    node = tree.add_uio(tree.vfs(X710_PF)[1], 3)
    tree.add_process(4300, "dpdk-l3fwd", [node])
    tree.set_module_refcnt("uio_pci_generic", 2)  # a second open of a uio node is hidden


BLIND_CASES = [
    BlindCase("hidepid=2-not-root", _hidepid("2"), "/proc is mounted with hidepid=2"),
    BlindCase("hidepid=invisible-not-root", _hidepid("invisible"),
              "/proc is mounted with hidepid=invisible"),
    BlindCase("hidepid=1-not-root", _hidepid("1"), "/proc is mounted with hidepid=1"),
    BlindCase("hidepid=ptraceable-not-root", _hidepid("ptraceable"),
              "/proc is mounted with hidepid=ptraceable"),
    BlindCase("private-pid-namespace", _private_pid_namespace,
              "runs in PID namespace pid:[4026532571], not the host's"),
    BlindCase("threads-missing-from-proc", _fewer_threads_than_the_kernel_counts,
              "of the 900 threads the kernel counts"),
    BlindCase("pid-namespace-unknown", _no_namespace_link, "cannot read /proc/self/ns/pid"),
    BlindCase("mount-options-unknown", _no_mountinfo, "cannot read /proc/self/mountinfo"),
    BlindCase("thread-count-unknown", _no_loadavg, "cannot read /proc/loadavg"),
    BlindCase("vfio-open-count-above-holders", _vfio_open_nobody_holds,
              "the kernel counts 1 open vfio-pci device(s) (/sys/module/vfio_pci/refcnt) but "
              "processes visible here hold 0"),
    BlindCase("uio-open-count-above-holders", _more_uio_opens_than_holders,
              "the kernel counts 2 open uio_pci_generic device(s) (/sys/module/uio_pci_generic/"
              "refcnt) but processes visible here hold 1"),
    BlindCase("fifo-in-a-tree", _fifo_loadavg,
              "cannot read /proc/loadavg (not a regular file)"),
]


@pytest.mark.parametrize("case", BLIND_CASES, ids=lambda c: c.name)
def test_a_view_that_may_miss_processes_is_blind(tmp_path: Path, case: BlindCase) -> None:
    tree = _two_nic_host(tmp_path)
    case.make(tree)
    root = str(tmp_path)
    found = inuse.detect(root, scan(root))
    assert found.blind is not None and case.reason in found.blind, found.blind
    steps = _plan_for(tmp_path, f'devices:\n  - address: "{X710_PF}"\n    vf_count: 0\n', found)
    destroying = [step for step in steps if step.destroys_vfs]
    assert destroying
    for step in destroying:
        assert step.refused and case.reason in step.refused, step


@pytest.mark.parametrize("mount, credentials", [
    ("rw,hidepid=2", {"uid": 0}),  # root (CAP_SYS_PTRACE) sees every process
    ("rw,hidepid=invisible,gid=27", {"uid": 1000, "gids": (1000, 27)}),  # the exempt group
    ("rw,hidepid=0", {"uid": 1000}),
    ("rw,hidepid=off", {"uid": 1000}),
])
def test_views_that_see_every_process_are_not_blind(tmp_path: Path, mount: str,
                                                    credentials: dict[str, object]) -> None:
    tree = _two_nic_host(tmp_path)
    tree.set_proc_mount(mount)
    tree.set_credentials(**credentials)  # type: ignore[arg-type]
    root = str(tmp_path)
    assert inuse.detect(root, scan(root)).blind is None


def test_unreadable_fd_links_make_detection_blind(tmp_path: Path) -> None:
    """Root may list a process's fd directory yet be denied each link (EACCES from
    ptrace_may_access): that process's devices are unknown, not absent."""
    tree = _two_nic_host(tmp_path)
    vf = tree.vfs(MLX_PF)[0]
    tree.add_process(4200, "qemu-kvm", [f"/dev/vfio/{tree.iommu_group_of(vf)}"])

    def deny(op: str, path: str) -> None:
        if op == "readlink" and "/proc/4200/fd/" in path:
            raise OSError(errno.EACCES, "Permission denied")

    root = str(tmp_path)
    found = inuse.detect(root, scan(root), proc=ProcReader(root, hook=deny))
    assert found.reason_for(vf) is None
    assert found.blind is not None and found.blind.startswith(
        "could not read the open files of 1 process(es)")


def test_kernel_open_counts_matched_by_visible_holders_are_not_blind(tmp_path: Path) -> None:
    tree = _two_nic_host(tmp_path)
    vfio_vf = tree.vfs(MLX_PF)[0]  # on vfio-pci
    tree.add_process(4400, "qemu-kvm", [f"/dev/vfio/{tree.iommu_group_of(vfio_vf)}"])
    cdev = tree.add_vfio_cdev(tree.vfs(MLX_PF)[1], 4)
    tree.add_process(4401, "qemu-kvm", [cdev])
    uio = tree.add_uio(tree.vfs(X710_PF)[1], 3)
    tree.add_process(4402, "dpdk-l3fwd", [uio, uio])  # two opens of the node
    tree.set_module_refcnt("vfio_pci", 2)
    tree.set_module_refcnt("uio_pci_generic", 2)
    tree.set_module_refcnt("igb_uio", 0)
    root = str(tmp_path)
    found = inuse.detect(root, scan(root))
    assert found.blind is None
    assert found.addresses() == tuple(sorted([vfio_vf, tree.vfs(MLX_PF)[1],
                                              tree.vfs(X710_PF)[1]]))
