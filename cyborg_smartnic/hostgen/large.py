"""Large generated hosts for benchmarks (thousands of functions)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cyborg_smartnic.hostgen.builder import FunctionIds, PfOptions, SysfsTree

_LARGE_MODELS = (
    # vendor, device, driver, vf driver, eswitch
    ("15b3", "101d", "mlx5_core", "mlx5_core", "switchdev"),
    ("8086", "1592", "ice", "iavf", "legacy"),
    ("8086", "1572", "i40e", "iavf", "legacy"),
)
_NOISE_KINDS: tuple[tuple[str, str, str, str | None], ...] = (
    ("144d", "a80a", "0x010802", "nvme"),
    ("10de", "20b5", "0x030200", "nvidia"),
    ("1af4", "1042", "0x010000", "virtio-pci"),
    ("8086", "0b25", "0x088000", None),
)


def large(root: Path | str, pfs: int = 16, vfs: int = 128, noise: int = 2000,
          models: Iterable[tuple[str, str, str, str, str]] = _LARGE_MODELS) -> SysfsTree:
    """A big host for benchmarks: ``pfs`` PFs (cycling through ``models``) with ``vfs`` VFs
    each (half on vfio-pci), plus ``noise`` unrelated functions; PFs and noise sit on every
    second bus (the bus between holds the auto-created root port)."""
    if pfs > 56 or noise > 8 * 256:
        raise ValueError("large() lays out at most 56 PFs and 2048 noise functions")
    tree = SysfsTree(root)
    kinds = tuple(models)
    for i in range(pfs):
        vendor, device, driver, vf_driver, eswitch = kinds[i % len(kinds)]
        tree.add_pf(f"0000:{0x10 + 2 * i:02x}:00.0", PfOptions(
            vendor=vendor, device=device, driver=driver, netdev=f"enp{0x10 + 2 * i}s0f0",
            numa_node=i % 2, total_vfs=vfs, num_vfs=vfs, vf_driver=vf_driver,
            vf_drivers={n: "vfio-pci" for n in range(0, vfs, 2)}, eswitch=eswitch,
            fw_version="1.2.3", fw_mode="comms" if driver == "ice" else None, vf_offset=8))
    for i in range(noise):
        vendor, device, cls, noise_driver = _NOISE_KINDS[i % len(_NOISE_KINDS)]
        bus, devfn = 0x80 + 2 * (i // 256), i % 256
        tree.add_function(f"0000:{bus:02x}:{devfn >> 3:02x}.{devfn & 7}", FunctionIds(vendor=vendor,
                          device=device, cls=cls), driver=noise_driver, numa_node=1)
    return tree

