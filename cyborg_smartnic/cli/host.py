"""``cyborg-smartnic host plan|apply|doctor|conf``: prepare a compute node from host.yaml.

``plan`` only reads; ``apply`` shows the plan, asks (or needs ``--yes``), re-plans to be
sure nothing moved meanwhile, then runs it through the privsep daemon; ``doctor`` runs the
preflight checks; ``conf`` prints the matching cyborg.conf and nova.conf lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import logging
import os
import shlex
import shutil
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from cyborg_smartnic.cli import common, hostreport
from cyborg_smartnic.cli import drain as drain_cli
from cyborg_smartnic.cli import ovs as ovs_cli
from cyborg_smartnic.cli import owners as owners_cli
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.host import doctor as doctor_mod
from cyborg_smartnic.host import drain, firmware_resume, guard, inuse
from cyborg_smartnic.host import lock as host_lock
from cyborg_smartnic.host.config import HostConfig, load_host_config
from cyborg_smartnic.host.drain_run import DrainStopped
from cyborg_smartnic.host.interrupt import Interrupted, StopSignals
from cyborg_smartnic.host.plan import plan as make_plan
from cyborg_smartnic.host.reader import HostReader, apply_state_dir
from cyborg_smartnic.host.requirements import Finding, check
from cyborg_smartnic.host.steps import DISRUPTION_NONE, DISRUPTION_VFS, MANUAL, REBOOT, Plan, show

if TYPE_CHECKING:
    from cyborg_smartnic.host.apply import ApplyResult
    from cyborg_smartnic.host.drain_nova import Clouds
    from cyborg_smartnic.host.drain_run import Drainer


EVENTLET_WARNING = r"\s*Eventlet is deprecated"
LOG = logging.getLogger(__name__)


class ApplyRefused(SmartNicError):
    msg_fmt = "%(reason)s"


class RequirementsUnmet(SmartNicError):
    msg_fmt = "%(count)s profile requirement(s) not met; first: %(first)s"


class DoctorFailed(SmartNicError):
    msg_fmt = "%(count)s check(s) failed: %(names)s"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "host", help="prepare this compute node: VFs, VF drivers, eswitch, hugepages",
        description="Plan and apply host changes described in a host.yaml.")
    sub = parser.add_subparsers(dest="host_command", metavar="ACTION", required=True)

    plan_p = sub.add_parser("plan", help="show the ordered changes host.yaml needs (read-only)")
    _common(plan_p)
    common.add_format_argument(plan_p)
    plan_p.add_argument("--profiles", metavar="PATH", action="append", default=[],
                        help="device profile file or directory whose host requirements "
                             "host.yaml must meet (repeatable)")
    plan_p.add_argument("host_config", metavar="HOST.yaml")
    ovs_cli.add_ovs_arguments(plan_p, restart=True)
    drain_cli.add_arguments(plan_p, apply=False)
    plan_p.set_defaults(func=common.with_example_host(plan_command))

    apply_p = sub.add_parser("apply", help="apply host.yaml through the privsep daemon")
    _common(apply_p, example_host=False)
    common.add_format_argument(apply_p)
    apply_p.add_argument("--yes", action="store_true",
                         help="do not ask; required when stdin is not a terminal")
    apply_p.add_argument("--vf-timeout", type=float, default=120.0, metavar="SECONDS",
                         help="how long to wait for new VFs to appear (default 120)")
    apply_p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                         help="when another host apply is running, wait up to this long for "
                              "it to finish (default 0: fail at once, naming it)")
    apply_p.add_argument("--resume", action="store_true",
                         help="continue the apply a reboot interrupted (the record in "
                              "[smartnic] apply_state_dir names its host.yaml); without a "
                              "record, a normal apply of HOST.yaml (what the boot unit runs)")
    apply_p.add_argument("host_config", metavar="HOST.yaml", nargs="?")
    ovs_cli.add_ovs_arguments(apply_p, restart=True)
    drain_cli.add_arguments(apply_p, apply=True)
    apply_p.set_defaults(func=apply_command)

    doctor_p = sub.add_parser("doctor", help="preflight checks with remedies")
    _common(doctor_p)
    common.add_format_argument(doctor_p)
    doctor_p.add_argument("--profiles", metavar="PATH", action="append", default=[],
                          help="device profile file or directory this host should serve")
    doctor_p.add_argument("host_config", metavar="HOST.yaml", nargs="?",
                          help="also check the host against this host config")
    ovs_cli.add_ovs_arguments(doctor_p)
    owners_cli.add_doctor_arguments(doctor_p)
    doctor_p.set_defaults(func=common.with_example_host(doctor_command))

    conf_p = sub.add_parser("conf", help="print the cyborg.conf [smartnic] and nova.conf "
                                         "[pci] device_spec lines for host.yaml")
    _common(conf_p)
    owners_cli.add_conf_arguments(conf_p)
    conf_p.add_argument("host_config", metavar="HOST.yaml")
    conf_p.set_defaults(func=common.with_example_host(conf_command))

    ovs_cli.register(sub)  # host ovs-cost


def _common(parser: argparse.ArgumentParser, *, example_host: bool = True) -> None:
    common.add_host_arguments(parser, example_host=example_host)
    common.add_cloud_arguments(parser, os_cloud_help="clouds.yaml entry used to ask Cyborg "
                               "which VFs are bound (default $OS_CLOUD; skipped when unset)")


# --------------------------------------------------------------------------- reading


def _in_use(args: argparse.Namespace, root: str, host: Host) -> inuse.InUse:
    return guard.witnesses(root, host, args.os_cloud, common.retry_policy(args))


def _findings(paths: list[str], config: HostConfig | None, host: Host) -> tuple[Finding, ...]:
    if not paths:
        return ()
    from cyborg_smartnic.profiles.compiler import compile_all  # noqa: PLC0415
    from cyborg_smartnic.profiles.loader import load_profiles  # noqa: PLC0415

    compiled = compile_all(load_profiles(paths))
    return check([c.host for c in compiled], config, host)


# --------------------------------------------------------------------------- output


def plan_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for number, step in enumerate(plan.steps, 1):
        flags = []
        if step.refused:
            flags.append("REFUSED")
        if step.kind == MANUAL:
            flags.append("MANUAL")
        if step.disruptive:
            flags.append("DISRUPTIVE")
        if step.disruption not in (DISRUPTION_NONE, DISRUPTION_VFS):
            flags.append(step.disruption.upper())
        reason = f"{step.refused} (wanted: {step.reason})" if step.refused else step.reason
        if step.destroys_vfs and not step.refused:
            reason += f" [affects {len(step.destroys_vfs)} VF(s)]"
        target = step.target + (f" {step.param}" if step.param else "")
        rows.append([str(number), step.kind, target, show(step.from_value),
                     show(step.to_value), " ".join(flags), reason])
    return rows


def plan_table(plan: Plan, findings: tuple[Finding, ...] = ()) -> str:
    if not plan.steps:
        text = "Nothing to do: the host matches the host config."
    else:
        text = common.render_table(("#", "kind", "target", "from", "to", "flags", "reason"),
                                   plan_rows(plan))
        text += (f"\n{len(plan.actions)} change(s), {len(plan.manual)} manual, "
                 f"{len(plan.refused)} refused; VFs destroyed or disturbed: "
                 f"{len(plan.destroys_vfs)}")
        if plan.disruption not in (DISRUPTION_NONE, DISRUPTION_VFS):
            text += f"; worst disruption: {plan.disruption}"
    for note in plan.notes:
        text += f"\nnote: {note}"
    for finding in findings:
        text += f"\n{'ok' if finding.ok else 'UNMET'}: {finding.message}"
    return text


def _plan_data(plan: Plan, findings: tuple[Finding, ...]) -> dict[str, Any]:
    data = plan.to_dict()
    data["requirements"] = [{"profile": f.profile, "ok": f.ok, "message": f.message}
                            for f in findings]
    return data


def _raise_if_unmet(findings: tuple[Finding, ...]) -> None:
    unmet = [f for f in findings if not f.ok]
    if unmet:
        raise RequirementsUnmet(count=len(unmet), first=unmet[0].message)


# --------------------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True)
class Planned:
    host: Host
    plan: Plan
    drain: drain.DrainPlan | None = None
    clouds: Clouds | None = None


def _planned(args: argparse.Namespace, reader: HostReader, config: HostConfig,
             clouds: Clouds | None = None) -> Planned:
    """Read the host and plan it. With ``--drain`` (connecting once, unless ``clouds`` is
    given) the VFs instances hold do not refuse the steps (the drain moves those instances
    first) and the drain is planned too."""
    root, host = reader.root, reader.read()
    in_use = _in_use(args, root, host)
    if clouds is None:
        clouds = drain_cli.connect(args, host.hostname)
    view = clouds.view() if clouds is not None else None
    if view is not None:
        in_use = drain.exempt(in_use, view)
    plan = make_plan(config, host, in_use, ovs=ovs_cli.ovs_input(args, root, config),
                     **_firmware(root, host))
    return Planned(host, plan, None if view is None else drain.plan_drain(plan, host, view),
                   clouds)


def plan_command(args: argparse.Namespace) -> int:
    config = load_host_config(args.host_config)
    planned = _planned(args, HostReader(common.load_config(args), config), config)
    host, plan, drained = planned.host, planned.plan, planned.drain
    findings = _findings(args.profiles, config, host)
    data = _plan_data(plan, findings)
    if drained is not None:
        data["drain"] = drained.to_dict()
    common.show(args, data, lambda: _tables(plan, drained, args.host_config, findings),
                rows="steps")
    if plan.refused:
        first = plan.refused[0]
        raise ApplyRefused(reason=f"{len(plan.refused)} step(s) refused; first: "
                                  f"{first.target}: {first.refused}"
                                  f"{drain_cli.hint(plan, args)}")
    if drained is not None and drained.needed and drained.blocked:
        raise ApplyRefused(reason=f"drain blocked by {len(drained.blocked)} instance(s): "
                                  f"{drain.summary(drained)}")
    _raise_if_unmet(findings)
    return 0


def _tables(plan: Plan, drained: drain.DrainPlan | None, host_config: str,
            findings: tuple[Finding, ...] = ()) -> str:
    """The drain first (when asked for), then the steps."""
    text = plan_table(plan, findings)
    if drained is None:
        return text
    return f"{drain_cli.table(drained, drain_cli.why(host_config))}\n\n{text}"


def apply_command(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Plan and apply under the host lock; a signal before the first write aborts, after it
    rolls back (exit 128 + signal number, one line on stderr)."""
    with StopSignals() as stop:
        try:
            return _apply(args, stdin or sys.stdin, stop)
        except Interrupted as exc:
            print(f"cyborg-smartnic: error: {exc}", file=sys.stderr)
            return exc.exit_code


