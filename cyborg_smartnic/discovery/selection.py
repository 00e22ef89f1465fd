"""``[smartnic] devices`` selectors: pure parsing and matching, no I/O.

Selector shapes (each optionally followed by ``#`` and VF index ranges ``0-3,8``):

- ``15b3:101d`` vendor and device id, ``8086:*`` every device of a vendor;
- ``0000:3b:00.0`` one PF by PCI address;
- ``ens1f0`` one PF by netdev name.

oslo.config's ListOpt splits on commas, so ``ens1f0#0-3,8`` arrives as ``["ens1f0#0-3", "8"]``:
a bare range token is joined back to the selector before it. Anything else fails closed with a
``ConfigError`` naming the selector: a typo must never silently select nothing (or everything).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cyborg_smartnic import ranges as vf_ranges
from cyborg_smartnic.errors import ConfigError, InvalidPciAddress
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.ranges import RangeError, is_range

OPTION = "[smartnic] devices"
MAX_VF_INDEX = 65535

_ID = re.compile(r"(?P<vendor>[0-9a-fA-F]{4}):(?P<device>[0-9a-fA-F]{4}|\*)")
_NETDEV = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,14}")
_ADDRESS_SHAPE = re.compile(r"[0-9a-fA-F]+:[0-9a-fA-F]+:[0-9a-fA-F]+\.[0-9a-fA-F]+")

KIND_ID = "id"
KIND_ADDRESS = "address"
KIND_NETDEV = "netdev"


@dataclass(frozen=True, slots=True)
class Selector:
    """One parsed selector. ``vf_indexes`` ``None`` means every VF of the matched PF."""

    text: str  # as the operator wrote it (after rejoining), for messages
    kind: str  # KIND_ID / KIND_ADDRESS / KIND_NETDEV
    vendor_id: str | None = None
    device_id: str | None = None  # None with KIND_ID means "*"
    address: PciAddress | None = None
    netdev: str | None = None
    vf_indexes: frozenset[int] | None = None

    def matches(self, vendor_id: str | None, device_id: str | None,
                address: PciAddress | None, netdev: str | None) -> bool:
        """Does this selector pick the PF with these identities?"""
        if self.kind == KIND_ID:
            return vendor_id == self.vendor_id and (
                self.device_id is None or device_id == self.device_id)
        if self.kind == KIND_ADDRESS:
            return address == self.address
        return netdev is not None and netdev == self.netdev

    def allows_vf(self, index: int) -> bool:
        return self.vf_indexes is None or index in self.vf_indexes

    @property
    def is_wildcard(self) -> bool:
        return self.kind == KIND_ID and self.device_id is None


def rejoin(items: Iterable[str]) -> list[str]:
    """Undo the ListOpt comma split: ``["ens1f0#0-3", "8"]`` -> ``["ens1f0#0-3,8"]``."""
    out: list[str] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        if is_range(item):
            if not out or "#" not in out[-1]:
                raise ConfigError(option=OPTION,
                                  reason=f"VF range {item!r} does not follow a selector with '#'")
            out[-1] = f"{out[-1]},{item}"
        else:
            out.append(item)
    return out


def parse_ranges(text: str, selector: str) -> frozenset[int]:
    """``0-3,8`` -> {0, 1, 2, 3, 8} (``ranges.parse_ranges`` up to ``MAX_VF_INDEX``)."""
    try:
        return frozenset(vf_ranges.parse_ranges(text, MAX_VF_INDEX))
    except RangeError as exc:
        raise ConfigError(option=OPTION, reason=f"{selector!r}: {exc}") from None


def parse_selector(text: str) -> Selector:
    """Parse one (already rejoined) selector; unknown shapes raise ``ConfigError``."""
    base, hash_, ranges = text.partition("#")
    vf_indexes = None
    if hash_:
        if not ranges:
            raise ConfigError(option=OPTION, reason=f"{text!r}: '#' without VF ranges")
        vf_indexes = parse_ranges(ranges, text)
    match = _ID.fullmatch(base)
    if match:
        device = match["device"].lower()
        return Selector(text, KIND_ID, vendor_id=match["vendor"].lower(),
                        device_id=None if device == "*" else device, vf_indexes=vf_indexes)
    if _ADDRESS_SHAPE.fullmatch(base):
        try:
            address = PciAddress.parse(base)
        except InvalidPciAddress as exc:
            raise ConfigError(option=OPTION, reason=f"{text!r}: {exc}") from exc
        return Selector(text, KIND_ADDRESS, address=address, vf_indexes=vf_indexes)
    if _NETDEV.fullmatch(base):
        return Selector(text, KIND_NETDEV, netdev=base, vf_indexes=vf_indexes)
    raise ConfigError(
        option=OPTION,
        reason=f"unknown selector {text!r}: expected VVVV:DDDD, VVVV:*, a PCI address "
               "dddd:bb:ss.f or a netdev name, optionally followed by #VF-ranges")


def parse_selectors(items: Sequence[str]) -> tuple[Selector, ...]:
    """Parse the ``[smartnic] devices`` list (as oslo.config hands it over)."""
    return tuple(parse_selector(item) for item in rejoin(items))


def matching(selectors: Sequence[Selector], vendor_id: str | None, device_id: str | None,
             address: PciAddress | None, netdev: str | None) -> tuple[Selector, ...]:
    """The selectors that pick this PF (empty: not selected)."""
    return tuple(s for s in selectors if s.matches(vendor_id, device_id, address, netdev))


def vf_allowed(selected_by: Sequence[Selector], index: int) -> bool:
    """A VF counts when any selector that picked its PF allows its index."""
    return any(s.allows_vf(index) for s in selected_by)
