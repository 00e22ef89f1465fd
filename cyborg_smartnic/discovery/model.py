"""The discovery model: an immutable snapshot of a host's SmartNICs.

Everything here is a frozen dataclass filled once by the scan; no attribute or method does
I/O. Report, host plan, doctor and the CLI all read this one truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from cyborg_smartnic.pci import PciAddress

ESWITCH_LEGACY = "legacy"
ESWITCH_SWITCHDEV = "switchdev"
ESWITCH_MODES = (ESWITCH_LEGACY, ESWITCH_SWITCHDEV)


@dataclass(frozen=True, slots=True)
class Firmware:
    """Running firmware version and, where the NIC has one, its mode.

    ``mode`` examples: ``comms`` / ``os_default`` / ``wireless_edge`` (ice DDP package),
    ``dpu`` / ``nic`` (BlueField).
    """

    version: str | None = None
    mode: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """A netdev's state as sysfs shows it."""

    mac: str | None = None
    operstate: str | None = None  # "up", "down", ...
    speed_mbps: int | None = None  # None when the link is down or unknown
    mtu: int | None = None


@dataclass(frozen=True, slots=True)
class VirtualFunction:
    address: PciAddress
    index: int  # N of the PF's virtfn<N> link
    vendor_id: str  # 4-digit lowercase hex
    device_id: str
    driver: str | None  # None when unbound
    netdev: str | None  # None when bound to vfio-pci or unbound
    link: Link
    iommu_group: int | None
    numa_node: int | None
    netdev_master: str | None = None  # bond/bridge the VF netdev is enslaved to


@dataclass(frozen=True, slots=True)
class PhysicalFunction:
    address: PciAddress
    vendor_id: str
    device_id: str
    subsystem_vendor_id: str | None
    subsystem_device_id: str | None
    vendor: str  # short vendor name from the catalogue or pci.ids, else the vendor id
    model: str  # human model name
    model_key: str  # trait-friendly model key
    driver: str | None
    numa_node: int | None
    netdev: str | None
    link: Link
    iommu_group: int | None
    eswitch_mode: str | None  # ESWITCH_LEGACY / ESWITCH_SWITCHDEV / None when unknown
    firmware: Firmware
    physnet: str | None
    total_vfs: int
    num_vfs: int
    vf_device_id: str | None
    virtual_functions: tuple[VirtualFunction, ...]  # selected VFs, by index
    serial: str | None = None
    representors: tuple[str, ...] = ()  # representor netdevs seen (switchdev mode)
    flow_steering_mode: str | None = None  # mlx5 devlink param (smfs/dmfs); None when unknown


@dataclass(frozen=True, slots=True)
class Skipped:
    """A PCI function or VF left out of the model, and why (one human line)."""

    address: str  # kept as text: the address itself may be the malformed part
    reason: str


@dataclass(frozen=True, slots=True)
class HugepagePool:
    numa_node: int | None  # None for the global pool under /sys/kernel/mm/hugepages
    size_kb: int
    total: int
    free: int
    surplus: int


@dataclass(frozen=True, slots=True)
class Host:
    hostname: str
    physical_functions: tuple[PhysicalFunction, ...]  # by address
    skipped: tuple[Skipped, ...]
    hugepages: tuple[HugepagePool, ...] = ()
    iommu_enabled: bool = False
    kernel_cmdline: str | None = None

    def find_pf(self, address: PciAddress) -> PhysicalFunction | None:
        for pf in self.physical_functions:
            if pf.address == address:
                return pf
        return None
