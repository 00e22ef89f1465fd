"""Firmware settings as plan steps: mlx5/BlueField NV config and the E810 DDP package (pure).

A firmware setting is two things: a persistent value (an mlx5 NV config parameter written
with ``mstconfig``/``mlxconfig``, or the ``ice.pkg`` file ice loads at probe) and its
activation (a firmware reset, a driver reload, or a reboot). Activation takes the device
down, so the plan says how far (``disruption``) and which PFs and VFs it takes with it; the
rest of a PF's plan is made against the PF as it will be afterwards (no VFs, the new VF
limit, eswitch back to legacy), or, when only a reboot activates it, after the reboot
(``host apply --resume``).

The facts (NV values now and at next boot, supported reset levels) come from the tools on the
running host or from what a snapshot recorded: ``devlink.nv_query`` (``mstconfig -e q``; a
recording of ``q`` without ``-e`` is read too) and ``devlink.reset_query``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from cyborg_smartnic.catalog import Catalog, NicModel
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery.model import ESWITCH_LEGACY, Host, PhysicalFunction
from cyborg_smartnic.discovery.sysfs import SysfsReader
from cyborg_smartnic.host import guard
from cyborg_smartnic.host.config import DeviceConfig
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.steps import (
    DISRUPTION_DRIVER,
    DISRUPTION_FW_RESET,
    DISRUPTION_REBOOT,
    FW_RESET,
    INSTALL_DDP,
    MANUAL,
    REBOOT,
    RELOAD_DRIVER,
    SET_ESWITCH_MODE,
    SET_NUMVFS,
    SET_NV_CONFIG,
    Step,
    Value,
)

LOG = logging.getLogger(__name__)

FW_DPU = dl.FW_DPU
FW_NIC = dl.FW_NIC
MAX_NV_VFS = 1024  # mlx5 firmware caps NUM_OF_VFS well below this (127 per PF on CX-6 Dx)
# The closed table of NV parameters this tool writes, and the values each may take. The
# privileged entry point validates against the same table.
NV_KEYS: dict[str, frozenset[int] | range] = {
    "SRIOV_EN": frozenset({0, 1}),
    "NUM_OF_VFS": range(0, MAX_NV_VFS + 1),
    "INTERNAL_CPU_MODEL": frozenset({0, 1}),
    "INTERNAL_CPU_PAGE_SUPPLIER": frozenset({0, 1}),
    "INTERNAL_CPU_ESWITCH_MANAGER": frozenset({0, 1}),
    "INTERNAL_CPU_IB_VPORT0": frozenset({0, 1}),
    "INTERNAL_CPU_OFFLOAD_ENGINE": frozenset({0, 1}),
}
# BlueField operating mode: NVIDIA's BlueField DPU docs ("Modes of Operation"). A mode change
# moves the eswitch between the Arm cores and the host: it needs a host power cycle.
BLUEFIELD_MODES: dict[str, dict[str, int]] = {
    FW_DPU: {"INTERNAL_CPU_MODEL": 1, "INTERNAL_CPU_PAGE_SUPPLIER": 0,
             "INTERNAL_CPU_ESWITCH_MANAGER": 0, "INTERNAL_CPU_IB_VPORT0": 0,
             "INTERNAL_CPU_OFFLOAD_ENGINE": 0},
    FW_NIC: {"INTERNAL_CPU_MODEL": 1, "INTERNAL_CPU_PAGE_SUPPLIER": 1,
             "INTERNAL_CPU_ESWITCH_MANAGER": 1, "INTERNAL_CPU_IB_VPORT0": 1,
             "INTERNAL_CPU_OFFLOAD_ENGINE": 1},
}
REBOOT_KEYS = frozenset(BLUEFIELD_MODES[FW_DPU])

# E810 DDP packages: where distributions and Intel's downloads put them, and where ice looks
# first (the kernel's firmware loader tries /lib/firmware/updates before /lib/firmware).
DDP_SOURCE_DIRS = ("lib/firmware/intel/ice/ddp", "lib/firmware/intel/ice/ddp-comms",
                   "lib/firmware/intel/ice/ddp-wireless_edge")
DDP_TARGET_DIR = "lib/firmware/updates/intel/ice/ddp"
DDP_TARGET = "ice.pkg"
DDP_FILE_RE = re.compile(r"ice(?:_(?P<kind>[a-z_]+))?-(?P<version>\d+(?:\.\d+){1,3})\.pkg")
DDP_DRIVER = "ice"
OS_DEFAULT = "os_default"

_NV_LINE = re.compile(r"^\s*\*?\s*(?P<key>[A-Z][A-Z0-9_]+)\s+(?P<values>\S+(?:\s+\S+){0,2})\s*$")
_NV_VALUE = re.compile(r"^(?:[A-Za-z_]+)?\((?P<num>\d+)\)$|^(?P<plain>\d+)$")
_RESET_LEVEL = re.compile(r"^\s*(?P<level>\d+)\s*:.*-\s*(?P<answer>Supported|Not Supported)",
                          re.IGNORECASE)


# ---------------------------------------------------------------------------- facts
@dataclass(frozen=True, slots=True)
class NvValue:
    """One NV parameter: the value the firmware runs with and the one it takes at next boot
    (or firmware reset). ``mstconfig q`` without ``-e`` shows only the latter."""

    current: int | None
    next_boot: int | None

    @property
    def pending(self) -> bool:
        return self.next_boot is not None and self.current != self.next_boot


@dataclass(frozen=True, slots=True)
class FirmwareFacts:
    nv: Mapping[str, NvValue] = field(default_factory=dict)
    reset_level3: bool | None = None  # mlxfwreset level 3 supported; None: not known
    tool: str | None = None  # which NV tool answered (mstconfig, mlxconfig, recorded)


def parse_nv_value(text: str) -> int | None:
    """``EMBEDDED_CPU(1)`` / ``True(1)`` / ``8`` -> the number; anything else -> None."""
    match = _NV_VALUE.match(text.strip())
    if match is None:
        return None
    return int(match["num"] if match["num"] is not None else match["plain"])


def parse_nv(text: str) -> dict[str, NvValue]:
    """``mstconfig [-e] -d <addr> q``: one value per key (next boot), or default, current and
    next boot with ``-e`` (a leading ``*`` marks a changed one)."""
    out: dict[str, NvValue] = {}
    header_seen = False
    for line in text.splitlines():
        if line.strip().startswith("Configurations:"):
            header_seen = True
            continue
        if not header_seen:
            continue
        match = _NV_LINE.match(line)
        if match is None:
            continue
        values = [parse_nv_value(v) for v in match["values"].split()]
        if len(values) == 3:
            out[match["key"]] = NvValue(values[1], values[2])
        elif len(values) == 1:
            out[match["key"]] = NvValue(values[0], values[0])
    return out


def parse_reset_levels(text: str) -> bool | None:
    """``mlxfwreset -d <addr> q``: is level 3 (driver restart and PCI reset) supported?"""
    for line in text.splitlines():
        match = _RESET_LEVEL.match(line)
        if match and match["level"] == "3":
            return match["answer"].lower() == "supported"
    return None


def read_facts(root: str, address: str) -> FirmwareFacts:
    """The facts for one PF: live tools on the running host, recorded files elsewhere
    (``devlink.nv_query`` and ``devlink.reset_query``)."""
    source = dl.tool_source(SysfsReader(root))
    nv = source.answer(dl.nv_query(address))
    levels = source.answer(dl.reset_query(address))
    return FirmwareFacts(parse_nv(nv) if nv else {},
                         parse_reset_levels(levels) if levels else None,
                         source.origin(dl.NV_TOOL) if nv else None)


def read_host_facts(root: str, host: Host, catalog: Catalog | None = None
                    ) -> dict[str, FirmwareFacts]:
    """Facts for every PF whose model has NV config (others have nothing to read)."""
    models = catalog or Catalog()
    out = {}
    for pf in host.physical_functions:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if model is not None and model.nv_config:
            out[str(pf.address)] = read_facts(root, str(pf.address))
    return out


# ---------------------------------------------------------------------------- DDP packages
@dataclass(frozen=True, slots=True)
class DdpPackage:
    directory: str  # one of DDP_SOURCE_DIRS
    name: str  # the file name
    mode: str  # os_default / comms / wireless_edge, as discovery names the running package


def ddp_mode_of(name: str) -> str | None:
    match = DDP_FILE_RE.fullmatch(name)
    if match is None:
        return None
    return match["kind"] or OS_DEFAULT


def ddp_packages(root: str) -> tuple[DdpPackage, ...]:
    """Every DDP package file under ``root``'s source directories, newest version last."""
    found: list[tuple[tuple[int, ...], DdpPackage]] = []
    for directory in DDP_SOURCE_DIRS:
        try:
            names = sorted(os.listdir(os.path.join(root, directory)))
        except OSError:
            continue
        for name in names:
            mode = ddp_mode_of(name)
            path = os.path.join(root, directory, name)
            if mode is None or os.path.islink(path) or not os.path.isfile(path):
                continue
            version = tuple(int(p) for p in name.rsplit("-", 1)[1][:-4].split("."))
            found.append((version, DdpPackage(directory, name, mode)))
    return tuple(package for _, package in sorted(found, key=lambda item: item[0]))


