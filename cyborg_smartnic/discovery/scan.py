"""``scan(root, options) -> Host``: read a host's SR-IOV NICs from sysfs into the frozen model.

Which functions count: a PF (a function with ``sriov_totalvfs``) of a catalogued model, or any
PF an explicit ``[smartnic] devices`` selector picks. VFs come from the PF's ``virtfn<N>`` links
(index N), never from guessing addresses. What is left out, and why, is listed in
``Host.skipped``: PFs not selected, VFs outside a selector's index ranges, catalogued NICs
without SR-IOV, uncatalogued SR-IOV NICs, and every device the scan could not read
consistently. Functions that are neither network functions nor picked by a selector (bridges,
GPUs, NVMe...) are ignored silently.

Robustness: sysfs changes under our feet (hot unplug, VF count change, rebind). A file or link
that vanishes, an unreadable file or a malformed value costs at most the one device (PF or VF)
it belongs to: it becomes a ``Skipped`` row with the reason, logged as a warning. Nothing
raises out of ``scan``.

Each function is read once, in address order; a PF's VFs are claimed when the PF is read, so
the listing does not look at them a second time. VFs inherit the PF's vendor and NUMA node
(the kernel copies both from the PF). ``scan_function`` runs the same per-function reading on
one address without listing the host, and ``scan_hugepages`` reads only the hugepage pools:
re-reads after a change to one PF or pool (``host apply``) cost that PF or pool, not the host.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from oslo_config import cfg

from cyborg_smartnic.catalog import VENDORS, Catalog, NicModel, parse_extra_model
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery.model import (
    Firmware,
    Host,
    HugepagePool,
    Link,
    PhysicalFunction,
    Skipped,
    VirtualFunction,
)
from cyborg_smartnic.discovery.pciids import PciIds, find_pci_ids
from cyborg_smartnic.discovery.physnets import PhysnetMap, parse_physnet_mappings
from cyborg_smartnic.discovery.selection import (
    KIND_ADDRESS,
    KIND_NETDEV,
    Selector,
    matching,
    parse_selectors,
)
from cyborg_smartnic.discovery.sysfs import (
    MalformedAttribute,
    SysfsReader,
    UnreadableAttribute,
    parse_bare_hex_id,
    parse_class,
    parse_hex_id,
    parse_int,
    parse_mac,
    parse_numa_node,
    parse_switch_id,
    parse_vpd_serial,
)
from cyborg_smartnic.errors import ConfigError, InvalidPciAddress, SmartNicError
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.traits import normalize

LOG = logging.getLogger(__name__)

NETWORK_CLASS = 0x02
MAX_VFS = 65535


@dataclass(frozen=True)
class ScanOptions:
    """Everything a scan needs besides the root; build it with ``scan_options_from_conf``."""

    selectors: tuple[Selector, ...] = ()
    physnets: PhysnetMap = field(default_factory=PhysnetMap)
    catalog: Catalog = field(default_factory=Catalog)
    use_devlink: bool = True
    hostname: str | None = None
    pci_ids_path: str | None = None


def scan_options_from_conf(conf: Any) -> ScanOptions:
    """Validate ``[smartnic]`` options into ``ScanOptions`` (``ConfigError`` on bad values)."""
    def opt(name: str) -> Any:
        try:
            return getattr(conf.smartnic, name)
        except cfg.Error as exc:  # oslo.config checks file values lazily, on first access
            reason = str(exc).rsplit("is not valid: ", 1)[-1]
            raise ConfigError(option=f"[smartnic] {name}", reason=reason) from exc

    extra = tuple(parse_extra_model(entry) for entry in opt("extra_models"))
    return ScanOptions(
        selectors=parse_selectors(list(opt("devices"))),
        physnets=parse_physnet_mappings(list(opt("physical_device_mappings"))),
        catalog=Catalog().with_extra(extra),
        use_devlink=bool(opt("use_devlink")),
        hostname=opt("hostname") or None,
        pci_ids_path=opt("pci_ids_path") or None,
    )


def scan(root: Path | str, options: ScanOptions | None = None, *,
         reader: SysfsReader | None = None) -> Host:
    """Scan the host whose filesystem root is ``root`` (``/`` for the running host)."""
    options = options or ScanOptions()
    reader = reader or SysfsReader(root)
    return _Scanner(reader, options).run()


@dataclass(frozen=True)
class FunctionScan:
    """What ``scan`` says about one PCI function: its PF (``None`` when it is not a PF that
    counts, or is not there) and the ``Skipped`` rows reading it produced (the PF's own and
    its VFs'), by address."""

    pf: PhysicalFunction | None
    skipped: tuple[Skipped, ...] = ()


def scan_function(root: Path | str, address: PciAddress | str,
                  options: ScanOptions | None = None, *,
                  reader: SysfsReader | None = None) -> FunctionScan:
    """Read the one function at ``address`` exactly as ``scan`` reads it, without listing the
    host: the cost is that PF and its VFs, not every PCI function (the executor re-reads a
    PF after each step of ``host apply``).

    Same code, options and robustness as ``scan``: a function that is absent or vanishes
    gives ``FunctionScan(None)`` or a ``Skipped`` row, never an exception. The one thing it
    cannot see is another PF's ``virtfn`` link claiming the same VF first (``scan`` reports
    that on the later PF). ``InvalidPciAddress`` when ``address`` is not a PCI address.
    """
    name = str(address if isinstance(address, PciAddress) else PciAddress.parse(address))
    scanner = _Scanner(reader or SysfsReader(root), options or ScanOptions())
    scanner.read_function(name)
    return FunctionScan(pf=scanner.pfs[0] if scanner.pfs else None,
                        skipped=tuple(sorted(scanner.skipped, key=lambda s: s.address)))


def scan_hugepages(root: Path | str, *,
                   reader: SysfsReader | None = None) -> tuple[HugepagePool, ...]:
    """Only the hugepage pools of ``scan(root).hugepages`` (global first, then per node)."""
    return _Scanner(reader or SysfsReader(root), ScanOptions(use_devlink=False)).hugepages()


class _Missing(Exception):
    """A required attribute is absent (the function may have vanished)."""

    def __init__(self, attribute: str) -> None:
        super().__init__(attribute)
        self.attribute = attribute


_Netdevs = tuple[str | None, list[str]]  # (uplink netdev, representor netdevs) of a PF
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Uplink:
    """What a PF's uplink netdev shows: link state, switch id, the compat eswitch mode file."""

    link: Link
    switch_id: str | None
    compat_mode: str | None


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A PF that counts, with what classification already read."""

    name: str
    base: str
    address: PciAddress
    vendor: str
    device: str
    total_text: str
    model: NicModel | None


class _Scanner:
    def __init__(self, reader: SysfsReader, options: ScanOptions) -> None:
        self.reader = reader
        self.options = options
        self.devices = reader.sys + "/bus/pci/devices/"
        self.tools = dl.tool_source(reader, options.use_devlink)
        self.skipped: list[Skipped] = []
        self.claimed: set[str] = set()
        self.pfs: list[PhysicalFunction] = []
        self._pciids: PciIds | None = None
        self.address_selected = {s.address for s in options.selectors
                                 if s.kind == KIND_ADDRESS}
        self.netdev_selectors = any(s.kind == KIND_NETDEV for s in options.selectors)

    # ------------------------------------------------------------------ helpers
    def skip(self, address: str, reason: str, anomaly: bool = True) -> None:
        if anomaly:
            LOG.warning("skipping %s: %s", address, reason)
        else:
            LOG.info("skipping %s: %s", address, reason)
        self.skipped.append(Skipped(address, reason))

    def required(self, path: str, attribute: str) -> str:
        text = self.reader.read(path)
        if text is None:
            raise _Missing(attribute)
        return text

    def gone_reason(self, base: str, attribute: str) -> str:
        if not self.reader.listdir(base):
            return "disappeared during the scan"
        return f"has no {attribute} file"

    def pciids(self) -> PciIds:
        if self._pciids is None:
            self._pciids = PciIds(find_pci_ids(self.options.pci_ids_path))
        return self._pciids

    # ------------------------------------------------------------------ host
    def run(self) -> Host:
        for name in sorted(self.reader.listdir(self.devices)):
            if name not in self.claimed:
                self.read_function(name)
        self.pfs.sort(key=lambda pf: pf.address)
        self.skipped.sort(key=lambda s: s.address)
        return Host(
            hostname=self.options.hostname or self.recorded_hostname() or socket.getfqdn(),
            physical_functions=tuple(self.pfs),
            skipped=tuple(self.skipped),
            hugepages=self.hugepages(),
            iommu_enabled=bool(self.reader.listdir(self.reader.sys + "/kernel/iommu_groups")),
            kernel_cmdline=self.reader.read(self.reader.path("proc/cmdline")),
        )

    def recorded_hostname(self) -> str | None:
        """A recorded tree (``cyborg-smartnic snapshot``) names its host in ``etc/hostname``;
        the running host's name always comes from the resolver."""
        if self.reader.is_live:
            return None
        try:
            return (self.reader.read(self.reader.path("etc/hostname")) or "").strip() or None
        except UnreadableAttribute:
            return None

    def read_function(self, name: str) -> None:
        """Read one function; whatever goes wrong costs that function only."""
        try:
            self.function(name)
        except (SmartNicError, OSError) as exc:
            self.skip(name, f"cannot be read: {exc}")
        except Exception as exc:  # a bug must cost one device, never the whole report
            LOG.exception("unexpected error while reading %s", name)
            self.skip(name, f"internal error while reading it: {exc!r}")

    def function(self, name: str) -> None:
        """Classify one PCI function and read it if it counts."""
        base = self.devices + name
        try:
            pci_class = parse_class(self.reader.read(base + "/class"))
            is_net: bool | None = pci_class >> 16 == NETWORK_CLASS
        except MalformedAttribute:
            is_net = None  # unknown: let the SR-IOV files decide
        if is_net is False and not self.options.selectors:
            return
        total_text = self.reader.read(base + "/sriov_totalvfs")
        if total_text is None:
            self.not_sriov(name, base, is_net)
        else:
            self.candidate_pf(name, base, is_net, total_text)

    def ids(self, base: str) -> tuple[str, str]:
        return (parse_hex_id(self.required(base + "/vendor", "vendor"), "vendor"),
                parse_hex_id(self.required(base + "/device", "device"), "device"))

    def address_of(self, name: str) -> PciAddress | None:
        try:
            return PciAddress.parse(name)
        except InvalidPciAddress:
            return None

    def not_sriov(self, name: str, base: str, is_net: bool | None) -> None:
        """A function without SR-IOV: only worth a line when someone expected a PF here."""
        address = self.address_of(name)
        if is_net is False:
            if address in self.address_selected:
                self.skip(name, "selected by [smartnic] devices but it is not an SR-IOV "
                                "network function")
            return
        if self.reader.link_name(base + "/physfn") is not None:
            return  # a VF of a PF that was not taken: that PF has its own line if it matters
        try:
            vendor, device = self.ids(base)
        except (MalformedAttribute, _Missing):
            return
        model = self.options.catalog.lookup_pf(vendor, device)
        if model is not None:
            self.skip(name, f"{model.name} ({vendor}:{device}) has no SR-IOV capability "
                            "(no sriov_totalvfs): enable SR-IOV in the NIC firmware and BIOS")
        elif address in self.address_selected or any(
                s.kind != KIND_NETDEV and s.matches(vendor, device, address, None)
                and not s.is_wildcard for s in self.options.selectors):
            self.skip(name, f"selected by [smartnic] devices but {vendor}:{device} has no "
                            "SR-IOV capability (no sriov_totalvfs)")

    # ------------------------------------------------------------------ PFs
    def candidate_pf(self, name: str, base: str, is_net: bool | None, total_text: str) -> None:
        """A function with SR-IOV: read it as a PF if it is a SmartNIC or selected."""
        address = self.address_of(name)
        if address is None:
            self.skip(name, "not a PCI address")
            return
        ids = self.pf_ids(name, base, address, is_net)
        if ids is None:
            return
        vendor, device = ids
        model = self.options.catalog.lookup_pf(vendor, device)
        candidate = _Candidate(name, base, address, vendor, device, total_text, model)
        chosen = self.choose(candidate, is_net)
        if chosen is None:
            return
        pf = self.read_pf_or_skip(candidate, *chosen)
        if pf is not None:
            self.pfs.append(pf)

    def pf_ids(self, name: str, base: str, address: PciAddress,
               is_net: bool | None) -> tuple[str, str] | None:
        """(vendor, device) of a PF, or None with a skip line when that means something."""
        try:
            return self.ids(base)
        except (MalformedAttribute, UnreadableAttribute) as exc:
            if is_net is not False or address in self.address_selected:
                prefix = "bad sysfs value: " if isinstance(exc, MalformedAttribute) else ""
                self.skip(name, f"{prefix}{exc}")
        except _Missing as exc:
            self.skip(name, self.gone_reason(base, exc.attribute))
        return None

    def choose(self, candidate: _Candidate, is_net: bool | None,
               ) -> tuple[Sequence[Selector], _Netdevs | None] | None:
        """Does the PF count? (the selectors that pick it, its netdevs if they were read to
        decide), or None: with selectors, only what they pick; without, catalogued models."""
        name, vendor, device, model = (candidate.name, candidate.vendor, candidate.device,
                                       candidate.model)
        selectors = self.options.selectors
        if not selectors:
            if model is None and is_net:
                _, dname = self.pciids().names(vendor, device)
                label = f"{vendor}:{device}" + (f" ({dname})" if dname else "")
                self.skip(name, f"{label} is not a catalogued SmartNIC model: select it in "
                                "[smartnic] devices or add it to [smartnic] extra_models",
                          anomaly=False)
            return None if model is None else ((), None)
        netdevs: _Netdevs | None = None
        if self.netdev_selectors:  # every selector that picks the PF adds its VF ranges
            netdevs = self.netdevs(candidate.base)
        picked = matching(selectors, vendor, device, candidate.address,
                          netdevs[0] if netdevs else None)
        if picked:
            return picked, netdevs
        if is_net is not False:
            label = f"{model.name} ({vendor}:{device})" if model else f"{vendor}:{device}"
            self.skip(name, f"{label} is not selected by [smartnic] devices "
                            f"({', '.join(s.text for s in selectors)})", anomaly=False)
        return None

    def read_pf_or_skip(self, candidate: _Candidate, picked: Sequence[Selector],
                        netdevs: _Netdevs | None) -> PhysicalFunction | None:
        """``read_pf``, with what makes the PF unreadable turned into its skip line."""
        name = candidate.name
        try:
            return self.read_pf(candidate, picked, netdevs)
        except MalformedAttribute as exc:
            self.skip(name, f"bad sysfs value: {exc}")
        except _Missing as exc:
            self.skip(name, self.gone_reason(candidate.base, exc.attribute))
        except UnreadableAttribute as exc:
            self.skip(name, str(exc))
        return None

    def netdevs(self, base: str) -> _Netdevs:
        """(uplink netdev, representor netdevs) under a PF's ``net/``."""
        names = sorted(self.reader.listdir(base + "/net"))
        if len(names) <= 1:
            return (names[0] if names else None), []
        uplinks: list[str] = []
        others: list[str] = []
        representors: list[str] = []
        for ifname in names:
            port = self.reader.read(f"{base}/net/{ifname}/phys_port_name")
            if dl.is_representor_port(port):
                representors.append(ifname)
            elif dl.is_uplink_port(port):
                uplinks.append(ifname)
            else:
                others.append(ifname)
        candidates = uplinks or others
        return (candidates[0] if candidates else None), representors

    def link(self, ndir: str) -> Link:
        reader = self.reader
        try:
            mac = parse_mac(reader.read(ndir + "/address"))
        except MalformedAttribute as exc:
            LOG.warning("%s: %s", ndir, exc)
            mac = None
        operstate = reader.read(ndir + "/operstate")
        speed = mtu = None
        if operstate == "up":
            speed = self.optional_int(ndir + "/speed", "speed", -1, 10**7)
            if speed is not None and speed < 0:
                speed = None
        mtu = self.optional_int(ndir + "/mtu", "mtu", 0, 1 << 20)
        return Link(mac=mac, operstate=operstate, speed_mbps=speed, mtu=mtu)

    def optional_int(self, path: str, attribute: str, low: int, high: int) -> int | None:
        text = self.reader.read(path)
        if text is None:
            return None
        try:
            return parse_int(text, attribute, low, high)
        except MalformedAttribute as exc:
            LOG.warning("%s: %s", path, exc)
            return None

    def optional_hex(self, path: str, attribute: str) -> str | None:
        text = self.reader.read(path)
        if text is None:
            return None
        try:
            return parse_hex_id(text, attribute)
        except MalformedAttribute as exc:
            LOG.warning("%s: %s", path, exc)
            return None

    def iommu_group(self, base: str) -> int | None:
        group = self.reader.link_name(base + "/iommu_group")
        return int(group) if group and group.isdigit() else None

    def names(self, vendor: str, device: str, model: NicModel | None) -> tuple[str, str, str]:
        """(short vendor, model name, model key) from the catalogue, else pci.ids, else ids."""
        if model is not None:
            return model.vendor, model.name, model.key
        vname, dname = self.pciids().names(vendor, device)
        short = VENDORS.get(vendor) or (normalize(vname.split()[0]).lower() if vname else vendor)
        name = dname or f"{vendor}:{device}"
        return short, name, normalize(name)

    def read_pf(self, candidate: _Candidate, picked: Sequence[Selector],
                netdevs: _Netdevs | None) -> PhysicalFunction:
        """Everything about one PF and its VFs; raises what makes the PF unreadable."""
        name, base, model = candidate.name, candidate.base, candidate.model
        total_vfs, num_vfs = self.sriov_counts(candidate)
        numa_node = self.lenient(
            name, lambda: parse_numa_node(self.reader.read(base + "/numa_node")))
        driver = self.reader.link_name(base + "/driver")
        uplink, representors = netdevs if netdevs is not None else self.netdevs(base)
        if uplink is None and driver is not None:
            LOG.warning("%s: PF bound to %s has no netdev: physnet by name and link state "
                        "unavailable", name, driver)
        uplink_facts = self.uplink_facts(base, uplink)
        info = self.tools.info(name)
        cpu_mode = self.tools.cpu_mode(name) if model is not None and model.dpu else None
        vendor, device = candidate.vendor, candidate.device
        short_vendor, model_name, model_key = self.names(vendor, device, model)
        return PhysicalFunction(
            address=candidate.address, vendor_id=vendor, device_id=device,
            subsystem_vendor_id=self.optional_hex(base + "/subsystem_vendor",
                                                  "subsystem_vendor"),
            subsystem_device_id=self.optional_hex(base + "/subsystem_device",
                                                  "subsystem_device"),
            vendor=short_vendor, model=model_name, model_key=model_key, driver=driver,
            numa_node=numa_node, netdev=uplink, link=uplink_facts.link,
            iommu_group=self.iommu_group(base),
            eswitch_mode=self.eswitch_mode(name, driver, model, cpu_mode=cpu_mode,
                                           uplink=uplink_facts, representors=len(representors)),
            firmware=Firmware(version=dl.firmware_version(info) or self.sysfs_fw_version(base),
                              mode=dl.ddp_mode(info) or cpu_mode),
            physnet=self.options.physnets.lookup(candidate.address, uplink),
            total_vfs=total_vfs, num_vfs=num_vfs, vf_device_id=self.vf_device_id(name, base),
            serial=self.serial(base, driver, info), representors=tuple(representors),
            # last (arguments run in order): reading the VFs claims them, nothing may fail after
            virtual_functions=self.read_vfs(name, base, vendor, numa_node, picked))

    def sriov_counts(self, candidate: _Candidate) -> tuple[int, int]:
        """(sriov_totalvfs, sriov_numvfs); more enabled than possible is a bad value."""
        total_vfs = parse_int(candidate.total_text, "sriov_totalvfs", 0, MAX_VFS)
        num_vfs = parse_int(self.required(candidate.base + "/sriov_numvfs", "sriov_numvfs"),
                            "sriov_numvfs", 0, MAX_VFS)
        if num_vfs > total_vfs:
            raise MalformedAttribute(attribute="sriov_numvfs", value=str(num_vfs),
                                     reason=f"exceeds sriov_totalvfs {total_vfs}")
        return total_vfs, num_vfs

    @staticmethod
    def lenient(name: str, parse: Callable[[], _T]) -> _T | None:
        """A value the PF can do without: a bad one is logged and reads as unknown."""
        try:
            return parse()
        except MalformedAttribute as exc:
            LOG.warning("%s: %s", name, exc)
            return None

    def vf_device_id(self, name: str, base: str) -> str | None:
        text = self.reader.read(base + "/sriov_vf_device")
        if text is None:
            return None
        return self.lenient(name, lambda: parse_bare_hex_id(text, "sriov_vf_device"))

    def uplink_facts(self, base: str, uplink: str | None) -> _Uplink:
        """Link state, switch id and the compat eswitch mode file of the PF's uplink."""
        if uplink is None:
            return _Uplink(Link(), None, None)
        ndir = f"{base}/net/{uplink}"
        link = self.link(ndir)
        switch_id = parse_switch_id(self.reader.read(ndir + "/phys_switch_id"))
        return _Uplink(link, switch_id, self.reader.read(ndir + "/compat/devlink/mode"))

    def eswitch_mode(self, name: str, driver: str | None, model: NicModel | None, *,
                     cpu_mode: str | None, uplink: _Uplink, representors: int) -> str | None:
        """devlink's answer where the model has an eswitch, else what sysfs shows; none when
        unbound or when the DPU's Arm side owns the eswitch."""
        if driver is None or cpu_mode == dl.FW_DPU:
            return None
        eswitch = None
        if model is None or model.switchdev:
            eswitch = self.tools.eswitch_mode(name)
        if eswitch is None:
            eswitch = dl.eswitch_from_sysfs(uplink.compat_mode, uplink.switch_id, representors)
        return eswitch

    def serial(self, base: str, driver: str | None, info: dl.DevlinkInfo | None) -> str | None:
        """The board serial from devlink, else from the VPD (readable only with a driver)."""
        if info is not None and info.serial:
            return info.serial
        if driver is None:
            return None
        return parse_vpd_serial(self.reader.read_bytes(base + "/vpd"))

    def sysfs_fw_version(self, base: str) -> str | None:
        """mlx5 shows the running firmware as ``infiniband/mlx5_N/fw_ver``."""
        for ib in sorted(self.reader.listdir(base + "/infiniband")):
            version = self.reader.read(f"{base}/infiniband/{ib}/fw_ver")
            if version:
                return version
        return None

    # ------------------------------------------------------------------ VFs
    def read_vfs(self, pf_name: str, base: str, vendor: str, numa_node: int | None,
                 picked: Sequence[Selector]) -> tuple[VirtualFunction, ...]:
        vfs: list[VirtualFunction] = []
        seen: dict[str, str] = {}
        for index, (entry, target) in sorted(self.virtfn_links(pf_name, base).items()):
            if target in self.claimed or target in seen:
                first = seen.get(target, "another PF's virtfn link")
                self.skip(pf_name, f"{entry} -> {target} points to a VF already listed by "
                                   f"{first}; ignored")
                continue
            seen[target] = entry
            if not self.belongs(pf_name, target, index):
                continue
            self.claimed.add(target)
            if picked and not any(s.allows_vf(index) for s in picked):
                label = "selector" if len(picked) == 1 else "selectors"
                self.skip(target, f"VF index {index} not in {label} "
                                  f"{', '.join(s.text for s in picked)}", anomaly=False)
                continue
            vf = self.read_vf(pf_name, target, index, vendor, numa_node)
            if vf is not None:
                vfs.append(vf)
        return tuple(vfs)

    def virtfn_links(self, pf_name: str, base: str) -> dict[int, tuple[str, str]]:
        """VF index -> (link name, VF address) from the PF's ``virtfn<N>`` links; a malformed
        or repeated index is logged or skipped, the kernel's spelling wins a duplicate."""
        found: list[tuple[int, bool, str]] = []
        for entry in self.reader.listdir(base):
            if not entry.startswith("virtfn"):
                continue
            digits = entry[6:]
            if not digits.isdigit() or len(digits) > 5:
                LOG.warning("%s: ignoring malformed link %s", pf_name, entry)
                continue
            index = int(digits)
            found.append((index, entry != f"virtfn{index}", entry))
        links: dict[int, tuple[str, str]] = {}
        for index, _, entry in sorted(found):
            target = self.reader.link_name(f"{base}/{entry}")
            if target is None:
                continue  # removed between listing and reading: the VF is going away
            if index in links:
                kept_entry, kept = links[index]
                self.skip(pf_name, f"{entry} -> {target} repeats VF index {index} "
                                   f"(kept {kept_entry} -> {kept})")
                continue
            links[index] = (entry, target)
        return links

    def belongs(self, pf_name: str, name: str, index: int) -> bool:
        """Does the VF's ``physfn`` link point back at this PF? (Else: skipped, with why.)"""
        base = self.devices + name
        try:
            physfn = self.reader.link_name(base + "/physfn")
            if physfn == pf_name:
                return True
            if physfn is None and not self.reader.listdir(base):
                self.skip(name, f"virtfn{index} of {pf_name} points to a function that is not "
                                "there (removed during the scan?)")
            else:
                self.skip(name, f"virtfn{index} of {pf_name}, but its physfn link "
                                f"{'is missing' if physfn is None else 'is ' + physfn}")
        except UnreadableAttribute as exc:
            self.skip(name, f"VF {index} of {pf_name}: {exc}")
        return False

    def read_vf(self, pf_name: str, name: str, index: int, vendor: str,
                numa_node: int | None) -> VirtualFunction | None:
        base = self.devices + name
        reader = self.reader
        try:
            address = PciAddress.parse(name)
            device = parse_hex_id(self.required(base + "/device", "device"), "device")
            driver = reader.link_name(base + "/driver")
            iommu_group = self.iommu_group(base)
            netdev = master = None
            link = Link()
            ifnames = reader.listdir(base + "/net")
            if ifnames:
                netdev = min(ifnames)
                ndir = f"{base}/net/{netdev}"
                link = self.link(ndir)
                master = reader.link_name(ndir + "/master")
        except _Missing as exc:
            self.skip(name, f"VF {index} of {pf_name} {self.gone_reason(base, exc.attribute)}")
            return None
        except (MalformedAttribute, UnreadableAttribute, InvalidPciAddress) as exc:
            self.skip(name, f"VF {index} of {pf_name}: {exc}")
            return None
        return VirtualFunction(address=address, index=index, vendor_id=vendor,
                               device_id=device, driver=driver, netdev=netdev, link=link,
                               iommu_group=iommu_group, numa_node=numa_node,
                               netdev_master=master)

    # ------------------------------------------------------------------ host-wide
    def hugepages(self) -> tuple[HugepagePool, ...]:
        pools: list[HugepagePool] = []
        node_root = self.reader.sys + "/devices/system/node"
        dirs: list[tuple[int | None, str]] = [(None, self.reader.sys + "/kernel/mm/hugepages")]
        for entry in self.reader.listdir(node_root):
            if entry.startswith("node") and entry[4:].isdigit():
                dirs.append((int(entry[4:]), f"{node_root}/{entry}/hugepages"))
        for node, directory in dirs:
            for entry in self.reader.listdir(directory):
                if not (entry.startswith("hugepages-") and entry.endswith("kB")
                        and entry[10:-2].isdigit()):
                    continue
                path = f"{directory}/{entry}"
                try:
                    values = [parse_int(self.reader.read(f"{path}/{n}"), n, 0, 1 << 40) for n in
                              ("nr_hugepages", "free_hugepages", "surplus_hugepages")]
                except (MalformedAttribute, UnreadableAttribute) as exc:
                    LOG.warning("ignoring hugepage pool %s: %s", path, exc)
                    continue
                pools.append(HugepagePool(numa_node=node, size_kb=int(entry[10:-2]),
                                          total=values[0], free=values[1], surplus=values[2]))
        pools.sort(key=lambda p: (-1 if p.numa_node is None else p.numa_node, p.size_kb))
        return tuple(pools)