def _apply(args: argparse.Namespace, stdin: TextIO, stop: StopSignals) -> int:
    resuming, host_config = _resume_target(args)
    config = load_host_config(host_config)
    run = _ApplyRun(args, HostReader(common.load_config(args), config), config, host_config,
                    resuming, sys.stdout if args.format == "table" else sys.stderr)
    with host_lock.hold(run.reader.lock_path, args.wait, run.progress) as held:
        planned = _planned(args, run.reader, config)
        print(_tables(planned.plan, planned.drain, host_config), file=run.out)
        _refuse_unrunnable(run, planned.plan)
        drainer = _drainer(args, planned, host_config, run.progress)
        if not planned.plan.actions:
            return _nothing_to_apply(run, planned, drainer)
        if not args.yes:
            _confirm_unchanged(run, planned, stdin)
        result = _run_steps(run, planned, drainer, held, stop)
    return _outcome(run, result, drainer, stop)


@dataclasses.dataclass(frozen=True)
class _ApplyRun:
    """What one ``host apply`` works with, handed to each of its phases."""

    args: argparse.Namespace
    reader: HostReader
    config: HostConfig
    host_config: str
    resuming: Any  # the firmware record of --resume, or None
    out: TextIO  # tables and progress: stdout, or stderr when stdout carries -f json|yaml

    def progress(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _refuse_unrunnable(run: _ApplyRun, plan: Plan) -> None:
    """A resume whose firmware change is still pending, or any refused step: nothing runs."""
    if run.resuming is not None and plan.steps and plan.steps[-1].kind == REBOOT:
        raise ApplyRefused(reason=f"resuming after a reboot, but the firmware change is "
                                  f"still not active ({plan.steps[-1].reason}); a BlueField "
                                  f"mode change needs a cold power cycle, not a warm "
                                  f"reboot. The record stays in {run.reader.state_dir}")
    if plan.refused:
        first = plan.refused[0]
        raise ApplyRefused(reason=f"refusing to apply: {len(plan.refused)} step(s) "
                                  f"refused; first: {first.target}: {first.refused}"
                                  f"{drain_cli.hint(plan, run.args)}")


def _nothing_to_apply(run: _ApplyRun, planned: Planned, drainer: Drainer | None) -> int:
    _finish_resume(run.reader.state_dir, run.resuming, run.out)
    if drainer is not None and planned.drain is not None:
        drainer.adopt(planned.drain)  # an earlier drain that stopped: host is done
        drainer.finish()
    common.show(run.args, {"ok": True, "done": [],
                           "manual": [s.to_dict() for s in planned.plan.manual]},
                lambda: "No changes applied.", rows="done")
    return 0


def _confirm_unchanged(run: _ApplyRun, planned: Planned, stdin: TextIO) -> None:
    """Ask, then plan again: the answer only covers the plan that was shown."""
    _confirm(len(planned.plan.actions), stdin, run.out)
    again = _planned(run.args, run.reader, run.config, planned.clouds)
    if again.plan != planned.plan or (again.drain and planned.drain and
                                      again.drain.moves != planned.drain.moves):
        raise ApplyRefused(reason="the host changed while waiting for confirmation; "
                                  "nothing was done: run host apply again")


def _run_steps(run: _ApplyRun, planned: Planned, drainer: Drainer | None, held: Any,
               stop: StopSignals) -> ApplyResult:
    """Drain (with --drain), run the steps, and verify before nova-compute is re-enabled."""
    plan, host = planned.plan, planned.host
    try:
        if drainer is not None and planned.drain is not None:
            drainer.start(planned.drain, lambda view: drain.plan_drain(plan, host, view))
        result = _execute(run.args, run.reader, plan, held, stop, progress=run.progress)
        if result.failed is None and not result.after_reboot and drainer is not None:
            _verify(run.args, run.reader, run.config)
            drainer.finish()
    except Interrupted:
        if drainer is not None and drainer.reenable:
            print(f"cyborg-smartnic: {drainer.stays_disabled()}", file=sys.stderr)
        raise
    except SmartNicError as exc:
        if drainer is None or isinstance(exc, DrainStopped) or not drainer.reenable:
            raise
        raise ApplyRefused(reason=f"{exc}; {drainer.stays_disabled()}") from exc
    return result


def _outcome(run: _ApplyRun, result: ApplyResult, drainer: Drainer | None,
             stop: StopSignals) -> int:
    """Show the result; a failure (rolled back) or an interruption, or the reboot record."""
    common.show(run.args, result.to_dict(), lambda: _result_text(result), rows="done")
    later = "" if drainer is None or not drainer.reenable else f"; {drainer.stays_disabled()}"
    if result.failed is not None:
        undone = sum(1 for o in result.restored if o.changed)
        summary = (f"rolled back {undone} change(s), {len(result.not_restored)} could not be "
                   f"restored")
        if stop.received is not None and result.error == f"interrupted by {stop.requested()}":
            print(f"cyborg-smartnic: error: {result.error} at {result.failed.target}; "
                  f"{summary}{later}", file=sys.stderr)
            return stop.exit_code
        error = str(result.error).removeprefix(f"{result.failed.target}: ")
        raise ApplyRefused(reason=f"apply failed at {result.failed.target}: {error}; "
                                  f"{summary}{later}")
    if result.after_reboot:
        where = firmware_resume.record(run.reader.state_dir, run.host_config,
                                       run.reader.hostname, result.after_reboot)
        print(f"reboot required: {result.after_reboot[0].reason}. Recorded in {where}; after "
              f"the reboot `cyborg-smartnic host apply --resume` (the boot unit) finishes it"
              f"{'' if not later else ' (with --drain, to re-enable nova-compute)'}.",
              file=run.out)
    else:
        _finish_resume(run.reader.state_dir, run.resuming, run.out)
    return 0


def _drainer(args: argparse.Namespace, planned: Planned, host_config: str,
             progress: Callable[[str], None]) -> Drainer | None:
    if planned.clouds is None:
        return None
    from cyborg_smartnic.host.drain_run import Drainer  # noqa: PLC0415

    return Drainer(planned.clouds, drain_cli.why(host_config), progress,
                   timeout=args.drain_timeout)


def _execute(args: argparse.Namespace, reader: HostReader, plan: Plan, held: Any,
             stop: StopSignals, *, progress: Callable[[str], None]) -> ApplyResult:
    """Run the plan's steps through the privsep daemon (the guard re-checks each)."""
    with warnings.catch_warnings():  # oslo.privsep imports eventlet, which warns on import
        warnings.filterwarnings("ignore", message=EVENTLET_WARNING)
        from cyborg_smartnic.host.apply import ApplyOptions, Executor  # noqa: PLC0415

    root = reader.root
    # a firmware reset or driver reload changes every PF it takes down, not only its own
    held.changing(pf for step in plan.actions
                  for pf in (*((step.pf,) if step.pf else ()), *step.disturbs_pfs))
    prepare_privsep(args.config_file, reader.call_timeout)
    executor = Executor(root, reader.read, lambda h: _in_use(args, root, h),
                        ApplyOptions(vf_timeout=args.vf_timeout), progress=progress,
                        scan_pf=reader.read_pf, scan_hugepages=reader.read_hugepages,
                        ovs=ovs_cli.ovs_runner(args, root),
                        stop_requested=stop.requested, revive=revive_privsep)
    stop.defer()  # from here on a signal stops between writes and rolls back
    return executor.apply(plan)


def _verify(args: argparse.Namespace, reader: HostReader, config: HostConfig) -> None:
    """Before the host goes back into service: a fresh plan must have nothing left to do."""
    root, host = reader.root, reader.read()
    left = make_plan(config, host, _in_use(args, root, host),
                     ovs=ovs_cli.ovs_input(args, root, config), **_firmware(root, host))
    if left.actions:
        raise ApplyRefused(reason=f"verification failed: {len(left.actions)} change(s) still "
                                  f"planned after the apply (first: {left.actions[0].target})")


def _firmware(root: str, host: Host) -> dict[str, Any]:
    """The firmware facts and package root every plan of this host gets (host.firmware)."""
    from cyborg_smartnic.host import firmware  # noqa: PLC0415

    return {"firmware_facts": firmware.read_host_facts(root, host), "root": root}


def _resume_target(args: argparse.Namespace) -> tuple[Any, str]:
    """(the resume record or None, the host.yaml to apply): with ``--resume`` and a record,
    the record's host.yaml; else HOST.yaml, which is then required."""
    record = None
    if getattr(args, "resume", False):
        try:
            record = firmware_resume.load(apply_state_dir(common.load_config(args)))
        except firmware_resume.BadRecord as exc:
            raise ApplyRefused(reason=f"cannot resume: {exc}") from exc
    if record is not None:
        if args.host_config and os.path.abspath(args.host_config) != record.host_config:
            LOG.warning("resuming the apply of %s (recorded before the reboot), not %s",
                        record.host_config, args.host_config)
        return record, record.host_config
    if not args.host_config:
        raise ApplyRefused(reason="HOST.yaml is required (no resume record to continue)")
    return None, str(args.host_config)


def _finish_resume(state_dir: str, resuming: Any, out: TextIO) -> None:
    """The host matches host.yaml: a record of an earlier reboot is done with."""
    if firmware_resume.clear(state_dir) and resuming is not None:
        print(f"resumed after the reboot: {len(resuming.pending)} step(s) were pending; the "
              f"host now matches {resuming.host_config}", file=out)


def _result_text(result: ApplyResult) -> str:
    changed = sum(1 for o in result.done if o.changed)
    lines = [f"Applied {len(result.done)} step(s): {changed} changed the host, "
             f"{len(result.done) - changed} found it already right."]
    if result.failed is not None:
        undone = [o for o in result.restored if o.changed]
        lines = [f"FAILED: {result.failed.kind} {result.failed.target}: {result.error}"]
        if undone:
            lines.append(f"Rolled back {len(undone)} change(s) (newest first):")
        elif not result.not_restored:
            lines.append("Nothing to roll back: no step had changed the host.")
        lines += [f"  {o.step.kind} {o.step.target} -> {show(o.step.to_value)}: {o.detail}"
                  for o in undone]
        if result.not_restored:
            lines.append("NOT restored (left as they are; fix by hand):")
            lines += [f"  {o.step.kind} {o.step.target} -> {show(o.step.to_value)}: "
                      f"{o.detail}" for o in result.not_restored]
    for step in result.manual:
        lines.append(f"manual step left to you: {step.target}: {step.reason}")
    return "\n".join(lines)


def _confirm(count: int, stdin: TextIO, out: TextIO) -> None:
    if not stdin.isatty():
        raise ApplyRefused(reason="refusing to change the host without --yes (stdin is not "
                                  "a terminal to ask on)")
    print(f"Apply these {count} change(s) to this host? [y/N] ", end="", file=out, flush=True)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise ApplyRefused(reason="not confirmed; nothing was done")


def prepare_privsep(config_files: list[str], timeout: float) -> None:
    """Set up how the privsep daemons are started, before the first privileged call.

    Two contexts (``_privsep_contexts``): the sysfs/devlink/OVS writes, and the firmware
    tools with their wider capabilities (that daemon starts only on a firmware step's first
    call). ``[cyborg_smartnic_privileged]`` and ``[cyborg_smartnic_firmware_privileged]`` are
    read from ``--config-file`` (the options that ``list_opts`` documents); every call times
    out after ``timeout`` seconds; each helper runs in its own session (out of the terminal's
    process group: Ctrl-C must reach us, not kill it). As root the helpers are started
    without sudo; otherwise ``sudo`` runs our wrapper, the one command the shipped sudoers
    rule allows (``host.privsep_helper``), once per context.
    """
    from oslo_config import cfg  # noqa: PLC0415

    from cyborg_smartnic.host import privileged  # noqa: PLC0415
    if not privileged.context.client_mode:
        return  # the entry points run in this process (tests)
    cfg.CONF(args=[], project="cyborg", default_config_files=list(config_files),
             use_env=False)
    contexts = _privsep_contexts()
    for _, context in contexts:
        context.timeout = timeout
        _start_helpers_detached(context)
    _fail_calls_when_the_daemon_vanishes()
    if not LOG.isEnabledFor(logging.DEBUG):  # its warnings repeat what the step reports
        logging.getLogger("oslo_privsep.comm").setLevel(logging.ERROR)
    if os.geteuid() != 0:
        from cyborg_smartnic.host import privsep_helper  # noqa: PLC0415
        for section, _ in contexts:
            privsep_helper.use_sudo(cfg.CONF, section)
        return
    helper = os.path.join(os.path.dirname(sys.executable), "privsep-helper")
    if not os.access(helper, os.X_OK):
        helper = shutil.which("privsep-helper") or "privsep-helper"
    # the same interpreter, without eventlet's import-time warning in our log
    command = [sys.executable, "-W", "ignore:::oslo_privsep.daemon", helper]
    for section, _ in contexts:
        cfg.CONF.set_default("helper_command", shlex.join(command), group=section)


def _privsep_contexts() -> list[tuple[str, Any]]:
    """Every privsep context ``host apply`` may start, with its config section."""
    from cyborg_smartnic.host import firmware_privileged, privileged  # noqa: PLC0415

    return [(privileged.CONFIG_SECTION, privileged.context),
            (firmware_privileged.CONFIG_SECTION, firmware_privileged.context)]


def _start_helpers_detached(context: Any) -> None:
    """Prefix whatever helper command privsep builds with ``python -m ...host.detach``."""
    build = type(context).helper_command.__get__(context)  # the class's: never wrapped twice

    def detached(sockpath: str) -> list[str]:
        return [sys.executable, "-m", "cyborg_smartnic.host.detach", *build(sockpath)]

    context.helper_command = detached


def _fail_calls_when_the_daemon_vanishes() -> None:
    """Treat a reset privsep connection like its EOF.

    When the daemon dies mid-conversation, oslo.privsep's reader thread can end on
    ``ConnectionResetError`` instead of EOF: it then prints a traceback and leaves the calls
    in flight waiting forever (or until their timeout). This hook, for those threads only
    (one per context), does what the reader does at EOF: fail the waiting calls (ECONNRESET)
    and mark the channel down, so the step fails at once and the rollback starts a new daemon.
    """
    import threading  # noqa: PLC0415

    previous = threading.excepthook
    if getattr(previous, "_cyborg_smartnic", False):
        return
    contexts = [context for _, context in _privsep_contexts()]

    def hook(exc: threading.ExceptHookArgs) -> None:
        channel = next((c.channel for c in contexts if c.channel is not None
                        and exc.thread is getattr(c.channel, "reader_thread", None)), None)
        if channel is None or not isinstance(exc.exc_value, OSError):
            previous(exc)
            return
        LOG.info("the privsep daemon's connection broke: %s", exc.exc_value)
        lost = OSError(errno.ECONNRESET, "the privsep daemon's connection was reset (the "
                                         "daemon died)")
        with channel.lock:
            for waiting in channel.outstanding_msgs.values():
                waiting.set_exception(lost)
            channel.running = False

    hook._cyborg_smartnic = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def revive_privsep() -> None:
    """Forget a privsep daemon that died (its reader thread ended), so the next call starts
    a new one: the rollback must not depend on the daemon that was running when we failed.
    Each context's daemon on its own: a dead firmware daemon leaves the other one alone."""
    for section, context in _privsep_contexts():
        channel = context.channel
        if channel is None or not context.client_mode:
            continue
        reader = getattr(channel, "reader_thread", None)
        if channel.running and reader is not None and reader.is_alive():
            continue
        LOG.info("the privsep daemon of [%s] is gone; starting a new one", section)
        try:
            context.stop()  # half-closes the socket, joins the ended reader thread
        except OSError:  # the socket is already reset: nothing left to close politely
            context.channel = None


def doctor_command(args: argparse.Namespace) -> int:
    config = load_host_config(args.host_config) if args.host_config else None
    reader = HostReader(common.load_config(args), config)
    root, host = reader.root, reader.read()
    plan = make_plan(config, host, _in_use(args, root, host),
                     ovs=ovs_cli.ovs_input(args, root, config),
                     **_firmware(root, host)) if config else None
    findings = _findings(args.profiles, config, host)
    checks = doctor_mod.run_checks(host, vfio=doctor_mod.vfio_state(root), config=config,
                                   plan=plan, findings=findings)
    checks = (*checks, *ovs_cli.doctor_checks(args, root, config, host))
    checks = (*checks, *owners_cli.doctor_checks(args, root, config, host))
    checks = (*checks, *hostreport.doctor_checks(args))
    common.show(args, [c.to_dict() for c in checks], lambda: doctor_text(checks), wrap="checks")
    failed = [c for c in checks if c.status == doctor_mod.FAIL]
    if failed:
        raise DoctorFailed(count=len(failed), names=", ".join(sorted({c.name for c in failed})))
    return 0


def doctor_text(checks: tuple[doctor_mod.Check, ...]) -> str:
    """One line per check, its remedy indented below: readable in a terminal and a log."""
    marks = {doctor_mod.OK: "[ ok ]", doctor_mod.WARN: "[warn]", doctor_mod.FAIL: "[FAIL]"}
    lines = []
    for item in checks:
        lines.append(f"{marks[item.status]} {item.name}: {item.detail}")
        if item.remedy:
            lines.append(f"       fix: {item.remedy}")
    return "\n".join(lines)


def conf_command(args: argparse.Namespace) -> int:
    config = load_host_config(args.host_config)
    reader = HostReader(common.load_config(args), config)
    owners_cli.print_conf(args, config, reader.read(), reader.root)
    return 0