def choose_ddp(root: str, mode: str, named: str | None = None) -> DdpPackage | str:
    """The package for ``mode`` (its newest version), or the operator's ``named`` file; a
    string says why there is none."""
    packages = ddp_packages(root)
    if named is not None:
        match = next((p for p in packages if p.name == named), None)
        return match or (f"DDP package {named!r} not found in "
                         f"{', '.join('/' + d for d in DDP_SOURCE_DIRS)}")
    matches = [p for p in packages if p.mode == mode]
    if matches:
        return matches[-1]
    return (f"no {mode} DDP package (ice{'' if mode == OS_DEFAULT else '_' + mode}-*.pkg) in "
            f"{', '.join('/' + d for d in DDP_SOURCE_DIRS)}: install it (Intel's download or "
            f"the distribution's firmware package) first")


# ---------------------------------------------------------------------------- planning
@dataclass(frozen=True, slots=True)
class FirmwarePlan:
    """What firmware needs before the per-PF steps, and the host the rest is planned on."""

    steps: tuple[Step, ...] = ()  # run first (NV writes, installs, resets, reloads)
    host: Host | None = None  # the host as the activations leave it (None: unchanged)
    held: Mapping[str, str] = field(default_factory=dict)  # PF -> why its steps wait
    reboot: Step | None = None  # the last step, when something needs a reboot
    notes: tuple[str, ...] = ()


