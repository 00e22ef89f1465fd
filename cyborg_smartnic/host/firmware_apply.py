"""Runs the firmware steps of a plan (``host.firmware``) through the privileged entry points.

Each step first reads what it would change and answers "already ..." when there is nothing
to do, so a second ``host apply`` (or one after a power loss between steps) converges: an NV
value already set for the next boot is not written again, a firmware reset with nothing
pending is not run, a DDP package already in place is not copied, and ice is not reloaded
when every port already runs the wanted package. After a reset or a reload it waits for the
PFs to come back and checks the result (the new VF limit, the package ice loaded).

Firmware steps are not rolled back: the old NV values would only be pending for the next
reset, and a reset or reload cannot be undone. A failure after one leaves the host as the
next ``host plan`` reads it, and ``host apply`` continues from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.host import firmware, firmware_privileged
from cyborg_smartnic.host.runner import Handler, StepFailed, StepRunner
from cyborg_smartnic.host.steps import FW_RESET, INSTALL_DDP, RELOAD_DRIVER, SET_NV_CONFIG, Step

LOG = logging.getLogger(__name__)


@dataclass
class FirmwareRunner(StepRunner):
    """What the executor hands a firmware step to; ``facts`` re-reads one PF's NV config."""

    root: str
    scan: Callable[[], Host]
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    facts: Callable[[str], firmware.FirmwareFacts] | None = None
    timeout: float = 300.0  # how long a PF may take to come back after a reset or reload
    poll_interval: float = 1.0

    def read_facts(self, address: str) -> firmware.FirmwareFacts:
        return (self.facts or (lambda a: firmware.read_facts(self.root, a)))(address)

    def handlers(self) -> Mapping[str, Handler]:
        # not rolled back (undo_for gives nothing): see the module's docstring
        return {SET_NV_CONFIG: self._nv, FW_RESET: self._reset,
                INSTALL_DDP: self._install, RELOAD_DRIVER: self._reload}

    def _nv(self, step: Step, _host: Host) -> str:
        key, want = str(step.param), int(step.to_value or 0)
        have = self.read_facts(str(step.pf)).nv.get(key)
        if have is not None and have.next_boot == want:
            return f"already {key}={want} for the next activation"
        tool = firmware_privileged.nv_config_set(str(step.pf), key, want)
        after = self.read_facts(str(step.pf)).nv.get(key)
        if after is not None and after.next_boot != want:
            raise StepFailed(target=step.target,
                             reason=f"{key} reads {after.next_boot} for the next boot "
                                    f"after {tool} set {want}")
        return f"{key}={want} set with {tool}" + ("" if after else " (not verifiable)")

    def _reset(self, step: Step, _host: Host) -> str:
        pending = {name: self.read_facts(name).nv for name in step.disturbs_pfs or (step.pf,)
                   if name}
        waiting = {f"{name} {key}" for name, nv in pending.items()
                   for key, value in nv.items() if value.pending}
        if not waiting and any(pending.values()):
            return "already active: no NV change pending"
        tool = firmware_privileged.fw_reset(str(step.pf))
        self._wait_back(step, step.disturbs_pfs or (str(step.pf),))
        still = {f"{name} {key}" for name in pending
                 for key, value in self.read_facts(name).nv.items() if value.pending}
        if still:
            raise StepFailed(target=step.target,
                             reason=f"still pending after the reset ({tool}): "
                                    f"{', '.join(sorted(still))}; a reboot activates "
                                    f"them")
        return f"firmware reset with {tool}; NV config active"

    def _install(self, step: Step, _host: Host) -> str:
        source = step.target
        directory, _, name = source.lstrip("/").rpartition("/")
        if not name:
            raise StepFailed(target=step.target, reason="no package chosen")
        changed = firmware_privileged.install_ddp(self.root, directory, name)
        return f"installed {name}" if changed else f"already installed: {name}"

    def _reload(self, step: Step, host: Host) -> str:
        driver = step.target
        ports = [pf for pf in host.physical_functions if str(pf.address) in step.disturbs_pfs]
        if ports and all(pf.firmware.mode == step.to_value for pf in ports):
            return f"already: every {driver} port runs {step.to_value}"
        firmware_privileged.reload_driver(driver)
        back = self._wait_back(step, step.disturbs_pfs)
        wrong = [f"{pf.address} runs {pf.firmware.mode or 'an unknown package'}"
                 for pf in back if pf.firmware.mode != step.to_value]
        if wrong:
            raise StepFailed(target=step.target,
                             reason=f"after reloading {driver}: {'; '.join(wrong)} "
                                    f"(wanted {step.to_value}; see dmesg for the "
                                    f"package ice loaded)")
        return f"{driver} reloaded; {len(back)} port(s) run {step.to_value}"

    def _wait_back(self, step: Step, names: tuple[str, ...]) -> list[PhysicalFunction]:
        """Poll until every PF in ``names`` is back with its driver bound."""
        found: list[PhysicalFunction] = []

        def back() -> list[PhysicalFunction] | None:
            found[:] = [pf for pf in self.scan().physical_functions
                        if str(pf.address) in names and pf.driver is not None]
            return list(found) if len(found) == len(set(names)) else None

        return self.wait_until(step, back, self.timeout, lambda: (
            f"{', '.join(sorted(set(names) - {str(pf.address) for pf in found}))} did not "
            f"come back within {self.timeout:.0f}s"))
