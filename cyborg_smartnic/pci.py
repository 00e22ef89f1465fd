"""The PCI address value type: parse (full match only), validate, format."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import total_ordering
from typing import Any

from cyborg_smartnic.errors import InvalidPciAddress

_ADDRESS_RE = re.compile(
    r"(?P<domain>[0-9a-fA-F]{4,8}):(?P<bus>[0-9a-fA-F]{2}):(?P<slot>[0-9a-fA-F]{2})"
    r"\.(?P<function>[0-9a-fA-F])"
)
_MAX_SLOT = 0x1F
_MAX_FUNCTION = 0x7


@total_ordering
@dataclass(frozen=True, slots=True)
class PciAddress:
    """A PCI function address ``dddd:bb:ss.f`` (domain may be longer on VMD hosts)."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """Parse ``text`` as a whole; anything else is an ``InvalidPciAddress``."""
        match = _ADDRESS_RE.fullmatch(text)
        if match is None:
            raise InvalidPciAddress(
                address=text, reason="expected dddd:bb:ss.f in hexadecimal"
            )
        slot = int(match["slot"], 16)
        function = int(match["function"], 16)
        if slot > _MAX_SLOT:
            raise InvalidPciAddress(
                address=text,
                reason=f"slot ({slot:02x}) is greater than the maximum ({_MAX_SLOT:02x})",
            )
        if function > _MAX_FUNCTION:
            raise InvalidPciAddress(
                address=text,
                reason=f"function ({function:x}) is greater than the maximum ({_MAX_FUNCTION:x})",
            )
        return cls(int(match["domain"], 16), int(match["bus"], 16), slot, function)

    @classmethod
    def from_attach_info(cls, info: str | Mapping[str, Any]) -> PciAddress:
        """The address in a ``PCI`` attach handle's ``attach_info``: the JSON text Cyborg
        stores, or the object its API answers (``attach_handle_info``); the inverse of
        ``attach_fields``. Anything else is an ``InvalidPciAddress``."""
        try:
            fields = json.loads(info) if isinstance(info, str) else info
            text = f"{fields['domain']}:{fields['bus']}:{fields['device']}.{fields['function']}"
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidPciAddress(address=str(info)[:200],
                                    reason=f"not a PCI attach_info ({exc!r})") from None
        return cls.parse(text)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        try:
            cls.parse(text)
        except InvalidPciAddress:
            return False
        return True

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, PciAddress):
            return NotImplemented
        return self._key() < other._key()

    def _key(self) -> tuple[int, int, int, int]:
        return (self.domain, self.bus, self.slot, self.function)

    def attach_fields(self) -> dict[str, str]:
        """The four fields of Cyborg's ``pci_str_to_json`` (all strings, kernel spelling)."""
        return {
            "domain": f"{self.domain:04x}",
            "bus": f"{self.bus:02x}",
            "device": f"{self.slot:02x}",
            "function": f"{self.function:x}",
        }