def plan_firmware(pairs: tuple[tuple[DeviceConfig, PhysicalFunction], ...], current: Host,
                  in_use: InUse, models: Catalog, facts: Mapping[str, FirmwareFacts], *,
                  root: str | None = None) -> FirmwarePlan:
    """The firmware steps host.yaml asks for, in order: NV writes per adapter, then its
    firmware reset (or a reboot at the very end); the ice DDP install and one reload of ice.

    ``root`` is where DDP packages are looked for (None: no package can be chosen).
    """
    acc = _Acc(current, in_use, facts)
    steps, notes, held, changed, reboot_for = (acc.steps, acc.notes, acc.held, acc.changed,
                                               acc.reboot_for)
    adapters: dict[str, list[tuple[DeviceConfig, PhysicalFunction, NicModel]]] = {}
    for device, pf in pairs:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if model is not None and model.nv_config:
            adapters.setdefault(_adapter(pf), []).append((device, pf, model))
    for adapter, members in adapters.items():
        acc.adapter(adapter, members)
    ddp = [(d, pf) for d, pf in pairs if _model_ddp(models, pf) and (
        (d.firmware_mode and d.firmware_mode != pf.firmware.mode)
        or (d.ddp_package and ddp_mode_of(d.ddp_package) != pf.firmware.mode))]
    if ddp:
        acc.ddp(ddp, root)
    for device, pf in pairs:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if device.firmware_mode and model is not None and not model.ddp and not (
                model.dpu and model.nv_config) and device.firmware_mode != pf.firmware.mode:
            steps.append(Step(MANUAL, str(pf.address), pf=str(pf.address),
                                from_value=pf.firmware.mode, to_value=device.firmware_mode,
                                reason=f"{model.name} has no firmware mode this tool sets: "
                                       f"use the vendor's tool, then reboot"))
    reboot = None
    if reboot_for:
        reboot = Step(REBOOT, "host", from_value=None, to_value=None,
                        reason=f"activate the NV config of {', '.join(reboot_for)} (no "
                               f"firmware reset can); `host apply --resume` at boot "
                               f"finishes the plan",
                        disruption=DISRUPTION_REBOOT,
                        disturbs_pfs=tuple(str(p.address) for p in current.physical_functions),
                        destroys_vfs=_all_vfs(current.physical_functions))
        reboot = replace(reboot, refused=guard.refusal(in_use, reboot.destroys_vfs))
    host = None
    if changed:
        host = replace(current, physical_functions=tuple(
            changed.get(str(pf.address), pf) for pf in current.physical_functions))
    return FirmwarePlan(tuple(steps), host, held, reboot, tuple(notes))


