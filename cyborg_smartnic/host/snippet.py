"""cyborg.conf ``[smartnic]`` and nova.conf ``[pci] device_spec`` lines from one host.yaml (pure).

host.yaml already says which PFs serve guests, which VFs are held back, which physical
network each PF is on and, per VF range, who schedules the VF: Cyborg (our pools) or Nova's
PCI tracker. Writing that twice by hand is how the two files drift apart and a VF ends up
claimed by both (operators report exactly that when Cyborg's VFs stay in Nova's whitelist).
So both files come from here:

* cyborg.conf: ``[smartnic] devices`` lists the Cyborg-owned VFs only; a PF whose VFs use
  more than one driver gets one pool per driver range, so a profile can ask for ``vfio-pci``.
* nova.conf: one ``device_spec`` per Nova-owned VF, by its exact PCI address (never a PF
  address or a vendor/product id, which would also match the VFs Cyborg owns), tagged with
  ``physical_network`` (Nova's PCI request for a ``direct``/``remote-managed`` port asks for
  the network's physnet) and ``remote_managed`` for a DPU-mode BlueField.

Nova needs no switchdev tag: it reads the VF's switchdev capability from libvirt and copies
it into the port's binding profile (nova/network/neutron.py ``_get_vf_pci_device_profile``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cyborg_smartnic.catalog import Catalog
from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host.config import (
    DEFAULT_DRIVER,
    OWNER_CYBORG,
    OWNER_NOVA,
    DeviceConfig,
    HostConfig,
)
from cyborg_smartnic.host.plan import match_devices
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.ranges import format_ranges

SERVICES = ("cyborg", "nova")


class VfsNotCreated(SmartNicError):
    msg_fmt = ("%(pf)s: host.yaml gives Nova VF(s) %(ranges)s, which do not exist yet and "
               "whose addresses the PF does not tell (no sriov_offset/sriov_stride); nova.conf "
               "names VFs by address: run `cyborg-smartnic host apply` first, then host conf "
               "again")


def vf_address(pf: PciAddress, offset: int, stride: int, index: int) -> PciAddress:
    """Where VF ``index`` will appear: routing id = PF's + offset + index * stride (the
    SR-IOV capability's First VF Offset and VF Stride, which the kernel shows as
    ``sriov_offset``/``sriov_stride``)."""
    rid = (pf.bus << 8 | pf.slot << 3 | pf.function) + offset + index * stride
    return PciAddress(pf.domain, rid >> 8 & 0xFF, rid >> 3 & 0x1F, rid & 0x7)


@dataclass(frozen=True, slots=True)
class VfOwner:
    """One VF of host.yaml and who schedules it."""

    pf: str
    index: int
    address: str | None  # None while the VF does not exist
    owner: str  # cyborg / nova / reserved


@dataclass(frozen=True, slots=True)
class HostConf:
    """Both files' lines, generated from one host.yaml."""

    source: str
    cyborg: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (section, ((key, value),))
    device_specs: tuple[dict[str, str], ...]  # nova.conf [pci] device_spec values, as data
    vfs: tuple[VfOwner, ...]
    predicted: tuple[str, ...] = ()  # VF addresses computed before the VFs exist

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "cyborg.conf": {section: dict(items) for section, items in self.cyborg},
            "nova.conf": {"pci": {"device_spec": [dict(s) for s in self.device_specs]}},
            "vfs": [{"pf": v.pf, "index": v.index, "address": v.address, "owner": v.owner,
                     "exists": v.address is not None and v.address not in self.predicted}
                    for v in self.vfs],
        }


def device_spec_line(spec: dict[str, str]) -> str:
    """One ``device_spec = {...}`` line: JSON, as nova's Whitelist parses each value."""
    return f"device_spec = {json.dumps(spec)}"


def generate(config: HostConfig, host: Host, catalog: Catalog | None = None,
             routing: dict[str, tuple[int, int]] | None = None) -> HostConf:
    """Split every VF host.yaml configures between Cyborg and Nova.

    ``routing`` maps a PF address to its (sriov_offset, sriov_stride), to name VFs that
    host apply has not created yet; a Nova-owned VF with neither an address nor routing
    raises ``VfsNotCreated`` (nova.conf can only name it by address)."""
    split = _Split(catalog or Catalog())
    for device, pf in match_devices(config, host):
        split.add(device, pf, (routing or {}).get(str(pf.address)))
    return HostConf(source=config.file, cyborg=split.cyborg_sections(),
                    device_specs=tuple(split.specs), vfs=tuple(split.vfs),
                    predicted=tuple(split.predicted))


