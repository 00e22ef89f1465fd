"""Known SmartNIC and SR-IOV NIC models, keyed by PCI vendor and device id.

The table is data, not logic: ``lookup`` answers for a PF or a VF id, and operators extend it
with ``[smartnic] extra_models`` (see ``parse_extra_model``) without code changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cyborg_smartnic.errors import ConfigError


@dataclass(frozen=True, slots=True)
class NicModel:
    """One PF device id: what it is called and what its VFs look like."""

    vendor_id: str  # 4-digit lowercase hex
    device_id: str
    vendor: str  # short vendor name used in traits, e.g. "nvidia"
    name: str  # human model name, e.g. "ConnectX-6 Dx"
    key: str  # trait-friendly model key, e.g. "CONNECTX_6_DX"
    vf_device_id: str | None
    pf_driver: str | None
    vf_driver: str | None
    max_vfs: int | None = None
    switchdev: bool = False  # supports eswitch switchdev mode (OVS offload)
    ddp: bool = False  # ice DDP packages (COMMS for GTP/PFCP)
    dpu: bool = False  # has its own Arm cores (DPU vs NIC mode)
    # firmware facts (host.firmware): NV config through mstconfig/mlxconfig (SRIOV_EN,
    # NUM_OF_VFS, the BlueField INTERNAL_CPU_* mode keys), and whether a firmware reset
    # (mlxfwreset --level 3 / devlink reload fw_activate) activates it without a reboot
    nv_config: bool = False
    fw_reset: bool = False


VENDORS: dict[str, str] = {
    "8086": "intel",
    "15b3": "nvidia",
    "14e4": "broadcom",
    "1077": "qlogic",
    "177d": "marvell",
    "19ee": "netronome",
    "1dd8": "pensando",
}


@dataclass(frozen=True, slots=True)
class _Family:
    """One table row: several PF device ids that share a name, VF id and drivers."""

    vendor_id: str
    device_ids: str  # space-separated PF device ids
    name: str
    key: str
    vf_device_id: str
    pf_driver: str
    vf_driver: str
    max_vfs: int | None = None
    switchdev: bool = False
    ddp: bool = False
    dpu: bool = False
    nv_config: bool = False
    fw_reset: bool = False


#: Driver names several modules test for; the catalogue below is where they live.
MLX5_DRIVER = "mlx5_core"
VFIO_DRIVER = "vfio-pci"
#: Userspace VF drivers (no kernel netdev), in the order messages list them.
USERSPACE_VF_DRIVERS = (VFIO_DRIVER, "igb_uio", "uio_pci_generic")
_FAMILIES: tuple[_Family, ...] = (
    _Family("8086", "1572 1581 1583 1589 158a 158b 15ff 0d58", "X710", "X710", "154c",
            "i40e", "iavf", max_vfs=128),
    _Family("8086", "1563", "X550", "X550", "1565", "ixgbe", "ixgbevf", max_vfs=63),
    _Family("8086", "1592 1593 159b 1599 1591", "E810", "E810", "1889", "ice", "iavf",
            max_vfs=256, switchdev=True, ddp=True),
    _Family("8086", "188a 124c 124d", "E823", "E823", "1889", "ice", "iavf",
            max_vfs=256, switchdev=True, ddp=True),
    _Family("8086", "579c 579d 579e", "E825", "E825", "1889", "ice", "iavf",
            max_vfs=256, switchdev=True, ddp=True),
    _Family("8086", "12d2 12d3", "E830", "E830", "1889", "ice", "iavf",
            max_vfs=256, switchdev=True, ddp=True),
    _Family("15b3", "1013", "ConnectX-4", "CONNECTX_4", "1014", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True),
    _Family("15b3", "1015", "ConnectX-4 Lx", "CONNECTX_4_LX", "1016", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True),
    _Family("15b3", "1017", "ConnectX-5", "CONNECTX_5", "1018", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "1019", "ConnectX-5 Ex", "CONNECTX_5_EX", "101a", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "101b", "ConnectX-6", "CONNECTX_6", "101c", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "101d", "ConnectX-6 Dx", "CONNECTX_6_DX", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "101f", "ConnectX-6 Lx", "CONNECTX_6_LX", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "1021", "ConnectX-7", "CONNECTX_7", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "1023", "ConnectX-8", "CONNECTX_8", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, nv_config=True, fw_reset=True),
    _Family("15b3", "a2d6", "BlueField-2", "BLUEFIELD_2", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, dpu=True, nv_config=True, fw_reset=True),
    _Family("15b3", "a2dc", "BlueField-3", "BLUEFIELD_3", "101e", MLX5_DRIVER, MLX5_DRIVER,
            switchdev=True, dpu=True, nv_config=True, fw_reset=True),
    _Family("14e4", "16d7", "BCM57414", "BCM57414", "16dc", "bnxt_en", "bnxt_en",
            switchdev=True),
    _Family("14e4", "1750", "BCM57508", "BCM57508", "1806", "bnxt_en", "bnxt_en",
            switchdev=True),
    _Family("1077", "1654", "QL45000", "QL45000", "1664", "qede", "qede"),
    _Family("177d", "b200", "OCTEON TX2 CN96XX", "OCTEON_TX2_CN96XX", "b203",
            "rvu_nicpf", "rvu_nicvf"),
    _Family("177d", "b100", "OCTEON TX2 CN98XX", "OCTEON_TX2_CN98XX", "b103",
            "rvu_nicpf", "rvu_nicvf"),
    _Family("19ee", "4000", "Agilio CX", "AGILIO_CX", "6003", "nfp", "nfp", switchdev=True),
    _Family("19ee", "3800", "Agilio LX", "AGILIO_LX", "6003", "nfp", "nfp", switchdev=True),
    _Family("1dd8", "1002", "Pensando DSC", "PENSANDO_DSC", "1003", "ionic", "ionic", dpu=True),
)


# XDP per kernel driver, as in mainline Linux up to 6.12 (drivers/net/ethernet/*: a driver
# with an ndo_bpf that takes XDP_SETUP_PROG runs XDP programs natively, in the driver).
# Every other netdev driver only gets generic (skb) XDP: same programs, none of the speed.
# Userspace drivers (vfio-pci, igb_uio, uio_pci_generic) leave no kernel netdev at all.
XDP_NATIVE = "native"
XDP_GENERIC = "generic"
XDP_NONE = "none"
NATIVE_XDP_DRIVERS = frozenset({
    MLX5_DRIVER, "mlx4_en", "i40e", "ice", "ixgbe", "ixgbevf", "igb", "igc", "bnxt_en",
    "qede", "nfp", "ionic", "rvu_nicpf", "rvu_nicvf", "virtio_net", "ena", "hv_netvsc",
    "idpf", "tun", "veth",
})
GENERIC_ONLY_XDP_DRIVERS = frozenset({"iavf", "igbvf", "e1000e", "tg3"})
USERSPACE_DRIVERS = frozenset(USERSPACE_VF_DRIVERS)


def xdp_support(driver: str | None) -> str | None:
    """``native``, ``generic`` or ``none`` for a kernel driver name; None when unknown."""
    if driver in NATIVE_XDP_DRIVERS:
        return XDP_NATIVE
    if driver in GENERIC_ONLY_XDP_DRIVERS:
        return XDP_GENERIC
    if driver in USERSPACE_DRIVERS:
        return XDP_NONE
    return None


def _expand(families: tuple[_Family, ...]) -> tuple[NicModel, ...]:
    return tuple(
        NicModel(f.vendor_id, device, VENDORS[f.vendor_id], f.name, f.key, f.vf_device_id,
                 f.pf_driver, f.vf_driver, f.max_vfs, f.switchdev, f.ddp, f.dpu,
                 f.nv_config, f.fw_reset)
        for f in families for device in f.device_ids.split())


BUILTIN_MODELS: tuple[NicModel, ...] = _expand(_FAMILIES)

# Drivers whose functions always register a netdev: such a VF without one in our network
# namespace has most likely been moved to another (a container, a VM's network namespace),
# and a generated host gives such a function a netdev.
NETDEV_DRIVERS = frozenset(
    {driver for model in BUILTIN_MODELS for driver in (model.pf_driver, model.vf_driver)
     if driver is not None}
    | {"ixgbevf", "igbvf", "i40evf", "mlx4_core", "enic", "hinic", "liquidio_vf",
       "octeon_ep_vf", "cxgb4vf", "qlcnic", "be2net", "idpf", "ena", "sfc", "virtio_net",
       "igb", "e1000e", "tg3"})
# The most VFs the host tool asks of one PF (host.yaml's vf_count, the privileged write).
MAX_VFS_PER_PF = 4096

_EXTRA_RE = re.compile(
    r"(?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4})(?::(?P<vf>[0-9a-fA-F]{4}))?"
    r"=(?P<name>[^=]+)"
)


def parse_extra_model(entry: str) -> NicModel:
    """Parse one ``extra_models`` entry: ``VVVV:DDDD[:VFDEV]=Model name``."""
    match = _EXTRA_RE.fullmatch(entry.strip())
    if match is None:
        raise ConfigError(
            option="[smartnic] extra_models",
            reason=f"{entry!r} is not VVVV:DDDD[:VFDEV]=Model name",
        )
    vendor_id = match["vendor"].lower()
    name = match["name"].strip()
    key = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
    return NicModel(vendor_id, match["device"].lower(), VENDORS.get(vendor_id, vendor_id),
                    name, key, (match["vf"] or "").lower() or None, None, None)


@dataclass(frozen=True)
class Catalog:
    """The models in force: built-in rows overridden by extra ones with the same ids."""

    models: tuple[NicModel, ...] = BUILTIN_MODELS
    _by_id: dict[tuple[str, str], NicModel] = field(init=False, repr=False, compare=False)
    _vf_ids: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {(m.vendor_id, m.device_id): m for m in self.models}
        vf_ids = frozenset((m.vendor_id, m.vf_device_id) for m in self.models
                           if m.vf_device_id and (m.vendor_id, m.vf_device_id) not in by_id)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_vf_ids", vf_ids)

    def with_extra(self, extra: tuple[NicModel, ...]) -> Catalog:
        keep = {(m.vendor_id, m.device_id) for m in extra}
        base = tuple(m for m in self.models if (m.vendor_id, m.device_id) not in keep)
        return Catalog(base + extra)

    def lookup_pf(self, vendor_id: str, device_id: str) -> NicModel | None:
        return self._by_id.get((vendor_id, device_id))

    def is_vf_id(self, vendor_id: str, device_id: str) -> bool:
        """True for a known VF device id that is not also some model's PF id."""
        return (vendor_id, device_id) in self._vf_ids