def _adapter(pf: PhysicalFunction) -> str:
    """The PCI slot: every function of one adapter goes down with a firmware reset."""
    address = pf.address
    return f"{address.domain:04x}:{address.bus:02x}:{address.slot:02x}"


def _model_ddp(models: Catalog, pf: PhysicalFunction) -> bool:
    model = models.lookup_pf(pf.vendor_id, pf.device_id)
    return model is not None and model.ddp


def _all_vfs(pfs: tuple[PhysicalFunction, ...] | list[PhysicalFunction]) -> tuple[str, ...]:
    return tuple(str(vf.address) for pf in pfs for vf in pf.virtual_functions)


def wanted_nv(device: DeviceConfig, pf: PhysicalFunction, model: NicModel,
              facts: FirmwareFacts) -> dict[str, int]:
    """The NV values host.yaml needs on ``pf``: the BlueField mode keys for ``firmware_mode``,
    and SR-IOV with enough VFs when ``vf_count`` is over today's limit."""
    want: dict[str, int] = {}
    if model.dpu and device.firmware_mode in BLUEFIELD_MODES and (
            device.firmware_mode != pf.firmware.mode):
        want.update(BLUEFIELD_MODES[device.firmware_mode])
    count = device.vf_count
    sriov = facts.nv.get("SRIOV_EN")
    limit = facts.nv.get("NUM_OF_VFS")
    if count:
        limit_now = limit.next_boot if limit and limit.next_boot is not None else pf.total_vfs
        if (sriov is not None and sriov.next_boot == 0) or (sriov is None and not pf.total_vfs):
            want["SRIOV_EN"] = 1
        if count > pf.total_vfs or count > limit_now:
            want["SRIOV_EN"] = 1
            want["NUM_OF_VFS"] = max(count, limit_now)
    return want


@dataclass
class _Acc:
    """What ``plan_firmware`` collects; mutable only while planning."""

    current: Host
    in_use: InUse
    facts: Mapping[str, FirmwareFacts]
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)
    changed: dict[str, PhysicalFunction] = field(default_factory=dict)
    reboot_for: list[str] = field(default_factory=list)

    def adapter(self, adapter: str,
                members: list[tuple[DeviceConfig, PhysicalFunction, NicModel]]) -> None:
        _plan_adapter(self, adapter, members)

    def ddp(self, wanted: list[tuple[DeviceConfig, PhysicalFunction]],
            root: str | None) -> None:
        _plan_ddp(self, wanted, root)