@dataclass
class _Split:
    """Collects ``generate``'s answer PF by PF (mutable only while generating)."""

    models: Catalog
    devices: list[str] = field(default_factory=list)  # [smartnic] devices selectors
    mappings: list[str] = field(default_factory=list)  # physnet:PF
    pools: list[tuple[str, str, str | None]] = field(default_factory=list)  # name, sel., physnet
    specs: list[dict[str, str]] = field(default_factory=list)  # nova device_spec values
    vfs: list[VfOwner] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)  # VF addresses computed, not seen

    def add(self, device: DeviceConfig, pf: PhysicalFunction,
            route: tuple[int, int] | None) -> None:
        address = str(pf.address)
        count = device.vf_count if device.vf_count is not None else pf.num_vfs
        where = self.vf_addresses(pf, count, route)
        physnet = device.physnet or pf.physnet
        owners = {i: device.owner_of(i) for i in range(count)}
        self.vfs.extend(VfOwner(address, i, where.get(i), owner) for i, owner in owners.items())
        self.add_nova_specs(address, device, [i for i, o in owners.items() if o == OWNER_NOVA],
                            where, physnet)
        exposed = tuple(i for i, owner in owners.items() if owner == OWNER_CYBORG)
        if exposed:
            if physnet:
                self.mappings.append(f"{physnet}:{address}")
            self.add_cyborg_vfs(device, pf, exposed, whole=exposed == tuple(range(count)),
                                physnet=physnet)

    def vf_addresses(self, pf: PhysicalFunction, count: int,
                     route: tuple[int, int] | None) -> dict[int, str]:
        """VF index -> address: the scanned VFs, plus those computed from the routing."""
        where = {vf.index: str(vf.address) for vf in pf.virtual_functions}
        if route is not None:
            for index in range(count):
                if index not in where:
                    where[index] = str(vf_address(pf.address, route[0], route[1], index))
                    self.predicted.append(where[index])
        return where

    def add_nova_specs(self, address: str, device: DeviceConfig, nova: list[int],
                       where: dict[int, str], physnet: str | None) -> None:
        missing = [i for i in nova if i not in where]
        if missing:
            raise VfsNotCreated(pf=address, ranges=format_ranges(tuple(missing)))
        for index in nova:
            spec = {"address": where[index], "physical_network": physnet or ""}
            if device.remote_managed:
                spec["remote_managed"] = "true"
            self.specs.append(spec)

    def add_cyborg_vfs(self, device: DeviceConfig, pf: PhysicalFunction,
                       exposed: tuple[int, ...], *, whole: bool, physnet: str | None) -> None:
        """The PF's Cyborg VFs as a devices selector, and one pool per VF driver when they
        use several (a pool's VFs must share a driver to share a trait)."""
        address = str(pf.address)
        model = self.models.lookup_pf(pf.vendor_id, pf.device_id)
        by_driver: dict[str, list[int]] = {}
        for index in exposed:
            driver = device.driver_for(index) or DEFAULT_DRIVER
            if driver == DEFAULT_DRIVER and model and model.vf_driver:
                driver = model.vf_driver
            by_driver.setdefault(driver, []).append(index)
        self.devices.append(address if whole else f"{address}#{format_ranges(exposed)}")
        if len(by_driver) > 1:
            stem = pf.netdev or address
            for driver, indices in sorted(by_driver.items()):
                name = re.sub(r"[^A-Za-z0-9_]+", "_", f"{stem}_{driver}").strip("_")[:64]
                self.pools.append((name, f"{address}#{format_ranges(tuple(indices))}",
                                   physnet))

    def cyborg_sections(self) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
        """cyborg.conf: ``[smartnic]`` and one ``[smartnic_pool:NAME]`` per pool."""
        if not self.devices:
            return ()
        main = [("devices", ",".join(self.devices))]
        if self.mappings:
            main.append(("physical_device_mappings", ",".join(self.mappings)))
        if self.pools:
            main.append(("pools", ",".join(name for name, _, _ in self.pools)))
        sections = [("smartnic", tuple(main))]
        for name, selector, pool_physnet in self.pools:
            items = [("devices", selector)]
            if pool_physnet:
                items.append(("physnet", pool_physnet))
            sections.append((f"smartnic_pool:{name}", tuple(items)))
        return tuple(sections)


def cyborg_lines(conf: HostConf) -> list[str]:
    if not conf.cyborg:
        return ["# no VF of host.yaml is Cyborg's: leave smartnic out of cyborg-agent's "
                "[agent] enabled_drivers",
                "# (an empty [smartnic] devices would select every catalogued PF)"]
    lines: list[str] = []
    for section, items in conf.cyborg:
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in items]
    return lines


def nova_lines(conf: HostConf) -> list[str]:
    if not conf.device_specs:
        return ["# no VF of host.yaml is Nova's: [pci] device_spec must match none of them"]
    lines = ["[pci]"]
    if any(spec["address"] in conf.predicted for spec in conf.device_specs):
        lines.insert(0, "# some VFs do not exist yet: their addresses are computed from the "
                        "PF's sriov_offset/sriov_stride; `host doctor --nova-conf` checks them "
                        "after host apply")
    return lines + [device_spec_line(spec) for spec in conf.device_specs]


def ini_text(conf: HostConf, services: tuple[str, ...] = SERVICES) -> str:
    """What ``host conf`` prints by default: each file's lines under a comment naming it."""
    lines = [f"# generated by `cyborg-smartnic host conf {conf.source}`"]
    if "cyborg" in services:
        if len(services) > 1:
            lines.append("# --- cyborg.conf (cyborg-agent): the VFs Cyborg schedules")
        lines += cyborg_lines(conf)
    if "nova" in services:
        if len(services) > 1:
            lines += ["", "# --- nova.conf (nova-compute): the VFs Nova's PCI tracker "
                          "schedules"]
        lines += nova_lines(conf)
    return "\n".join(lines) + "\n"


def cyborg_conf(config: HostConfig, host: Host, catalog: Catalog | None = None) -> str:
    """INI text of the cyborg.conf part alone (``host conf --service cyborg``)."""
    return ini_text(generate(config, host, catalog), ("cyborg",))
