"""``[smartnic] physical_device_mappings``: which physical network each PF is cabled to.

Same shape as the Neutron SR-IOV agent's option: ``physnet1:ens1f0,physnet2:0000:3b:00.1``.
The target is a PF netdev name or a PF PCI address; the physnet name is everything before the
first colon (so addresses, which contain colons, work). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from cyborg_smartnic.errors import ConfigError, InvalidPciAddress
from cyborg_smartnic.pci import PciAddress

OPTION = "[smartnic] physical_device_mappings"

_PHYSNET = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_NETDEV = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,14}")


@dataclass(frozen=True)
class PhysnetMap:
    """Physnet by PF address and by PF netdev name; the address wins when both match."""

    by_address: Mapping[PciAddress, str] = field(default_factory=lambda: MappingProxyType({}))
    by_netdev: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def lookup(self, address: PciAddress, netdev: str | None) -> str | None:
        found = self.by_address.get(address)
        if found is None and netdev is not None:
            found = self.by_netdev.get(netdev)
        return found

    def __bool__(self) -> bool:
        return bool(self.by_address or self.by_netdev)


def parse_physnet_mappings(items: Sequence[str]) -> PhysnetMap:
    """Parse the option's list; a target mapped twice or a malformed entry is a ConfigError."""
    by_address: dict[PciAddress, str] = {}
    by_netdev: dict[str, str] = {}
    for raw in items:
        entry = raw.strip()
        if not entry:
            continue
        physnet, sep, target = entry.partition(":")
        if not sep or not target:
            raise ConfigError(option=OPTION, reason=f"{entry!r} is not PHYSNET:DEVICE")
        if not _PHYSNET.fullmatch(physnet):
            raise ConfigError(option=OPTION,
                              reason=f"{entry!r}: physnet {physnet!r} must be 1-64 of "
                                     "letters, digits, '_', '-', '.'")
        if ":" in target:
            try:
                address = PciAddress.parse(target)
            except InvalidPciAddress as exc:
                raise ConfigError(option=OPTION, reason=f"{entry!r}: {exc}") from exc
            if address in by_address:
                raise ConfigError(option=OPTION,
                                  reason=f"{target} is mapped twice ({by_address[address]}, "
                                         f"{physnet})")
            by_address[address] = physnet
        elif _NETDEV.fullmatch(target):
            if target in by_netdev:
                raise ConfigError(option=OPTION,
                                  reason=f"{target} is mapped twice ({by_netdev[target]}, "
                                         f"{physnet})")
            by_netdev[target] = physnet
        else:
            raise ConfigError(option=OPTION,
                              reason=f"{entry!r}: {target!r} is neither a netdev name nor a "
                                     "PCI address")
    return PhysnetMap(MappingProxyType(by_address), MappingProxyType(by_netdev))
