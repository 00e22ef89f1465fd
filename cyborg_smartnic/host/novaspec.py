"""Which PCI functions Nova's ``[pci] device_spec`` makes assignable, decided as Nova 34 does.

Nova cannot be imported here: it registers its options on the global oslo.config CONF, as
Cyborg does, and both cannot live in one interpreter. This re-states the small part of
``nova/pci/devspec.py`` (``PciDeviceSpec``, ``WhitelistPciAddress`` and the glob, regex and
physical-address specs) and ``nova/pci/whitelist.py`` (each value is JSON: one spec or a list)
that decides whether a device matches. ``tests/unit/test_host_novaspec.py`` runs Nova's own
classes in a subprocess of the same virtualenv on the same specs and devices and asserts
both answer alike.

Nova reads two facts from the running host: whether a spec's single address is a PF
(``sriov_totalvfs`` > 0) and which PCI function a ``devname`` is. Here both come from the
discovery model, so a recorded tree gives the same answer as the host it was taken on.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oslo_config import cfg

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.errors import SmartNicError

ANY = "*"
REGEX_ANY = ".*"
_MAX = {"domain": 0xFFFF, "bus": 0xFF, "slot": 0x1F, "func": 0x7, "vendor_id": 0xFFFF,
        "product_id": 0xFFFF}
_FORMAT = {"domain": "%04x", "bus": "%02x", "slot": "%02x", "func": "%01x",
           "vendor_id": "%04x", "product_id": "%04x"}
_TRUE = ("1", "t", "true", "on", "y", "yes")  # oslo_utils.strutils.TRUE_STRINGS
REMOTE_MANAGED = "remote_managed"
PHYSICAL_NETWORK = "physical_network"


class InvalidDeviceSpec(SmartNicError):
    """A ``device_spec`` value Nova would refuse (nova-compute does not start)."""

    msg_fmt = "%(file)s: [pci] device_spec %(index)s: %(reason)s"


@dataclass(frozen=True, slots=True)
class PciFunction:
    """What Nova's matcher looks at: ids (4-digit lower-case hex) and addresses."""

    vendor_id: str
    product_id: str
    address: str
    parent_addr: str | None = None  # the PF of a VF
    card_serial_number: str | None = None


class _Bad(ValueError):
    pass


def _fields(address: str) -> tuple[str, str, str, str]:
    dbs, _, func = address.partition(".")
    parts = dbs.split(":")
    if len(parts) != 3:
        raise _Bad(f"{address!r} is not a PCI address")
    return parts[0], parts[1], parts[2], func


def _hex_field(name: str, value: str) -> str:
    if value == ANY:
        return value
    try:
        number = int(value, 16)
    except ValueError:
        raise _Bad(f"property {name} ({value!r}) does not parse as a hex number") from None
    if number > _MAX[name]:
        raise _Bad(f"property {name} ({value}) is greater than the maximum allowable value "
                   f"({_MAX[name]:X})")
    return _FORMAT[name] % number


def _physical(address: str) -> tuple[str, str, str, str]:
    """nova PhysicalPciAddress: four hex fields, normalised."""
    domain, bus, slot, func = _fields(address)
    return (_hex_field("domain", domain), _hex_field("bus", bus),
            _hex_field("slot", slot), _hex_field("func", func))


def _glob(address: str) -> tuple[str, str, str, str]:
    """nova PciAddressGlobSpec: missing or blank fields are ``*``."""
    func = ANY
    dbs, _, func_text = address.partition(".")
    if func_text:
        func = _hex_field("func", func_text.strip())
    domain = bus = slot = ANY
    if dbs:
        parts = dbs.split(":")
        if len(parts) > 3:
            raise _Bad(f"{address!r} is not a PCI address")
        full = [ANY] * (3 - len(parts)) + parts
        domain, bus, slot = (p.strip() or ANY for p in full)
        domain = _hex_field("domain", domain)
        bus = _hex_field("bus", bus)
        slot = _hex_field("slot", slot)
    return domain, bus, slot, func


@dataclass(frozen=True)
class DeviceSpec:
    """One ``device_spec`` entry, parsed as Nova parses it."""

    text: str  # the JSON of this entry, for messages
    vendor_id: str
    product_id: str
    kind: str  # "glob" | "regex" | "physical" (a PF address or devname) | "none"
    address: tuple[str, ...] = ()
    tags: Mapping[str, str] | None = None

    @property
    def remote_managed(self) -> bool:
        return str((self.tags or {}).get(REMOTE_MANAGED, "")).strip().lower() in _TRUE

    @property
    def physical_network(self) -> str | None:
        value = (self.tags or {}).get(PHYSICAL_NETWORK)
        return None if value is None else str(value)

    def _address_match(self, address: str) -> bool:
        fields = _physical(address)
        if self.kind == "regex":
            return all(re.match(pattern, value) is not None
                       for pattern, value in zip(self.address, fields, strict=True))
        return all(want in (ANY, have) for want, have in zip(self.address, fields, strict=True))

    def matches(self, dev: PciFunction) -> bool:
        """nova PciDeviceSpec.match."""
        if self.kind == "none":
            return False
        if self.vendor_id not in (ANY, dev.vendor_id):
            return False
        if self.product_id not in (ANY, dev.product_id):
            return False
        if self.remote_managed and not dev.card_serial_number:
            return False
        if self.kind == "physical" and dev.parent_addr and self._address_match(dev.parent_addr):
            return True
        return self._address_match(dev.address)


