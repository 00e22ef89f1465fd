"""Named generated hosts: one per NIC model and mode, unrelated PCI noise, and the example
compute node that is bundled as ``cyborg_smartnic/data/example-host.tar.gz`` (``bundle``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cyborg_smartnic.hostgen import firmware
from cyborg_smartnic.hostgen.builder import FunctionIds, NetdevOptions, PfOptions, SysfsTree


def cx6dx_switchdev(tree: SysfsTree) -> None:
    """ConnectX-6 Dx dual port, both PFs in switchdev with representors; VFs 0-1 on vfio-pci.

    mlx5 offsets as on real cards: PF0's VF0 is 0000:3b:00.2, PF1's VF0 0000:3b:01.2."""
    for port in (0, 1):
        tree.add_pf(f"0000:3b:00.{port}", PfOptions(
            vendor="15b3", device="101d", driver="mlx5_core", netdev=f"ens1f{port}", numa_node=0,
            total_vfs=8, num_vfs=4, vf_drivers={0: "vfio-pci", 1: "vfio-pci"}, eswitch="switchdev",
            fw_version="22.36.1010", subsystem_device="0042", speed=100000,
            physnet=f"physnet{port + 1}", serial="MT2034X12345", vf_offset=2 if port == 0 else 9,
            product="ConnectX-6 Dx EN adapter card, 100GbE, Dual-port QSFP56"))


def bluefield2(tree: SysfsTree, mode: str = "nic") -> None:
    """BlueField-2 dual port from the host: NIC mode (legacy eswitch) or DPU mode (ECPF)."""
    for port in (0, 1):
        tree.add_pf(f"0000:af:00.{port}", PfOptions(
            vendor="15b3", device="a2d6", driver="mlx5_core", netdev=f"ens5f{port}np{port}",
            numa_node=1, total_vfs=16, num_vfs=2, eswitch="legacy", fw_version="24.35.2000",
            fw_mode=mode, subsystem_device="0061", speed=25000, serial="MT2109X00521",
            vf_offset=2 if port == 0 else 17, product="BlueField-2 DPU 25GbE Dual-Port SFP56"))


def bluefield2_dpu(tree: SysfsTree) -> None:
    bluefield2(tree, mode="dpu")


def e810_comms(tree: SysfsTree) -> None:
    """E810-CQDA2 running the ICE COMMS DDP package: port 0 VFs 0-3 on vfio-pci and 4-7 on
    iavf; port 1 four vfio-pci VFs."""
    tree.add_pf("0000:5e:00.0", PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", numa_node=1, total_vfs=128,
        num_vfs=8, vf_drivers={0: "vfio-pci", 1: "vfio-pci", 2: "vfio-pci", 3: "vfio-pci"},
        eswitch="legacy", fw_version="4.40", fw_mode="comms", subsystem_device="0002",
        physnet="physnet3"))
    tree.add_pf("0000:5e:00.1", PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f1", numa_node=1, total_vfs=128,
        num_vfs=4, vf_driver="vfio-pci", eswitch="legacy", fw_version="4.40", fw_mode="comms",
        subsystem_device="0002", physnet="physnet4"))


def x710_legacy(tree: SysfsTree) -> None:
    """X710 (i40e) in legacy SR-IOV: four iavf VFs on port 0; port 1 has none, link down."""
    tree.add_pf("0000:18:00.0", PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f0", numa_node=0, total_vfs=32,
        num_vfs=4, eswitch="legacy", fw_version="9.20", subsystem_device="0001", speed=10000,
        physnet="physnet5"))
    tree.add_pf("0000:18:00.1", PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f1", numa_node=0, total_vfs=32,
        num_vfs=0, eswitch="legacy", fw_version="9.20", subsystem_device="0001", speed=10000,
        operstate="down"))


def bcm57414(tree: SysfsTree) -> None:
    """Broadcom BCM57414 (bnxt_en), legacy eswitch, two VFs on port 0."""
    for port in (0, 1):
        tree.add_pf(f"0000:86:00.{port}", PfOptions(
            vendor="14e4", device="16d7", driver="bnxt_en", netdev=f"ens4f{port}np{port}",
            numa_node=1, total_vfs=64, num_vfs=2 if port == 0 else 0, eswitch="legacy",
            fw_version="223.0.161.0", subsystem_device="4140", speed=25000))


def noise(tree: SysfsTree) -> None:
    """What else a compute node has: host bridge, a PCIe bridge with a BMC VGA behind it,
    virtio-net, an I350 LOM (SR-IOV capable but not a SmartNIC), an NVMe drive and a GPU."""
    tree.add_function("0000:00:00.0", FunctionIds(vendor="8086", device="2020", cls="0x060000"))
    tree.add_bridge("0000:00:1c.0", secondary_bus=0x02)
    tree.add_bridge("0000:00:1c.4", secondary_bus=0x01, device="a194")
    tree.add_function("0000:02:00.0", FunctionIds(vendor="1a03", device="2000", cls="0x030000",
                      subsystem_vendor="15d9", subsystem_device="1b95"), driver="ast")
    virtio = tree.add_function("0000:00:03.0", FunctionIds(vendor="1af4", device="1041",
                               subsystem_device="1100", revision="0x01"), driver="virtio-pci")
    tree.add_netdev(virtio / "virtio0", "eth0", NetdevOptions(mac="52:54:00:12:34:56", speed=-1))
    lom = tree.add_function("0000:01:00.0", FunctionIds(vendor="8086", device="1521",
                            subsystem_vendor="15d9", subsystem_device="1521"), driver="igb",
                            numa_node=0)
    for name, value in (("sriov_totalvfs", "7"), ("sriov_numvfs", "0"), ("sriov_offset", "128"),
                        ("sriov_stride", "4"), ("sriov_vf_device", "1520"),
                        ("sriov_drivers_autoprobe", "1")):
        tree._write(lom / name, value + "\n")
    tree.add_netdev(lom, "eno1", NetdevOptions(mac="ac:1f:6b:00:11:22", speed=1000))
    tree.add_function("0000:da:00.0", FunctionIds(vendor="144d", device="a80a", cls="0x010802"),
                      driver="nvme", numa_node=1)
    tree.add_function("0000:d8:00.0", FunctionIds(vendor="10de", device="20b5", cls="0x030200",
                      subsystem_device="1533", revision="0xa1"), driver="nvidia", numa_node=1)


EXAMPLE_CMDLINE = ("BOOT_IMAGE=/vmlinuz-6.1.0-21-amd64 root=UUID=4f1c2d9e-7a51-4e0c-9d0e-"
                   "2b8c8e1f0a11 ro quiet intel_iommu=on iommu=pt default_hugepagesz=1G "
                   "hugepagesz=1G hugepages=16 hugepagesz=2M hugepages=1024")


def example(tree: SysfsTree) -> None:
    """A realistic NFV compute node: CX-6 Dx switchdev + E810 COMMS + X710 + noise + hugepages."""
    noise(tree)
    x710_legacy(tree)
    cx6dx_switchdev(tree)
    e810_comms(tree)
    tree.add_hugepages(node=0, size_kb=1048576, total=8, free=8)
    tree.add_hugepages(node=1, size_kb=1048576, total=8, free=6)
    tree.add_hugepages(node=0, size_kb=2048, total=512, free=512)
    tree.add_hugepages(node=1, size_kb=2048, total=512, free=500)
    tree.set_cmdline(EXAMPLE_CMDLINE)
    # recorded firmware answers (hostgen.firmware): the CX-6 Dx NV config and reset levels,
    # and the ice DDP packages the distribution and Intel's download install
    for port in ("0000:3b:00.0", "0000:3b:00.1"):
        firmware.write_nv_query(tree.root, port, {"SRIOV_EN": (1, 1), "NUM_OF_VFS": (8, 8)})
        firmware.write_reset_query(tree.root, port, level3=True)
    firmware.write_ddp_packages(tree.root)


SCENARIOS: dict[str, Callable[[SysfsTree], None]] = {
    "cx6dx_switchdev": cx6dx_switchdev,
    "bluefield2": bluefield2,
    "bluefield2_dpu": bluefield2_dpu,
    "e810_comms": e810_comms,
    "x710_legacy": x710_legacy,
    "bcm57414": bcm57414,
    "noise": noise,
    "example": example,
}


def build_scenario(root: Path | str, name: str) -> SysfsTree:
    """Build the named scenario into ``root`` and return the tree (for its handles)."""
    tree = SysfsTree(root)
    SCENARIOS[name](tree)
    return tree

