"""Diff the desired host config against the discovered host into ordered steps (pure).

The order encodes what the kernel and the drivers demand (docs/host.md gives each rule
with its reason, under "How the plan is ordered, and what it refuses"): hugepages first;
firmware steps next (``host.firmware``: NV config and its firmware reset, the ice DDP
package and its reload, a reboot last); ``sriov_numvfs`` N->M goes through 0; ice changes
eswitch mode only with 0 VFs, mlx5 only with its VFs unbound; mlx5 ``flow_steering_mode``
only changes in legacy mode; VF drivers are bound after the VFs exist. A step that would
destroy or rebind a VF in use, or change a BlueField in DPU mode from the host, is kept in
the plan but marked refused, so the operator sees why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cyborg_smartnic.catalog import MLX5_DRIVER as MLX5
from cyborg_smartnic.catalog import Catalog, NicModel
from cyborg_smartnic.discovery import selection
from cyborg_smartnic.discovery.devlink import FLOW_STEERING_PARAM, FW_DPU
from cyborg_smartnic.discovery.model import (
    ESWITCH_LEGACY,
    ESWITCH_SWITCHDEV,
    Host,
    PhysicalFunction,
    VirtualFunction,
)
from cyborg_smartnic.errors import SourceError
from cyborg_smartnic.host import firmware, guard
from cyborg_smartnic.host.config import (
    DEFAULT_DRIVER,
    DeviceConfig,
    HostConfig,
    HugepageConfig,
    InvalidHostConfig,
)
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.ovs import plan as ovs_plan
from cyborg_smartnic.host.steps import (
    BIND_DRIVER,
    MANUAL,
    SET_DEVLINK_PARAM,
    SET_ESWITCH_MODE,
    SET_HUGEPAGES,
    SET_NUMVFS,
    Plan,
    Step,
)
from cyborg_smartnic.ranges import format_ranges


def plan(desired: HostConfig, current: Host, in_use: InUse,
         catalog: Catalog | None = None, ovs: ovs_plan.OvsInput | None = None, *,
         firmware_facts: Mapping[str, firmware.FirmwareFacts] | None = None,
         root: str | None = None) -> Plan:
    """The steps from ``current`` to ``desired``; never touches the host.

    ``ovs`` is the running Open vSwitch, for host.yaml's ``ovs:`` section (its steps come
    after every PF step). ``firmware_facts`` (NV config per PF, ``firmware.read_host_facts``)
    and ``root`` (where DDP packages are found) feed the firmware steps, which come first;
    the PF steps after them are planned on the host as the firmware activation leaves it,
    and a reboot, when one is needed, is the last step. Raises ``InvalidHostConfig`` when an
    entry names a PF (or an OVS uplink) this host does not have.
    """
    models = catalog or Catalog()
    pairs = match_devices(desired, current)
    steps: list[Step] = []
    notes: list[str] = list(in_use.notes)
    for pool in desired.hugepages:
        steps.extend(_hugepage_steps(pool, current))
        notes.extend(_hugepage_shortfall(pool, current))
    fw = firmware.plan_firmware(pairs, current, in_use, models, firmware_facts or {},
                                root=root)
    steps.extend(fw.steps)
    notes.extend(fw.notes)
    after = {str(pf.address): pf for pf in (fw.host or current).physical_functions}
    for device, pf in pairs:
        model = models.lookup_pf(pf.vendor_id, pf.device_id)
        if str(pf.address) in fw.held:
            notes.append(f"{pf.address}: {fw.held[str(pf.address)]}; `host apply --resume` "
                         f"plans its VFs, drivers and eswitch after the boot")
            continue
        steps.extend(_PfPlanner(device, after.get(str(pf.address), pf), in_use, model).run())
        if device.reserved_vfs:
            notes.append(f"{pf.address}: reserved VFs ({format_ranges(device.reserved_vfs)}) are "
                         f"held back from Cyborg (see `host conf` for the [smartnic] lines)")
    if fw.host is not None:
        steps.extend(firmware.restore_steps(current, fw.host,
                                            {str(pf.address) for _, pf in pairs}))
    if desired.ovs is not None:
        if ovs is None:
            notes.append("ovs: Open vSwitch was not read; its settings are not planned")
        else:
            ovs_steps, ovs_notes = ovs_plan.steps(desired.ovs, current, ovs, steps)
            steps.extend(ovs_steps)
            notes.extend(ovs_notes)
    if fw.reboot is not None:
        steps.append(fw.reboot)
    return Plan(tuple(steps), tuple(notes))


def match_devices(desired: HostConfig, current: Host,
                  ) -> tuple[tuple[DeviceConfig, PhysicalFunction], ...]:
    """Each config entry with the PFs it selects, by PF address; every miss is an error."""
    errors: list[SourceError] = []
    owner: dict[str, DeviceConfig] = {}
    pairs: list[tuple[DeviceConfig, PhysicalFunction]] = []
    skipped = {s.address: s.reason for s in current.skipped}
    for device in desired.devices:
        found = [pf for pf in current.physical_functions if selects(device, pf)]
        if not found:
            why = skipped.get(device.selector_text)
            errors.append(device.origin.error(
                f"no PF {device.selector_text!r} on this host"
                + (f" (discovery skipped it: {why})" if why else "")))
        for pf in found:
            key = str(pf.address)
            if key in owner:
                errors.append(device.origin.error(
                    f"PF {key} is also selected by the entry at line {owner[key].origin.line}"))
                continue
            owner[key] = device
            pairs.append((device, pf))
    if errors:
        raise InvalidHostConfig(tuple(errors))
    return tuple(sorted(pairs, key=lambda pair: pair[1].address))


def selects(device: DeviceConfig, pf: PhysicalFunction) -> bool:
    """Does this config entry pick ``pf`` (``select:`` uses the [smartnic] devices syntax)?"""
    if device.address is not None:
        return pf.address == device.address
    if device.netdev is not None:
        return pf.netdev == device.netdev
    if device.select is not None:
        return selection.parse_selector(device.select).matches(
            pf.vendor_id, pf.device_id, pf.address, pf.netdev)
    return False


def _hugepage_steps(want: HugepageConfig, current: Host) -> list[Step]:
    pool = next((p for p in current.hugepages
                 if p.numa_node == want.numa_node and p.size_kb == want.size_kb), None)
    if pool is None:
        sizes = sorted({p.size_kb for p in current.hugepages if p.numa_node == want.numa_node})
        where = "globally" if want.numa_node is None else f"on NUMA node {want.numa_node}"
        known = f" (sizes there: {', '.join(str(s) for s in sizes)} kB)" if sizes else ""
        return [Step(SET_HUGEPAGES, want.label, reason="reserve hugepages",
                       to_value=want.count, numa_node=want.numa_node, size_kb=want.size_kb,
                       refused=f"this host has no {want.size_kb} kB pool {where}{known}")]
    used = pool.total - pool.free
    target = max(want.count, used)  # never below the pages processes are using
    if target == pool.total:
        return []
    reason = "reserve hugepages" if target > pool.total else "release hugepages"
    if target != want.count:
        reason += f" down to the {used} in use"
    return [Step(SET_HUGEPAGES, want.label, reason=reason, from_value=pool.total,
                   to_value=target, numa_node=want.numa_node, size_kb=want.size_kb)]


def _hugepage_shortfall(want: HugepageConfig, current: Host) -> list[str]:
    """A note when host.yaml asks for fewer pages than are in use (the plan stops there)."""
    pool = next((p for p in current.hugepages
                 if p.numa_node == want.numa_node and p.size_kb == want.size_kb), None)
    if pool is None or want.count >= pool.total - pool.free:
        return []
    used = pool.total - pool.free
    return [f"{want.label}: host.yaml asks for {want.count} pages but {used} are in use; "
            f"they are kept, run the plan again once they are freed"]


@dataclass
class _PfPlanner:
    """Works through one PF; mutable only while planning, the result is frozen steps."""

    device: DeviceConfig
    pf: PhysicalFunction
    in_use: InUse
    model: NicModel | None
    steps: list[Step] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return str(self.pf.address)

    def run(self) -> list[Step]:
        """Tear down if needed, change modes, create, then get every VF its driver."""
        pf = self.pf
        vfs = {vf.index: vf for vf in pf.virtual_functions}
        target_count = self.device.vf_count if self.device.vf_count is not None else pf.num_vfs
        modes = self._mode_sequence()
        destroy = pf.num_vfs > 0 and (
            target_count != pf.num_vfs or (bool(modes) and pf.driver != MLX5))
        # VFs that exist but discovery left out die with the others: name them too
        unscanned = self.in_use.unscanned_of(self.addr)
        existing = (tuple(str(vf.address) for vf in vfs.values())
                    + tuple(vf.address for vf in unscanned))
        if destroy:
            self._set_numvfs(pf.num_vfs, 0, existing,
                             "go through 0: the kernel refuses N->M directly"
                             if target_count else "remove the VFs")
        unbound = (self._unbind_for_modes(vfs) if modes and not destroy and pf.num_vfs > 0
                   else set())
        self._change_modes(modes, () if destroy else existing)
        now = 0 if destroy else pf.num_vfs
        if target_count != now:
            self._set_numvfs(now, target_count, (), "create the VFs")
        if destroy:
            self._recreated_drivers(target_count, {i: vf.driver for i, vf in vfs.items()})
        else:
            unscanned_at = {vf.index: vf.address for vf in unscanned if vf.index is not None}
            self._kept_drivers(target_count, vfs, unbound, unscanned_at)
        return self.steps

    def _unbind_for_modes(self, vfs: dict[int, VirtualFunction]) -> set[int]:
        """mlx5 keeps its VFs through an eswitch mode change, unbound: the indices unbound."""
        unbound: set[int] = set()
        for index, vf in sorted(vfs.items()):
            if vf.driver is not None:
                self._bind(vf, index, vf.driver, None, "mlx5 changes eswitch mode only "
                           "with its VFs unbound")
                unbound.add(index)
        return unbound

    def _change_modes(self, modes: list[tuple[str, str]], alive: tuple[str, ...]) -> None:
        for kind, value in modes:
            if kind == SET_ESWITCH_MODE:
                self._eswitch(value, alive)
            else:
                self._flow_steering(value)

    def _recreated_drivers(self, count: int, previous: dict[int, str | None]) -> None:
        """After the VFs were destroyed and created again: the wanted drivers, else the
        driver each VF had before (autoprobe gives it the default)."""
        for index in range(count):
            want = self._wanted_driver(index)
            if want is not None:
                self._bind_new(index, want)
            elif previous.get(index) and previous[index] != self._default():
                self._bind(None, index, None, previous[index],
                           f"restore the driver VF {index} had before it was recreated")

    def _kept_drivers(self, count: int, vfs: dict[int, VirtualFunction], unbound: set[int],
                      unscanned_at: dict[int, str]) -> None:
        """VFs that survive: rebind where the driver differs (or was unbound for a mode
        change); VFs that are new or were not scanned get the wanted driver."""
        for index in range(count):
            want = self._wanted_driver(index)
            survivor = vfs.get(index)
            if survivor is not None:
                self._rebind_survivor(survivor, index, want, was_unbound=index in unbound)
            elif want is not None and index in unscanned_at:
                self._bind_unscanned(unscanned_at[index], index, want)
            elif want is not None:
                self._bind_new(index, want)

    def _rebind_survivor(self, vf: VirtualFunction, index: int, want: str | None, *,
                         was_unbound: bool) -> None:
        have = None if was_unbound else vf.driver
        goal = want or (vf.driver if was_unbound else None)
        if goal is not None and goal != have:
            self._bind(vf, index, have, goal,
                       "rebind after the eswitch mode change" if was_unbound and want is None
                       else f"VF {index} should use {goal}")

    def _bind_new(self, index: int, want: str) -> None:
        usual = " (the default: autoprobe usually binds it)" if want == self._default() else ""
        self._bind(None, index, None, want, f"new VF {index} should use {want}{usual}")

    # ----------------------------------------------------------------- decisions

    def _default(self) -> str | None:
        return self.model.vf_driver if self.model else None

    def _wanted_driver(self, index: int) -> str | None:
        driver = self.device.driver_for(index)
        if driver == DEFAULT_DRIVER:
            return self._default() or "(unknown default)"
        return driver

    def _dpu_refusal(self) -> str | None:
        if self.model is None or not self.model.dpu:
            return None
        mode = self.pf.firmware.mode
        if mode == FW_DPU:
            return (f"{self.model.name} is in DPU mode: its eswitch and VFs belong to the "
                    f"Arm side (ECPF); change them there, not from the host")
        if mode is None:
            return (f"cannot tell whether this {self.model.name} is in DPU or NIC mode "
                    f"(firmware mode unknown); refusing host-side eswitch/VF changes "
                    f"(check with `mstconfig -d {self.addr} q INTERNAL_CPU_MODEL`)")
        return None

    def _mode_sequence(self) -> list[tuple[str, str]]:
        """The eswitch modes and flow steering changes to pass through, in order."""
        want_mode = self.device.eswitch_mode
        mode = self.pf.eswitch_mode
        sequence: list[tuple[str, str]] = []
        fsm = self.device.flow_steering_mode
        if fsm is not None and fsm != self.pf.flow_steering_mode:
            if self.pf.driver != MLX5:
                self._refused(SET_DEVLINK_PARAM, f"pci/{self.addr}", "set flow steering",
                              f"flow_steering_mode is an mlx5 devlink parameter; "
                              f"{self.pf.driver or 'this PF'} has none",
                              param=FLOW_STEERING_PARAM, to_value=fsm)
            elif (self.pf.flow_steering_mode is None and mode == ESWITCH_SWITCHDEV
                  and want_mode in (None, ESWITCH_SWITCHDEV)):
                self.steps.append(Step(
                    MANUAL, f"pci/{self.addr}", to_value=fsm, pf=self.addr,
                    param=FLOW_STEERING_PARAM,
                    reason=f"current flow_steering_mode unknown and it only changes in legacy "
                           f"mode: check `devlink dev param show pci/{self.addr} name "
                           f"flow_steering_mode`; if it is not {fsm}, set eswitch_mode: "
                           f"legacy, apply, then switchdev again"))
            else:
                if mode == ESWITCH_SWITCHDEV:
                    sequence.append((SET_ESWITCH_MODE, ESWITCH_LEGACY))
                    mode = ESWITCH_LEGACY
                sequence.append((SET_DEVLINK_PARAM, fsm))
                if want_mode is None and self.pf.eswitch_mode == ESWITCH_SWITCHDEV:
                    want_mode = ESWITCH_SWITCHDEV
        if want_mode is not None and want_mode != mode:
            sequence.append((SET_ESWITCH_MODE, want_mode))
        return sequence

    # ----------------------------------------------------------------- steps

    def _refusal_for(self, destroys: tuple[str, ...]) -> str | None:
        return guard.refusal(self.in_use, destroys)  # the executor re-checks with it too

    def _set_numvfs(self, have: int, want: int, destroys: tuple[str, ...],
                    reason: str) -> None:
        refused = self._dpu_refusal()
        if refused is None and self.pf.driver is None:
            refused = "no PF driver is bound: the kernel cannot create VFs (ENOENT)"
        if refused is None and want > self.pf.total_vfs:
            refused = (f"{want} VFs asked but sriov_totalvfs is {self.pf.total_vfs} "
                       f"(the kernel answers ERANGE)")
        refused = refused or self._refusal_for(destroys)
        self.steps.append(Step(
            SET_NUMVFS, self.addr, reason=reason, from_value=have, to_value=want,
            pf=self.addr, disruptive=bool(destroys), destroys_vfs=destroys, refused=refused))

    def _bind(self, vf: VirtualFunction | None, index: int, have: str | None,
              want: str | None, reason: str) -> None:
        address = str(vf.address) if vf is not None else None
        disturbs = (address,) if address is not None and have is not None else ()
        refused = self._refusal_for(disturbs)
        if want == "(unknown default)":
            refused = refused or ("'default' VF driver unknown for this model; name the "
                                  "driver in vf_drivers")
        self.steps.append(Step(
            BIND_DRIVER, address or f"{self.addr} vf{index}", reason=reason,
            from_value=have, to_value=want, pf=self.addr, vf_index=index,
            disruptive=bool(disturbs), destroys_vfs=disturbs, refused=refused))

    def _bind_unscanned(self, address: str, index: int, want: str) -> None:
        """A VF that exists but was not scanned: its driver is unknown, so binding ``want``
        may rebind it; the in-use witness for it (discovery skipped it) refuses the step."""
        self.steps.append(Step(
            BIND_DRIVER, address, reason=f"VF {index} should use {want}", from_value=None,
            to_value=want, pf=self.addr, vf_index=index, disruptive=True,
            destroys_vfs=(address,),
            refused=self._refusal_for((address,)) or "discovery could not read this VF"))

    def _eswitch(self, want: str, alive: tuple[str, ...]) -> None:
        have = self.pf.eswitch_mode
        for step in self.steps:
            if step.kind == SET_ESWITCH_MODE:
                have = str(step.to_value)
        refused = self._dpu_refusal()
        if refused is None and want == ESWITCH_SWITCHDEV and not (
                self.model is not None and self.model.switchdev):
            refused = (f"{self.model.name if self.model else 'this model'} has no "
                       f"switchdev eswitch mode")
        self.steps.append(Step(
            SET_ESWITCH_MODE, f"pci/{self.addr}", reason=f"eswitch mode {want}",
            from_value=have, to_value=want, pf=self.addr, disruptive=True,
            destroys_vfs=alive, refused=refused or self._refusal_for(alive)))

    def _flow_steering(self, want: str) -> None:
        self.steps.append(Step(
            SET_DEVLINK_PARAM, f"pci/{self.addr}", reason="flow steering (legacy mode only)",
            from_value=self.pf.flow_steering_mode, to_value=want, pf=self.addr,
            param=FLOW_STEERING_PARAM, refused=self._dpu_refusal()))

    def _refused(self, kind: str, target: str, reason: str, refused: str,
                 **extra: object) -> None:
        self.steps.append(Step(kind, target, reason=reason, pf=self.addr, refused=refused,
                                 **extra))  # type: ignore[arg-type]
