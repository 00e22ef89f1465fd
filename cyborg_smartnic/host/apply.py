"""Run a plan through the privileged entry points: verify each step, roll back on failure.

State lives in sysfs, not in a journal: each step reads the host (a fresh scan) before and
after it writes, records how to undo itself before touching anything, and on the first
failure the recorded undos run in reverse order. A crash mid-apply leaves a host that the
next ``plan`` describes from scratch, so re-running ``apply`` continues where it stopped
(sysfs state does not survive a reboot either, so a journal could only be stale).

Every step, forward or undo, passes the plan's in-use guard (``guard.refusal``) again right
before it writes, with fresh witnesses, over the VFs it would destroy or rebind judged on the
host as it is then: an undo that would take a VF from whoever grabbed it meanwhile is not
run, and is reported as not restored instead.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from oslo_privsep import comm as privsep_comm
from oslo_privsep import daemon as privsep_daemon

from cyborg_smartnic.discovery.model import (
    Host,
    HugepagePool,
    PhysicalFunction,
    VirtualFunction,
)
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import guard, privileged, steps
from cyborg_smartnic.host.firmware_apply import FirmwareRunner
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.ovs.apply import OvsRunner
from cyborg_smartnic.host.runner import StepFailed, StepRunner
from cyborg_smartnic.host.steps import Plan, Step, show

LOG = logging.getLogger(__name__)

_ERRNO_HINTS = {
    errno.ERANGE: "more VFs than sriov_totalvfs allows",
    errno.ENOENT: "the file or driver is missing (no PF driver bound, or the module is not "
                  "loaded)",
    errno.ENOSPC: "the PF ran out of resources (MSI-X vectors, queues) for that many VFs; "
                  "ask for fewer",
    errno.ENOMEM: "not enough memory",
    errno.EOPNOTSUPP: "the driver does not support this",
    errno.EINVAL: "the kernel rejected the value",
    errno.EPERM: "not permitted (privsep daemon lacks a capability?)",
}
HOW_TO_GET_PRIVILEGE = (
    "run host apply as root, or as a member of the cyborg-smartnic group with the sudoers "
    "rule from etc/sudoers.d installed, naming this install's cyborg-smartnic-privsep-helper "
    "(a venv install has it in the venv's bin/); see docs/host.md, Privilege separation")
_ERRNO_HINTS[errno.EACCES] = f"permission denied: {HOW_TO_GET_PRIVILEGE}"


class PlanRefused(SmartNicError):
    msg_fmt = "refusing to apply: %(count)s refused step(s); first: %(target)s: %(reason)s"


class StepRefused(StepFailed):
    """The in-use guard said no: the step (or undo step) was not run at all."""


class Stopped(StepFailed):
    """A signal asked the apply to stop; the executor rolls back what it changed."""

    msg_fmt = "interrupted by %(signal)s"


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    vf_timeout: float = 120.0  # tools wait about 2 min for VF links to appear
    bind_timeout: float = 10.0
    poll_interval: float = 0.5
    busy_retries: int = 4
    busy_backoff: float = 0.5  # doubled after each EBUSY
    note_every: float = 10.0  # how often a long wait says what it is waiting for


ALREADY = "already "  # how every step's detail starts when it found nothing to change


@dataclass(frozen=True, slots=True)
class Outcome:
    step: Step
    detail: str

    @property
    def changed(self) -> bool:
        return not self.detail.startswith(ALREADY)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    done: tuple[Outcome, ...] = ()
    manual: tuple[Step, ...] = ()
    failed: Step | None = None
    error: str | None = None
    restored: tuple[Outcome, ...] = ()
    not_restored: tuple[Outcome, ...] = ()
    # a reboot step stopped the apply here: these steps (the reboot first) wait for the boot
    after_reboot: tuple[Step, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed is None

    def to_dict(self) -> dict[str, object]:
        def outcomes(items: tuple[Outcome, ...]) -> list[dict[str, object]]:
            return [{**o.step.to_dict(), "detail": o.detail, "changed": o.changed}
                    for o in items]

        return {
            "ok": self.ok,
            "done": outcomes(self.done),
            "manual": [step.to_dict() for step in self.manual],
            "failed": self.failed.to_dict() if self.failed else None,
            "error": self.error,
            "restored": outcomes(self.restored),
            "not_restored": outcomes(self.not_restored),
            "reboot_required": bool(self.after_reboot),
            "after_reboot": [step.to_dict() for step in self.after_reboot],
        }


@dataclass
class Executor:
    """Runs steps against ``root``; ``scan`` re-reads the host, ``in_use`` re-checks users.

    Each step reads the host once before it writes (for its undo, the in-use guard and its
    own decision) and once or more after (verification). A step changes one PF or one
    hugepage pool, so when given, ``scan_pf`` (a ``Host`` holding just that PF) and
    ``scan_hugepages`` (just the pools) do those reads: their cost is the PF and its VFs,
    not the whole host. Without them every read is ``scan``.
    """

    root: str
    scan: Callable[[], Host]
    in_use: Callable[[Host], InUse] = lambda host: InUse()
    options: ApplyOptions = field(default_factory=ApplyOptions)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    progress: Callable[[str], None] = lambda line: None
    scan_pf: Callable[[str], Host] | None = None  # a scan of one PF: cheaper on big hosts
    scan_hugepages: Callable[[], tuple[HugepagePool, ...]] | None = None
    ovs: OvsRunner | None = None  # runs set_ovs_config/restart_ovs steps (host.ovs.apply)
    # the name of a signal that asked us to stop (checked between writes), or None
    stop_requested: Callable[[], str | None] = lambda: None
    # make sure the privileged helper answers (respawn it if it died) before rolling back
    revive: Callable[[], None] = lambda: None
    firmware: FirmwareRunner | None = None  # runs the firmware steps (host.firmware_apply)
    _rolling_back: bool = field(default=False, init=False, repr=False)

    def apply(self, plan: Plan) -> ApplyResult:
        """Run ``plan.actions`` in order; on failure undo what was changed, in reverse."""
        if plan.refused:
            first = plan.refused[0]
            raise PlanRefused(count=len(plan.refused), target=first.target,
                              reason=first.refused or "")
        done: list[Outcome] = []
        undo: list[list[Step]] = []
        actions = plan.actions
        for number, step in enumerate(actions, 1):
            if step.kind == steps.REBOOT:  # ends the apply: the boot unit resumes it
                self.progress(f"[{number}/{len(actions)}] {describe(step)}: stopping here, "
                              f"reboot to continue")
                return ApplyResult(tuple(done), plan.manual, after_reboot=actions[number - 1:])
            try:
                self._check_stop(step)
                self.progress(f"[{number}/{len(actions)}] {describe(step)}")
                before = self._read(step)
                undo.append(self._undo_for(step, before))
                detail = self._run(step, before=before)
            except (SmartNicError, OSError, ValueError, KeyboardInterrupt) as exc:
                error = _explain(exc)
                self.progress(f"    FAILED: {error}")
                restored, not_restored = self._rollback(undo)
                return ApplyResult(tuple(done), plan.manual, step, error, restored,
                                   not_restored)
            self.progress(f"    ok: {detail}")
            done.append(Outcome(step, detail))
        return ApplyResult(tuple(done), plan.manual)

    def _check_stop(self, step: Step) -> None:
        """Stop between writes when a signal asked us to (never during a rollback)."""
        name = None if self._rolling_back else self.stop_requested()
        if name is not None:
            raise Stopped(target=step.target, signal=name)

    # ----------------------------------------------------------------- rollback

    def _rollback(self, undo: list[list[Step]]) -> tuple[tuple[Outcome, ...],
                                                            tuple[Outcome, ...]]:
        """Run the undo groups newest first, each step through the in-use guard.

        A group undoes one forward step; once one of its steps is refused or fails, the rest
        of that group depends on it and is not attempted (listed as not restored, with why).
        """
        restored: list[Outcome] = []
        not_restored: list[Outcome] = []
        self._rolling_back = True
        try:
            for group in reversed(undo):
                blocked: str | None = None
                for step in group:
                    if blocked is not None:
                        not_restored.append(Outcome(step, f"not attempted: {blocked}"))
                        continue
                    try:
                        outcome = self._undo(step)
                    except (SmartNicError, OSError, ValueError) as exc:
                        error = _explain(exc)
                        LOG.info("rollback step %s not done: %s", describe(step), error)
                        not_restored.append(Outcome(step, error))
                        self.progress(f"    rollback: {describe(step)}: "
                                      f"{'REFUSED' if isinstance(exc, StepRefused) else 'FAILED'}"
                                      f": {error}")
                        blocked = f"it needs {describe(step)} first"
                        continue
                    restored.append(outcome)
                    if outcome.changed:
                        self.progress(f"    rollback: {describe(step)}: {outcome.detail}")
        finally:
            self._rolling_back = False
        return tuple(restored), tuple(not_restored)

    def _undo(self, step: Step) -> Outcome:
        """One undo step; if the privileged helper turns out to be gone, once more with a
        new one (the rollback must not depend on the daemon that was there when we failed)."""
        self.revive()
        try:
            return Outcome(step, self._run(step))
        except OSError as exc:
            if not _helper_gone(exc):
                raise
            LOG.info("the privileged helper is gone (%s); starting a new one", exc)
            self.sleep(self.options.poll_interval)
            self.revive()
            return Outcome(step, self._run(step))

    def _read(self, step: Step) -> Host:
        """What ``step`` can change and must check: its PF, its pools, or else the host."""
        if step.kind in steps.OVS_KINDS:  # OVS steps read OVSDB themselves (OvsRunner)
            return Host(hostname="", physical_functions=(), skipped=())
        if step.kind in steps.FIRMWARE_KINDS:  # a reset or reload disturbs more than its PF
            return self.scan()
        if step.kind == steps.SET_HUGEPAGES and self.scan_hugepages is not None:
            return Host(hostname="", physical_functions=(), skipped=(),
                        hugepages=self.scan_hugepages())
        if step.pf is not None and self.scan_pf is not None:
            return self.scan_pf(step.pf)
        return self.scan()

    def _undo_for(self, step: Step, host: Host) -> list[Step]:
        """The steps that put back what ``step`` is about to change (read before it runs)."""
        why = f"rollback of: {describe(step)}"
        runner = self._runner(step)
        if runner is not None:  # firmware: none, see host.firmware_apply
            return runner.undo_for(step)
        if step.kind == steps.SET_HUGEPAGES:
            pool = _pool(host, step)
            if pool is None:
                return []
            return [replace(step, reason=why, from_value=None, to_value=pool.total)]
        pf = _pf(host, step)
        if step.kind == steps.SET_NUMVFS:
            # one step back to the old count (through 0 when both are non-zero), then the
            # old VFs' drivers; what it destroys is judged when it runs
            back = [replace(step, reason=why, from_value=None, to_value=pf.num_vfs,
                            destroys_vfs=(), disruptive=False)]
            back.extend(Step(steps.BIND_DRIVER, f"{pf.address} vf{old.index}", why,
                               to_value=old.driver, pf=step.pf, vf_index=old.index)
                        for old in pf.virtual_functions if pf.num_vfs)
            return back
        if step.kind == steps.BIND_DRIVER:
            vf = _vf(pf, step)
            return [] if vf is None else [replace(
                step, reason=why, from_value=None, to_value=vf.driver, destroys_vfs=(),
                disruptive=False)]
        if step.kind == steps.SET_ESWITCH_MODE and pf.eswitch_mode is not None:
            return [replace(step, reason=why, from_value=None, to_value=pf.eswitch_mode,
                            destroys_vfs=())]
        if step.kind == steps.SET_DEVLINK_PARAM and pf.flow_steering_mode is not None:
            return [replace(step, reason=why, from_value=None,
                            to_value=pf.flow_steering_mode)]
        return []

    # ----------------------------------------------------------------- steps

    def _run(self, step: Step, before: Host | None = None) -> str:
        host = before if before is not None else self._read(step)
        self._check_not_in_use(step, host)
        if step.kind == steps.SET_NUMVFS:
            return self._numvfs(step, host)
        if step.kind == steps.BIND_DRIVER:
            return self._bind(step, host)
        if step.kind == steps.SET_ESWITCH_MODE:
            return self._eswitch(step, host)
        if step.kind == steps.SET_DEVLINK_PARAM:
            return self._devlink_param(step, host)
        if step.kind == steps.SET_HUGEPAGES:
            return self._hugepages(step, host)
        runner = self._runner(step)
        if runner is not None:
            return runner.run(step, host)
        raise StepFailed(target=step.target, reason=f"unknown step kind {step.kind!r}")

    def _runner(self, step: Step) -> StepRunner | None:
        """The runner of a step the executor does not run itself (OVS, firmware)."""
        if step.kind in steps.OVS_KINDS:
            if self.ovs is None:
                raise StepFailed(target=step.target, reason="no Open vSwitch to apply this to")
            return self.ovs
        if step.kind in steps.FIRMWARE_KINDS:
            if self.firmware is None:
                self.firmware = FirmwareRunner(self.root, self.scan, self.sleep, self.clock)
            return self.firmware
        return None

    def _check_not_in_use(self, step: Step, host: Host) -> None:
        """The plan's guard again, right before the write (a VM may have started since).

        A forward step: the VFs the plan said it destroys, under the plan's full rule with
        fresh witnesses (blind refuses), plus the VFs it would disturb now that the plan could
        not know of (ones this apply created), refused on a witness. An undo step: every VF
        it would destroy now, under the full rule (it is a plan step in reverse).
        """
        now = affected_vfs(step, host)
        full = tuple(dict.fromkeys(step.destroys_vfs + (now if self._rolling_back else ())))
        seen = tuple(address for address in now if address not in full)
        if not full and not seen:
            return
        users = self.in_use(host)
        reason = guard.refusal(users, full) or guard.refusal(replace(users, blind=None), seen)
        if reason is not None:
            raise StepRefused(target=step.target, reason=f"not touching it now: {reason}")

    def _numvfs(self, step: Step, before: Host) -> str:
        want = int(step.to_value or 0)
        pf = _pf(before, step)
        if pf.num_vfs == want and len(pf.virtual_functions) == want:
            return f"already {want} VFs"
        if pf.num_vfs and want and pf.num_vfs != want:  # the kernel refuses N->M: through 0
            self._write_numvfs(step, 0)
            self._wait_for_vfs(step, 0)
            pf = _pf(self._read(step), step)
        if pf.num_vfs != want:
            self._write_numvfs(step, want)
        return self._wait_for_vfs(step, want)

    def _write_numvfs(self, step: Step, count: int) -> None:
        pf_address = str(step.pf)
        self._busy_retry(step, lambda: privileged.set_sriov_numvfs(self.root, pf_address,
                                                                   count))

    def _wait_for_vfs(self, step: Step, want: int) -> str:
        """Poll until ``sriov_numvfs`` and the VF directories both say ``want``; say what we
        wait for every ``note_every`` seconds (VFs can take minutes to appear)."""
        start = self.clock()
        deadline = start + self.options.vf_timeout
        next_note = start + self.options.note_every
        while True:
            pf = _pf(self._read(step), step)
            if pf.num_vfs < want:
                raise StepFailed(target=step.target,
                                 reason=f"asked for {want} VFs, the driver enabled only "
                                        f"{pf.num_vfs}")
            present = len(pf.virtual_functions)
            if pf.num_vfs == want and present == want:
                return f"{want} VFs present"
            waiting = (f"{present} of {want} VFs present" if present < want else
                       f"{present} VFs present, {want} wanted")
            now = self.clock()
            if now >= deadline:
                done = (f"{present} of {want} VFs appeared" if present < want else
                        f"{present - want} of {present} VFs were not removed")
                raise StepFailed(target=step.target,
                                 reason=f"{done} within {self.options.vf_timeout:.0f}s")
            if now >= next_note:
                self.progress(f"    waiting for the VFs of {step.pf}: {waiting} "
                              f"({now - start:.0f}s of {self.options.vf_timeout:.0f}s)")
                next_note = now + self.options.note_every
            self._check_stop(step)
            self.sleep(self.options.poll_interval)

    def _bind(self, step: Step, before: Host) -> str:
        found = _vf(_pf(before, step), step)
        if found is None:
            raise StepFailed(target=step.target, reason=f"VF {step.vf_index} of {step.pf} "
                                                        f"does not exist")
        vf = found
        address = str(vf.address)
        want = None if step.to_value is None else str(step.to_value)
        if vf.driver == want:
            return "already unbound" if want is None else f"already bound to {want}"
        if want is None:
            self._busy_retry(step, lambda: privileged.unbind_driver(self.root, address))
        else:
            self._busy_retry(step, lambda: privileged.set_driver_override(
                self.root, address, want))
            if vf.driver is not None:
                self._busy_retry(step, lambda: privileged.unbind_driver(self.root, address))
            self._busy_retry(step, lambda: privileged.drivers_probe(self.root, address))
        deadline = self.clock() + self.options.bind_timeout
        while True:
            now = _vf(_pf(self._read(step), step), step)
            driver = now.driver if now is not None else None
            if driver == want:
                return "unbound" if want is None else f"{address} bound to {want}"
            if self.clock() >= deadline:
                hint = f" (is the {want} module loaded? modprobe {want})" if want else ""
                raise StepFailed(target=step.target,
                                 reason=f"driver is {driver or 'none'}, expected "
                                        f"{want or 'none'}{hint}")
            self._check_stop(step)
            self.sleep(self.options.poll_interval)

    def _eswitch(self, step: Step, before: Host) -> str:
        want = str(step.to_value)
        pf = _pf(before, step)
        if pf.eswitch_mode == want:
            return f"already {want}"
        self._busy_retry(step, lambda: privileged.devlink_set_eswitch_mode(str(step.pf), want))
        mode = _pf(self._read(step), step).eswitch_mode
        if mode is None:
            return f"set to {want} (not verifiable: eswitch mode not reported)"
        if mode != want:
            raise StepFailed(target=step.target, reason=f"eswitch mode reads {mode} after "
                                                        f"setting {want}")
        return f"eswitch mode {want}"

    def _devlink_param(self, step: Step, before: Host) -> str:
        want = str(step.to_value)
        pf = _pf(before, step)
        if pf.flow_steering_mode == want:
            return f"already {want}"
        self._busy_retry(step, lambda: privileged.devlink_set_param(
            str(step.pf), str(step.param), want))
        value = _pf(self._read(step), step).flow_steering_mode
        if value is not None and value != want:
            raise StepFailed(target=step.target, reason=f"{step.param} reads {value} after "
                                                        f"setting {want}")
        return f"{step.param} {want}" + (" (not verifiable)" if value is None else "")

    def _hugepages(self, step: Step, before: Host) -> str:
        want = int(step.to_value or 0)
        pool = _pool(before, step)
        if pool is None:
            raise StepFailed(target=step.target, reason="no such hugepage pool")
        if pool.total == want:
            return f"already {want} pages"
        self._busy_retry(step, lambda: privileged.set_nr_hugepages(
            self.root, step.numa_node, int(step.size_kb or 0), want))
        pool = _pool(self._read(step), step)
        got = pool.total if pool is not None else 0
        if got < want:
            raise StepFailed(target=step.target,
                             reason=f"asked for {want} pages, the kernel allocated {got} "
                                    f"(short by {want - got}): free memory, or reserve them "
                                    f"at boot (hugepagesz=/hugepages= on the kernel command "
                                    f"line)")
        return f"{got} pages"

    def _busy_retry(self, step: Step, write: Callable[[], object]) -> None:
        """Run one privileged write, retrying EBUSY (a device still settling) with backoff."""
        delay = self.options.busy_backoff
        for attempt in range(self.options.busy_retries + 1):
            try:
                write()
                return
            except privsep_daemon.FailedToDropPrivileges as exc:
                raise StepFailed(target=step.target,
                                 reason=f"cannot start the privileged helper ({exc}): "
                                        f"{HOW_TO_GET_PRIVILEGE}") from exc
            except privsep_comm.PrivsepTimeout as exc:
                raise StepFailed(target=step.target,
                                 reason="the privileged helper did not answer in time; the "
                                        "write may or may not have happened") from exc
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == self.options.busy_retries:
                    raise
                LOG.warning("%s: busy (%s), retrying in %.1fs", step.target, exc, delay)
                self.progress(f"    busy, retrying in {delay:.1f}s")
                self._check_stop(step)
                self.sleep(delay)
                delay *= 2


def describe(step: Step) -> str:
    """One line: ``set_numvfs 0000:3b:00.0: 4 -> 0``."""
    what = f"{step.kind} {step.target}"
    if step.param:
        what += f" {step.param}"
    return f"{what}: {show(step.from_value)} -> {show(step.to_value)}"


def affected_vfs(step: Step, host: Host) -> tuple[str, ...]:
    """The VFs ``step`` would destroy or rebind if it ran on ``host`` as read now.

    A VF count change destroys every VF of the PF (the kernel goes through 0); a driver
    change takes the VF from its current driver; an eswitch mode change disturbs every VF.
    """
    if step.kind not in (steps.SET_NUMVFS, steps.BIND_DRIVER, steps.SET_ESWITCH_MODE):
        return ()
    pf = next((p for p in host.physical_functions if str(p.address) == step.pf), None)
    if pf is None:
        return ()
    present = tuple(str(vf.address) for vf in pf.virtual_functions)
    if step.kind == steps.SET_NUMVFS:
        return present if pf.num_vfs != int(step.to_value or 0) else ()
    if step.kind == steps.SET_ESWITCH_MODE:
        return present if pf.eswitch_mode != step.to_value else ()
    vf = _vf(pf, step)
    want = None if step.to_value is None else str(step.to_value)
    return (str(vf.address),) if vf is not None and vf.driver not in (None, want) else ()


def _helper_gone(exc: OSError) -> bool:
    """The privsep channel broke (the daemon died), rather than the kernel saying no."""
    if exc.errno is None:
        return "eof" in str(exc).lower()
    return exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF)


def _explain(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError) and exc.errno is None and "eof" in str(exc).lower():
        return f"{exc} (the privileged helper died)"
    if isinstance(exc, OSError) and exc.errno is not None:
        hint = _ERRNO_HINTS.get(exc.errno)
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        text = exc.strerror or os.strerror(exc.errno)
        return f"{name}: {text}" + (f" ({hint})" if hint else "")
    if isinstance(exc, ValueError):
        return f"refused by the privileged helper: {exc}"
    return str(exc)


def _pf(host: Host, step: Step) -> PhysicalFunction:
    for pf in host.physical_functions:
        if str(pf.address) == step.pf:
            return pf
    raise StepFailed(target=step.target, reason=f"PF {step.pf} is no longer on this host")


def _vf(pf: PhysicalFunction, step: Step) -> VirtualFunction | None:
    return next((vf for vf in pf.virtual_functions if vf.index == step.vf_index), None)


def _pool(host: Host, step: Step) -> HugepagePool | None:
    return next((p for p in host.hugepages
                 if p.numa_node == step.numa_node and p.size_kb == step.size_kb), None)
