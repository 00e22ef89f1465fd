"""PciAddress: full-match parsing, field-level errors, formatting and ordering."""

from __future__ import annotations

import pytest

from cyborg_smartnic.errors import InvalidPciAddress
from cyborg_smartnic.pci import PciAddress


@pytest.mark.parametrize(("text", "fields", "canonical"), [
    ("0000:3b:00.0", (0, 0x3B, 0, 0), "0000:3b:00.0"),
    ("0000:3B:1F.7", (0, 0x3B, 0x1F, 7), "0000:3b:1f.7"),
    ("ffff:ff:1f.7", (0xFFFF, 0xFF, 0x1F, 7), "ffff:ff:1f.7"),
    ("10000:01:00.0", (0x10000, 1, 0, 0), "10000:01:00.0"),  # VMD domains are longer
])
def test_valid_addresses(text: str, fields: tuple[int, int, int, int], canonical: str) -> None:
    address = PciAddress.parse(text)
    assert (address.domain, address.bus, address.slot, address.function) == fields
    assert str(address) == canonical
    assert PciAddress.parse(str(address)) == address
    assert PciAddress.is_valid(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("", "expected dddd:bb:ss.f in hexadecimal"),
    ("3b:00.0", "expected dddd:bb:ss.f in hexadecimal"),
    ("0000:3b:00.0 ", "expected dddd:bb:ss.f in hexadecimal"),
    (" 0000:3b:00.0", "expected dddd:bb:ss.f in hexadecimal"),
    ("0000:3b:00", "expected dddd:bb:ss.f in hexadecimal"),
    ("0000:3g:00.0", "expected dddd:bb:ss.f in hexadecimal"),
    ("000:3b:00.0", "expected dddd:bb:ss.f in hexadecimal"),
    ("0000:3b:00.0/1", "expected dddd:bb:ss.f in hexadecimal"),
    ("0000:3b:20.0", "slot (20) is greater than the maximum (1f)"),
    ("0000:3b:ff.0", "slot (ff) is greater than the maximum (1f)"),
    ("0000:3b:00.8", "function (8) is greater than the maximum (7)"),
    ("0000:3b:00.f", "function (f) is greater than the maximum (7)"),
])
def test_invalid_addresses_name_the_field(text: str, reason: str) -> None:
    with pytest.raises(InvalidPciAddress) as caught:
        PciAddress.parse(text)
    assert str(caught.value) == f"invalid PCI address {text!r}: {reason}"
    assert not PciAddress.is_valid(text)


def test_ordering_is_numeric() -> None:
    texts = ["0000:3b:00.1", "0000:18:00.0", "0001:00:00.0", "0000:3b:00.0", "0000:3b:01.0"]
    ordered = sorted(PciAddress.parse(t) for t in texts)
    assert [str(a) for a in ordered] == ["0000:18:00.0", "0000:3b:00.0", "0000:3b:00.1",
                                         "0000:3b:01.0", "0001:00:00.0"]
    assert PciAddress.parse("0000:3b:00.0").__lt__("x") is NotImplemented


def test_attach_fields_match_cyborg() -> None:
    import json

    from cyborg.accelerator.common.utils import pci_str_to_json

    address = PciAddress.parse("0000:3b:01.2")
    assert address.attach_fields() == {"domain": "0000", "bus": "3b", "device": "01",
                                       "function": "2"}
    assert json.loads(pci_str_to_json(str(address))) == address.attach_fields()


def test_from_attach_info_reads_cyborgs_text_and_the_apis_object() -> None:
    from cyborg.accelerator.common.utils import pci_str_to_json

    text = pci_str_to_json("0000:3b:01.2", "physnet1")
    assert str(PciAddress.from_attach_info(text)) == "0000:3b:01.2"
    parsed = {"domain": "0000", "bus": "3b", "device": "01", "function": "2"}
    assert PciAddress.from_attach_info(parsed) == PciAddress.parse("0000:3b:01.2")
    assert PciAddress.from_attach_info(PciAddress(0, 0x5E, 0x1F, 7).attach_fields()) == \
        PciAddress(0, 0x5E, 0x1F, 7)


@pytest.mark.parametrize(("info", "reason"), [
    ("not json", "not a PCI attach_info (JSONDecodeError("),
    ('{"bus": "3b", "device": "01", "function": "2"}', "not a PCI attach_info (KeyError('domain')"),
    ("[1, 2]", "not a PCI attach_info (TypeError("),
    ({"domain": "0000", "bus": "3b", "device": "20", "function": "0"},
     "slot (20) is greater than the maximum (1f)"),
])
def test_from_attach_info_refuses_anything_else(info: object, reason: str) -> None:
    with pytest.raises(InvalidPciAddress) as caught:
        PciAddress.from_attach_info(info)  # type: ignore[arg-type]
    assert reason in str(caught.value)
