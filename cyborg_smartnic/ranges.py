"""VF index ranges (``0-3,8``): the one parser and the one formatter (pure).

``[smartnic] devices`` selectors (``ens1f0#0-3``), ``[smartnic_pool:NAME] devices`` and
host.yaml's ``reserved_vfs``, ``vf_drivers`` and ``vf_owners`` keys all use this grammar:
comma-separated ``N`` or ``N-M`` (blanks around ``,`` and ``-`` allowed), each matched as a
whole. The caller gives the largest index it accepts, and turns ``RangeError`` (its message
names the offending part) into its own field-level error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PART = re.compile(r"\s*(\d+)(?:\s*-\s*(\d+))?\s*")


class RangeError(ValueError):
    """A VF range list that does not parse; ``str()`` is the reason, without the field."""


def is_range(text: str) -> bool:
    """One ``N`` or ``N-M`` (how a comma-split list tells a range from a selector)."""
    return _PART.fullmatch(text) is not None


def parse_ranges(text: str, max_index: int) -> tuple[int, ...]:
    """``"0-3,8"`` -> ``(0, 1, 2, 3, 8)``: sorted, each index once, none above
    ``max_index``."""
    if not text.strip():
        raise RangeError(f"{text!r} is not a VF index list like '0-7' or '0-3,8'")
    indices: set[int] = set()
    for part in text.split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise RangeError(f"VF range {part.strip()!r} is not N or N-M")
        low = int(match[1])
        high = int(match[2]) if match[2] is not None else low
        if low > high:
            raise RangeError(f"VF range {part.strip()!r} runs backwards")
        if high > max_index:
            raise RangeError(f"VF index {high} is outside 0-{max_index}")
        indices.update(range(low, high + 1))
    return tuple(sorted(indices))


def format_ranges(indices: Iterable[int]) -> str:
    """``(0, 1, 2, 5)`` -> ``"0-2,5"`` (the inverse of ``parse_ranges`` for sorted input)."""
    parts: list[str] = []
    start = prev = None
    for index in indices:
        if prev is not None and index == prev + 1:
            prev = index
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = index
    if start is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)