def _plan_adapter(acc: _Acc, adapter: str,
                  members: list[tuple[DeviceConfig, PhysicalFunction, NicModel]]) -> None:
    current, in_use, facts = acc.current, acc.in_use, acc.facts
    steps, changed, held, reboot_for = acc.steps, acc.changed, acc.held, acc.reboot_for
    activate: list[str] = []  # keys whose new value waits for activation
    writes: list[Step] = []
    reset_ok = True
    for device, pf, model in members:
        known = facts.get(str(pf.address), FirmwareFacts())
        want = wanted_nv(device, pf, model, known)
        for key, value in want.items():
            have = known.nv.get(key)
            if have is not None and have.current == value and have.next_boot == value:
                continue
            activate.append(key)
            if have is not None and have.next_boot == value:
                continue  # written already, waiting for activation
            writes.append(Step(SET_NV_CONFIG, str(pf.address), pf=str(pf.address),
                                 param=key, from_value=None if have is None else have.next_boot,
                                 to_value=value,
                                 reason="NV config (persistent; active after the firmware "
                                        "reset or reboot below)"))
        if not model.fw_reset or known.reset_level3 is False:
            reset_ok = False
    if not activate:
        return
    steps.extend(writes)
    pfs = [pf for pf in current.physical_functions if _adapter(pf) == adapter]
    names = [str(pf.address) for pf in pfs]
    if reset_ok and not REBOOT_KEYS.intersection(activate):
        first = members[0][1]
        destroys = _all_vfs(pfs)
        steps.append(Step(
            FW_RESET, str(first.address), pf=str(first.address), to_value="active",
            reason=f"activate the NV config: firmware reset of adapter {adapter} "
                   f"(takes down {', '.join(names)} and their VFs)",
            disruption=DISRUPTION_FW_RESET, disturbs_pfs=tuple(names), destroys_vfs=destroys,
            disruptive=True, refused=guard.refusal(in_use, destroys)))
        for pf in pfs:
            changed[str(pf.address)] = _after_reset(pf, facts.get(str(pf.address)),
                                                    {s.param: s.to_value for s in writes
                                                     if s.pf == str(pf.address)})
        return
    why = ("BlueField mode keys need a power cycle" if REBOOT_KEYS.intersection(activate)
           else "no firmware reset on this adapter")
    reboot_for.append(f"{adapter} ({why})")
    for name in names:
        held[name] = f"waits for the reboot that activates its firmware change ({why})"


def _after_reset(pf: PhysicalFunction, facts: FirmwareFacts | None,
                 written: Mapping[str | None, Value]) -> PhysicalFunction:
    """The PF as a firmware reset leaves it: no VFs, the NV VF limit, legacy eswitch."""
    known = facts or FirmwareFacts()
    limit = written.get("NUM_OF_VFS")
    if limit is None and "NUM_OF_VFS" in known.nv:
        limit = known.nv["NUM_OF_VFS"].next_boot
    sriov = written.get("SRIOV_EN", known.nv["SRIOV_EN"].next_boot
                        if "SRIOV_EN" in known.nv else 1)
    total = 0 if sriov == 0 else int(limit) if limit is not None else pf.total_vfs
    return replace(pf, num_vfs=0, total_vfs=total, virtual_functions=(),
                   eswitch_mode=ESWITCH_LEGACY if pf.eswitch_mode else pf.eswitch_mode,
                   flow_steering_mode=None)


def _plan_ddp(acc: _Acc, wanted: list[tuple[DeviceConfig, PhysicalFunction]],
              root: str | None) -> None:
    current, in_use, steps, changed, notes = (acc.current, acc.in_use, acc.steps, acc.changed,
                                              acc.notes)
    modes = sorted({str(d.firmware_mode or ddp_mode_of(str(d.ddp_package)))
                    for d, _ in wanted})
    named = sorted({d.ddp_package for d, _ in wanted if d.ddp_package})
    ice = [pf for pf in current.physical_functions if pf.driver == DDP_DRIVER]
    names = tuple(str(pf.address) for pf in ice)
    first = wanted[0][1]
    if len(modes) > 1:
        steps.append(Step(INSTALL_DDP, "ice.pkg", to_value=" / ".join(modes),
                            reason="install the ice DDP package",
                            refused=f"host.yaml asks for {' and '.join(modes)}: ice loads "
                                    f"one package for every port on the host"))
        return
    mode = modes[0]
    chosen: DdpPackage | str = (choose_ddp(root, mode, named[0] if named else None)
                                if root is not None
                                else "the DDP package directories were not read")
    if len(named) > 1:
        chosen = f"host.yaml names {' and '.join(named)}: ice loads one package for every port"
    elif not isinstance(chosen, str) and chosen.mode != mode:
        chosen = f"{chosen.name} holds the {chosen.mode} package, not {mode}"
    refused = chosen if isinstance(chosen, str) else None
    source = None if isinstance(chosen, str) else f"/{chosen.directory}/{chosen.name}"
    steps.append(Step(
        INSTALL_DDP, source or f"({mode} package)", from_value=first.firmware.mode,
        to_value=mode, refused=refused,
        reason=f"install as /{DDP_TARGET_DIR}/{DDP_TARGET}, where ice looks first (loaded at "
               f"the reload below)"))
    destroys = _all_vfs(ice)
    others = [str(pf.address) for pf in ice
              if str(pf.address) not in {str(p.address) for _, p in wanted}]
    steps.append(Step(
        RELOAD_DRIVER, DDP_DRIVER, param=None, to_value=mode, pf=None,
        reason=f"reload ice to load the {mode} package: takes down every ice port "
               f"({', '.join(names)}) and their VFs",
        disruption=DISRUPTION_DRIVER, disturbs_pfs=names, destroys_vfs=destroys,
        disruptive=True, refused=guard.refusal(in_use, destroys)))
    if others:
        notes.append(f"the ice reload also takes down {', '.join(others)} (not in host.yaml): "
                     f"their VFs are recreated with the count they had, on the default driver")
    for pf in ice:
        changed[str(pf.address)] = replace(
            pf, num_vfs=0, virtual_functions=(), eswitch_mode=ESWITCH_LEGACY,
            firmware=replace(pf.firmware, mode=mode))


