"""cyborg_smartnic.ranges: the one VF range grammar, its limits and its formatter."""

from __future__ import annotations

import pytest

from cyborg_smartnic.ranges import RangeError, format_ranges, is_range, parse_ranges


@pytest.mark.parametrize(("text", "expected"), [
    ("0-3", (0, 1, 2, 3)), ("5", (5,)), ("0-1, 4,6-7", (0, 1, 4, 6, 7)),
    (" 2 - 3 ", (2, 3)), ("3,1-2,3", (1, 2, 3)), ("7-7", (7,)), ("0-15", tuple(range(16))),
])
def test_parse_ranges(text: str, expected: tuple[int, ...]) -> None:
    assert parse_ranges(text, 15) == expected


@pytest.mark.parametrize(("text", "reason"), [
    ("3-1", "VF range '3-1' runs backwards"),
    ("a", "VF range 'a' is not N or N-M"),
    ("1-2-3", "VF range '1-2-3' is not N or N-M"),
    ("1,,2", "VF range '' is not N or N-M"),
    ("0-3x", "VF range '0-3x' is not N or N-M"),  # full match: no trailing junk
    ("-1", "VF range '-1' is not N or N-M"),
    ("", "'' is not a VF index list like '0-7' or '0-3,8'"),
    (" ", "' ' is not a VF index list like '0-7' or '0-3,8'"),
    ("0-16", "VF index 16 is outside 0-15"),  # the limit is the caller's
])
def test_parse_ranges_names_the_bad_part(text: str, reason: str) -> None:
    with pytest.raises(RangeError) as caught:
        parse_ranges(text, 15)
    assert str(caught.value) == reason
    assert isinstance(caught.value, ValueError)


def test_limits_are_the_callers() -> None:
    assert parse_ranges("4095", 4095) == (4095,)
    with pytest.raises(RangeError, match="outside 0-4094"):
        parse_ranges("4095", 4094)


@pytest.mark.parametrize(("indices", "text"), [
    ((0, 1, 2, 5), "0-2,5"), ((7,), "7"), ((), ""), ((1, 3, 4), "1,3-4")])
def test_format_ranges(indices: tuple[int, ...], text: str) -> None:
    assert format_ranges(indices) == text
    if indices:
        assert parse_ranges(text, 4095) == indices


@pytest.mark.parametrize(("text", "expected"), [
    ("3", True), ("0-7", True), ("ens1f0", False), ("x:2", False), ("", False)])
def test_is_range(text: str, expected: bool) -> None:
    assert is_range(text) is expected
