"""Run a plan through the privileged entry points: verify each step, roll back on failure.

State lives in sysfs, not in a journal: each step reads the host (a fresh scan) before and
after it writes, records how to undo itself before touching anything, and on the first
failure the recorded undos run in reverse order. A crash mid-apply leaves a host that the
next ``plan`` describes from scratch, so re-running ``apply`` continues where it stopped
(sysfs state does not survive a reboot either, so a journal could only be stale).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cyborg_smartnic.discovery.model import (
    Host,
    HugepagePool,
    PhysicalFunction,
    VirtualFunction,
)
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import privileged
from cyborg_smartnic.host import steps as S
from cyborg_smartnic.host.inuse import InUse
from cyborg_smartnic.host.ovs.apply import OvsRunner

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


class PlanRefused(SmartNicError):
    msg_fmt = "refusing to apply: %(count)s refused step(s); first: %(target)s: %(reason)s"


class StepFailed(SmartNicError):
    msg_fmt = "%(target)s: %(reason)s"


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    vf_timeout: float = 120.0  # tools wait about 2 min for VF links to appear
    bind_timeout: float = 10.0
    poll_interval: float = 0.5
    busy_retries: int = 4
    busy_backoff: float = 0.5  # doubled after each EBUSY


ALREADY = "already "  # how every step's detail starts when it found nothing to change


@dataclass(frozen=True, slots=True)
class Outcome:
    step: S.Step
    detail: str

    @property
    def changed(self) -> bool:
        return not self.detail.startswith(ALREADY)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    done: tuple[Outcome, ...] = ()
    manual: tuple[S.Step, ...] = ()
    failed: S.Step | None = None
    error: str | None = None
    restored: tuple[Outcome, ...] = ()
    not_restored: tuple[Outcome, ...] = ()

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

    def apply(self, plan: S.Plan) -> ApplyResult:
        """Run ``plan.actions`` in order; on failure undo what was changed, in reverse."""
        if plan.refused:
            first = plan.refused[0]
            raise PlanRefused(count=len(plan.refused), target=first.target,
                              reason=first.refused or "")
        done: list[Outcome] = []
        undo: list[list[S.Step]] = []
        actions = plan.actions
        for number, step in enumerate(actions, 1):
            self.progress(f"[{number}/{len(actions)}] {describe(step)}")
            try:
                before = self._read(step)
                undo.append(self._undo_for(step, before))
                detail = self._run(step, guard=True, before=before)
            except (SmartNicError, OSError, ValueError, KeyboardInterrupt) as exc:
                error = _explain(exc)
                self.progress(f"    FAILED: {error}")
                restored, not_restored = self._rollback(undo)
                return ApplyResult(tuple(done), plan.manual, step, error, restored,
                                   not_restored)
            self.progress(f"    ok: {detail}")
            done.append(Outcome(step, detail))
        return ApplyResult(tuple(done), plan.manual)

    # ----------------------------------------------------------------- rollback

    def _rollback(self, undo: list[list[S.Step]]) -> tuple[tuple[Outcome, ...],
                                                            tuple[Outcome, ...]]:
        restored: list[Outcome] = []
        not_restored: list[Outcome] = []
        for group in reversed(undo):
            for step in group:
                try:
                    outcome = Outcome(step, self._run(step, guard=False))
                except (SmartNicError, OSError, ValueError) as exc:
                    LOG.error("rollback step %s failed: %s", describe(step), exc)
                    not_restored.append(Outcome(step, _explain(exc)))
                    self.progress(f"    rollback: {describe(step)}: FAILED: {_explain(exc)}")
                    continue
                restored.append(outcome)
                if outcome.changed:
                    self.progress(f"    rollback: {describe(step)}: {outcome.detail}")
        return tuple(restored), tuple(not_restored)

    def _read(self, step: S.Step) -> Host:
        """What ``step`` can change and must check: its PF, its pools, or else the host."""
        if step.kind in S.OVS_KINDS:  # OVS steps read OVSDB themselves (OvsRunner)
            return Host(hostname="", physical_functions=(), skipped=())
        if step.kind == S.SET_HUGEPAGES and self.scan_hugepages is not None:
            return Host(hostname="", physical_functions=(), skipped=(),
                        hugepages=self.scan_hugepages())
        if step.pf is not None and self.scan_pf is not None:
            return self.scan_pf(step.pf)
        return self.scan()

    def _undo_for(self, step: S.Step, host: Host) -> list[S.Step]:
        """The steps that put back what ``step`` is about to change (read before it runs)."""
        why = f"rollback of: {describe(step)}"
        if step.kind in S.OVS_KINDS:
            return self._ovs_runner(step).undo_for(step)
        if step.kind == S.SET_HUGEPAGES:
            pool = _pool(host, step)
            if pool is None:
                return []
            return [replace(step, reason=why, from_value=None, to_value=pool.total)]
        pf = _pf(host, step)
        if step.kind == S.SET_NUMVFS:
            back = [replace(step, reason=why, from_value=None, to_value=0,
                            destroys_vfs=(), disruptive=False)]
            if pf.num_vfs:
                back.append(replace(back[0], to_value=pf.num_vfs))
                back.extend(S.Step(S.BIND_DRIVER, f"{pf.address} vf{old.index}", why,
                                   to_value=old.driver, pf=step.pf, vf_index=old.index)
                            for old in pf.virtual_functions)
            return back
        if step.kind == S.BIND_DRIVER:
            vf = _vf(pf, step)
            return [] if vf is None else [replace(
                step, reason=why, from_value=None, to_value=vf.driver, destroys_vfs=(),
                disruptive=False)]
        if step.kind == S.SET_ESWITCH_MODE and pf.eswitch_mode is not None:
            return [replace(step, reason=why, from_value=None, to_value=pf.eswitch_mode,
                            destroys_vfs=())]
        if step.kind == S.SET_DEVLINK_PARAM and pf.flow_steering_mode is not None:
            return [replace(step, reason=why, from_value=None,
                            to_value=pf.flow_steering_mode)]
        return []

    # ----------------------------------------------------------------- steps

    def _run(self, step: S.Step, guard: bool, before: Host | None = None) -> str:
        host = before if before is not None else self._read(step)
        if guard and step.destroys_vfs:
            self._check_not_in_use(step, host)
        if step.kind == S.SET_NUMVFS:
            return self._numvfs(step, host)
        if step.kind == S.BIND_DRIVER:
            return self._bind(step, host)
        if step.kind == S.SET_ESWITCH_MODE:
            return self._eswitch(step, host)
        if step.kind == S.SET_DEVLINK_PARAM:
            return self._devlink_param(step, host)
        if step.kind == S.SET_HUGEPAGES:
            return self._hugepages(step, host)
        if step.kind in S.OVS_KINDS:
            return self._ovs_runner(step).run(step)
        raise StepFailed(target=step.target, reason=f"unknown step kind {step.kind!r}")

    def _ovs_runner(self, step: S.Step) -> OvsRunner:
        if self.ovs is None:
            raise StepFailed(target=step.target, reason="no Open vSwitch to apply this to")
        return self.ovs

    def _check_not_in_use(self, step: S.Step, host: Host) -> None:
        """The plan was checked; check again right before destroying (a VM may have started)."""
        users = self.in_use(host)
        busy = [f"{a} ({users.reason_for(a)})" for a in step.destroys_vfs if users.reason_for(a)]
        if busy:
            raise StepFailed(target=step.target,
                             reason=f"VF now in use, not touching it: {'; '.join(busy)}")

    def _numvfs(self, step: S.Step, before: Host) -> str:
        pf_address, want = str(step.pf), int(step.to_value or 0)
        pf = _pf(before, step)
        if pf.num_vfs == want and len(pf.virtual_functions) == want:
            return f"already {want} VFs"
        self._busy_retry(step, lambda: privileged.set_sriov_numvfs(self.root, pf_address, want))
        deadline = self.clock() + self.options.vf_timeout
        while True:
            pf = _pf(self._read(step), step)
            if pf.num_vfs < want:
                raise StepFailed(target=step.target,
                                 reason=f"asked for {want} VFs, the driver enabled only "
                                        f"{pf.num_vfs}")
            present = len(pf.virtual_functions)
            if pf.num_vfs == want and present == want:
                return f"{want} VFs present"
            if self.clock() >= deadline:
                raise StepFailed(target=step.target,
                                 reason=f"{present} of {want} VFs appeared within "
                                        f"{self.options.vf_timeout:.0f}s")
            self.sleep(self.options.poll_interval)

    def _bind(self, step: S.Step, before: Host) -> str:
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
            self.sleep(self.options.poll_interval)

    def _eswitch(self, step: S.Step, before: Host) -> str:
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

    def _devlink_param(self, step: S.Step, before: Host) -> str:
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

    def _hugepages(self, step: S.Step, before: Host) -> str:
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

    def _busy_retry(self, step: S.Step, write: Callable[[], object]) -> None:
        """Run one privileged write, retrying EBUSY (a device still settling) with backoff."""
        delay = self.options.busy_backoff
        for attempt in range(self.options.busy_retries + 1):
            try:
                write()
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == self.options.busy_retries:
                    raise
                LOG.warning("%s: busy (%s), retrying in %.1fs", step.target, exc, delay)
                self.progress(f"    busy, retrying in {delay:.1f}s")
                self.sleep(delay)
                delay *= 2


def describe(step: S.Step) -> str:
    """One line: ``set_numvfs 0000:3b:00.0: 4 -> 0``."""
    what = f"{step.kind} {step.target}"
    if step.param:
        what += f" {step.param}"
    return f"{what}: {S.show(step.from_value)} -> {S.show(step.to_value)}"


def _explain(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, OSError) and exc.errno is not None:
        hint = _ERRNO_HINTS.get(exc.errno)
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        text = exc.strerror or os.strerror(exc.errno)
        return f"{name}: {text}" + (f" ({hint})" if hint else "")
    if isinstance(exc, ValueError):
        return f"refused by the privileged helper: {exc}"
    return str(exc)


def _pf(host: Host, step: S.Step) -> PhysicalFunction:
    for pf in host.physical_functions:
        if str(pf.address) == step.pf:
            return pf
    raise StepFailed(target=step.target, reason=f"PF {step.pf} is no longer on this host")


def _vf(pf: PhysicalFunction, step: S.Step) -> VirtualFunction | None:
    return next((vf for vf in pf.virtual_functions if vf.index == step.vf_index), None)


def _pool(host: Host, step: S.Step) -> HugepagePool | None:
    return next((p for p in host.hugepages
                 if p.numa_node == step.numa_node and p.size_kb == step.size_kb), None)