def restore_steps(before: Host, after: Host, configured: set[str]) -> list[Step]:
    """Put back what an activation reset on PFs host.yaml does not configure: the eswitch
    mode (before the VFs: ice and mlx5 change it best with none) and the VF count."""
    out = []
    for pf in before.physical_functions:
        key = str(pf.address)
        now = next((p for p in after.physical_functions if str(p.address) == key), None)
        if key in configured or now is None:
            continue
        if pf.eswitch_mode is not None and now.eswitch_mode != pf.eswitch_mode:
            out.append(Step(SET_ESWITCH_MODE, f"pci/{key}", pf=key,
                              from_value=now.eswitch_mode, to_value=pf.eswitch_mode,
                              reason="restore the eswitch mode the firmware activation resets",
                              disruptive=True))
        if now.num_vfs == pf.num_vfs or not pf.num_vfs:
            continue
        out.append(Step(SET_NUMVFS, key, pf=key, from_value=now.num_vfs,
                          to_value=pf.num_vfs,
                          reason="recreate the VFs the firmware activation removes"))
    return out


# ---------------------------------------------------------------------------- hints
def firmware_hint(mode: str, host: Host, catalog: Catalog | None = None) -> str | None:
    """Which firmware change would give ``mode`` on this host, and what it disturbs: for
    ``profile check`` and ``host doctor`` when a profile asks for a firmware mode no PF has.
    None when no PF here can be put in that mode."""
    models = catalog or Catalog()
    ice_ports = [pf for pf in host.physical_functions if pf.driver == DDP_DRIVER]
    for pf in host.physical_functions:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if model is None or pf.firmware.mode == mode:
            continue
        if model.ddp and mode in dl.ICE_DDP_MODES.values():
            return (f"firmware_mode: {mode} on {pf.address} ({model.name}) in host.yaml would "
                    f"serve it: host apply installs the {mode} DDP package and reloads ice "
                    f"({DISRUPTION_DRIVER}: every ice port, {len(ice_ports)} here, loses "
                    f"its VFs)")
        if model.dpu and model.nv_config and mode in BLUEFIELD_MODES:
            return (f"firmware_mode: {mode} on {pf.address} ({model.name}) in host.yaml would "
                    f"serve it: host apply writes the INTERNAL_CPU_* NV config, then needs a "
                    f"{DISRUPTION_REBOOT} (host apply --resume finishes after it)")
    return None


def sriov_hint(host: Host, catalog: Catalog | None = None) -> str | None:
    """A PF whose firmware has SR-IOV off (no VFs possible) that NV config can turn on."""
    models = catalog or Catalog()
    for pf in host.physical_functions:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if model is not None and model.nv_config and pf.total_vfs == 0:
            how = DISRUPTION_FW_RESET if model.fw_reset else DISRUPTION_REBOOT
            return (f"{pf.address} ({model.name}) has SR-IOV off in firmware: a vf_count in "
                    f"host.yaml makes host apply set SRIOV_EN=1 and NUM_OF_VFS, then a {how}")
    return None
