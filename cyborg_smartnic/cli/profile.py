"""`cyborg-smartnic profile validate|render|apply|check`: YAML device profiles.

Every subcommand validates every file given before it does anything else; errors are printed
one per line as ``FILE:LINE:COL: field: message`` on stderr, then the command exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from cyborg_smartnic.cli import common
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.profiles import render as render_mod
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import load_profiles


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "profile", help="validate, render, apply and check YAML device profiles",
        description="YAML device profiles compiled into Cyborg device profiles and Nova "
                    "flavor extra specs.")
    sub = parser.add_subparsers(dest="profile_command", metavar="ACTION", required=True)

    validate = sub.add_parser("validate", help="check profile files; exit 1 on any error")
    _add_paths(validate)
    common.add_format_argument(validate)
    validate.set_defaults(func=run_validate)

    render = sub.add_parser("render", help="print what the profiles compile to")
    _add_paths(render)
    common.add_format_argument(render, choices=(*common.FORMATS, *render_mod.FORMATS[2:]),
                               default="json")
    render.set_defaults(func=run_render)

    apply = sub.add_parser(
        "apply", help="create/replace device profiles and set flavor extra specs in a cloud",
        description="Sync the profiles into Cyborg and Nova through openstacksdk: the plan is "
                    "printed first; only profiles marked as managed by cyborg-smartnic are "
                    "replaced or pruned; running it again changes nothing.")
    _add_paths(apply)
    apply.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    apply.add_argument("--prune", action="store_true",
                       help="delete managed device profiles that are in no file given")
    apply.add_argument("--yes", action="store_true",
                       help="apply without asking (needed when stdin is not a terminal)")
    common.add_cloud_arguments(apply, os_cloud_help="cloud in clouds.yaml (default "
                                                    "$OS_CLOUD, else OS_* variables)")
    common.add_format_argument(apply)
    apply.set_defaults(func=run_apply)

    check = sub.add_parser(
        "check", help="which profiles this host can serve, and what is missing for the others")
    _add_paths(check)
    common.add_host_arguments(check, example_host=True)
    common.add_format_argument(check)
    check.add_argument("--require-all", action="store_true",
                       help="exit 1 unless the host can serve every profile")
    check.set_defaults(func=common.with_example_host(run_check))


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="profile file, or directory of *.yaml/*.yml profile files")


def run_validate(args: argparse.Namespace) -> int:
    profiles = load_profiles(args.paths)
    files = len({p.source.rsplit(":", 1)[0] for p in profiles})
    data = {"valid": True, "files": files,
            "profiles": [{"name": p.name, "source": p.source} for p in profiles]}
    common.show(args, data, lambda: f"{len(profiles)} profile(s) in {files} file(s): valid",
                rows="profiles")
    return 0


def run_render(args: argparse.Namespace) -> int:
    compiled = compile_all(load_profiles(args.paths))
    if args.format in render_mod.FORMATS[2:]:  # shell: the openstack commands
        sys.stdout.write(render_mod.render(compiled, args.format))
    else:
        common.show(args, [c.to_dict() for c in compiled], lambda: _render_table(compiled),
                    wrap="profiles")
    _warn_nova_rules(compiled)
    return 0


def _render_table(compiled: list[Any]) -> str:
    rows = []
    for item in compiled:
        groups = "\n--\n".join("\n".join(f"{k}={v}" for k, v in g.items())
                               for g in item.device_profile["groups"])
        specs = "\n".join(f"{k}={v}" for k, v in item.flavor_extra_specs.items())
        rows.append([item.name, groups, specs, "\n".join(f.name for f in item.flavors),
                     " ".join(item.port_arguments)])
    return common.render_table(["Profile", "Device profile groups", "Flavor extra specs",
                                "Flavors", "Port"], rows)


def _warn_nova_rules(compiled: Sequence[Any]) -> None:
    """What Nova will refuse for servers using each profile (stderr: stdout stays data)."""
    from cyborg_smartnic.profiles.nova_rules import warning  # noqa: PLC0415

    for profile in compiled:
        text = warning(profile)
        if text:
            sys.stderr.write(f"warning: {text}\n")


class ApplyRefused(SmartNicError):
    msg_fmt = "%(reason)s"


class ProfilesNotServable(SmartNicError):
    msg_fmt = "this host cannot serve %(count)s profile(s): %(names)s"


def run_apply(args: argparse.Namespace) -> int:
    from cyborg_smartnic.apiclient import read  # noqa: PLC0415
    from cyborg_smartnic.profiles import apply as apply_mod  # noqa: PLC0415
    from cyborg_smartnic.profiles.cloud import connect  # noqa: PLC0415
    from cyborg_smartnic.profiles.plan import make_plan  # noqa: PLC0415

    # -f table: the plan and progress are the output; else they go to stderr, the document
    # (plan, what was done) to stdout at the end.
    say = print if args.format == "table" else (lambda line: print(line, file=sys.stderr))
    compiled = compile_all(load_profiles(args.paths))
    policy = common.retry_policy(args)
    cloud = connect(args.os_cloud, policy)
    state = read("read device profiles, flavors and accelerator requests",
                 cloud.read_state, policy)
    plan = make_plan(compiled, state, prune=args.prune)
    for line in plan.lines():
        say(line)
    result = {"plan": [{"kind": s.kind, "target": s.target, "detail": s.detail}
                       for s in plan.steps],
              "unchanged": list(plan.unchanged), "conflicts": list(plan.conflicts),
              "leftovers": list(plan.leftovers), "dry_run": args.dry_run, "applied": 0}
    if plan.conflicts:
        raise ApplyRefused(reason=f"{len(plan.conflicts)} conflict(s) (lines starting with "
                                  f"'!'); nothing was changed")
    if not plan.has_changes:
        common.show(args, result, lambda: "Nothing to change.", rows="plan")
        return 0
    if args.dry_run:
        common.show(args, result, lambda: f"Dry run: {len(plan.steps)} change(s) not applied.",
                    rows="plan")
        return 0
    if not args.yes and not _confirm(len(plan.steps)):
        raise ApplyRefused(reason="not confirmed; nothing was changed (use --yes to apply "
                                  "without asking)")
    apply_mod.apply_plan(cloud, plan, policy=policy, report=say)
    result["applied"] = len(plan.steps)
    common.show(args, result, lambda: f"Applied {len(plan.steps)} change(s).", rows="plan")
    return 0


def _confirm(count: int) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"Apply these {count} change(s)? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def run_check(args: argparse.Namespace) -> int:
    from cyborg_smartnic.cli import hostreport  # noqa: PLC0415
    from cyborg_smartnic.host import firmware  # noqa: PLC0415
    from cyborg_smartnic.profiles.check import check_all, offers_from_report  # noqa: PLC0415

    compiled = compile_all(load_profiles(args.paths))
    built = hostreport.build(args)
    offers, hugepages = offers_from_report(built.specs), built.host.hugepages
    verdicts = check_all([c.host for c in compiled], offers, hugepages,
                         lambda mode: firmware.firmware_hint(mode, built.host))
    data = [v.to_dict() for v in verdicts]
    common.show(args, data, lambda: _check_table(verdicts), wrap="profiles")
    _warn_nova_rules([c for c, v in zip(compiled, verdicts, strict=True) if v.servable])
    missing = [v.profile for v in verdicts if v.servable is False]
    if args.require_all and missing:
        raise ProfilesNotServable(count=len(missing), names=", ".join(missing))
    return 0


def host_offers(args: argparse.Namespace) -> tuple[list[Any], tuple[Any, ...]]:
    """Scan the host and map it with the driver's own report code (and its pool names)."""
    from cyborg_smartnic.cli import hostreport  # noqa: PLC0415
    from cyborg_smartnic.profiles.check import offers_from_report  # noqa: PLC0415

    built = hostreport.build(args)
    return offers_from_report(built.specs), built.host.hugepages


def _check_table(verdicts: list[Any]) -> str:
    rows = [[v.profile, {True: "yes", False: "no", None: "n/a"}[v.servable],
             "\n".join(p or "-" for p in v.assignment) if v.servable else "",
             "\n".join(v.problems)] for v in verdicts]
    served = sum(1 for v in verdicts if v.servable)
    judged = sum(1 for v in verdicts if v.servable is not None)
    return (f"{served} of {judged} profile(s) can be served by this host's Cyborg pools"
            + (f" ({len(verdicts) - judged} take their VF from Nova's PCI tracker)"
               if judged < len(verdicts) else "") + "\n"
            + common.render_table(["Profile", "Servable", "Pools", "Missing"], rows))