def parse_spec(raw: Mapping[str, Any], host: Host) -> DeviceSpec:
    """One entry (a dict); raises ``_Bad`` where Nova raises."""
    tags = dict(raw)
    vendor = str(tags.pop("vendor_id", ANY)).strip()
    product = str(tags.pop("product_id", ANY))
    devname = tags.pop("devname", None)
    address = tags.pop("address", None)
    vendor = _hex_field("vendor_id", vendor)
    product = _hex_field("product_id", product)
    text = json.dumps(dict(raw), sort_keys=True)
    if address and devname:
        raise _Bad("give either address or devname, not both")
    if devname:
        found = _by_netdev(str(devname), host)
        if found is None:
            return DeviceSpec(text, vendor, product, "none", tags=tags)
        where, is_pf = found
        kind = "physical" if is_pf else "glob"
        return DeviceSpec(text, vendor, product, kind,
                          _physical(where) if is_pf else _glob(where), tags)
    if isinstance(address, dict):
        patterns = tuple(str(address.get(k, REGEX_ANY))
                         for k in ("domain", "bus", "slot", "function"))
        try:
            for pattern in patterns:
                re.compile(pattern)
        except re.error as exc:
            raise _Bad(f"address {address}: {exc}") from None
        return DeviceSpec(text, vendor, product, "regex", patterns, tags)
    if address is not None and not isinstance(address, str):
        raise _Bad(f"address {address!r} is neither a string nor a mapping")
    fields = _glob(address or "*:*:*.*")
    single = all(all(c in string.hexdigits for c in f) for f in fields)
    is_pf = single and _is_pf(fields, host)
    return DeviceSpec(text, vendor, product, "physical" if is_pf else "glob", fields, tags)


def _is_pf(fields: tuple[str, ...], host: Host) -> bool:
    """nova utils.is_physical_function: sriov_totalvfs > 0 at that address."""
    text = f"{fields[0]}:{fields[1]}:{fields[2]}.{fields[3]}"
    return any(str(pf.address) == text and pf.total_vfs > 0 for pf in host.physical_functions)


def _by_netdev(name: str, host: Host) -> tuple[str, bool] | None:
    """nova utils.get_function_by_ifname: (address, is a PF with SR-IOV)."""
    for pf in host.physical_functions:
        if pf.netdev == name:
            return str(pf.address), pf.total_vfs > 0
        for vf in pf.virtual_functions:
            if vf.netdev == name:
                return str(vf.address), False
    return None


def parse_values(values: Iterable[str], host: Host, file: str = "nova.conf"
                 ) -> tuple[DeviceSpec, ...]:
    """Every ``device_spec`` value (JSON: one spec or a list), as nova's Whitelist reads them."""
    specs: list[DeviceSpec] = []
    for number, value in enumerate(values, 1):
        try:
            data = json.loads(value)
        except ValueError:
            raise InvalidDeviceSpec(file=file, index=number,
                                    reason=f"invalid JSON: {value!r}") from None
        entries = [data] if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise InvalidDeviceSpec(file=file, index=number,
                                    reason=f"expecting a JSON object or list: {value!r}")
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidDeviceSpec(file=file, index=number,
                                        reason=f"expecting a JSON object: {entry!r}")
            try:
                specs.append(parse_spec(entry, host))
            except _Bad as exc:
                raise InvalidDeviceSpec(file=file, index=number, reason=str(exc)) from None
    return tuple(specs)


def read_device_spec(path: str) -> list[str]:
    """``[pci] device_spec`` of a nova.conf, read as nova-compute reads it: an oslo.config
    MultiStrOpt with nova's deprecated names ([pci] passthrough_whitelist, [DEFAULT]
    pci_passthrough_whitelist)."""
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.MultiStrOpt("device_spec", default=[], deprecated_opts=[
        cfg.DeprecatedOpt("passthrough_whitelist", group="pci"),
        cfg.DeprecatedOpt("pci_passthrough_whitelist", group="DEFAULT")]), group="pci")
    conf(args=[], default_config_files=[path], use_env=False)
    return list(conf.pci.device_spec)


def assignable(specs: Iterable[DeviceSpec], dev: PciFunction) -> DeviceSpec | None:
    """nova Whitelist.device_assignable: the first spec that matches, or None."""
    return next((spec for spec in specs if spec.matches(dev)), None)
