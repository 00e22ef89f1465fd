"""`python -m cyborg_smartnic.demo` (`make demo`): the whole path on a real local stack.

Starts deploy/stack.py (RabbitMQ, Placement, the Cyborg API, conductor and agent with the
smartnic driver reading the bundled example host, a Nova stub), then does what an operator
and Nova would do: look at what was discovered and reported, create a device profile, ask
Placement for allocation candidates, claim one, create an ARQ and bind it to a VF, check
that Nova heard about it, plan the host, release everything. The stack is stopped at the end,
also on failure; the exit code is 0 only when every step passed.

Needs a source checkout (deploy/ is not installed with the package) and Debian's
rabbitmq-server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cyborg_smartnic import traits
from cyborg_smartnic.cli.common import render_table
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.pci import PciAddress

REPO = Path(__file__).resolve().parents[1]
STACK_SCRIPT = REPO / "deploy" / "stack.py"
HOST_EXAMPLE = REPO / "deploy" / "host.example.yaml"
BIN = Path(sys.executable).parent
PROFILES_DIR = REPO / "profiles"
BIND_PROFILE = "ovs-offload"  # one VF, switchdev eswitch, physnet1
PLACEMENT_VERSION = "1.36"
# What a flavor with 2 vCPUs, 2 GiB and a 20 GB disk asks of the compute node.
FLAVOR_RESOURCES = "VCPU:2,MEMORY_MB:2048,DISK_GB:20"
BIND_TIMEOUT = 60.0


class DemoError(SmartNicError):
    msg_fmt = "%(step)s: %(reason)s"


@dataclass(frozen=True)
class Stack:
    """What deploy/stack.py wrote to its stack.json."""

    work_dir: Path
    hostname: str
    placement_url: str
    cyborg_url: str
    nova_url: str
    compute_rp_uuid: str
    sysfs_root: Path
    cyborg_config: Path
    clouds_yaml: Path
    cloud: str
    admin_token: str
    service_token: str
    logs: Path

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Stack:
        return cls(
            work_dir=Path(state["work_dir"]), hostname=state["hostname"],
            placement_url=state["placement_url"], cyborg_url=state["cyborg_url"],
            nova_url=state["nova_url"], compute_rp_uuid=state["compute_rp_uuid"],
            sysfs_root=Path(state["sysfs_root"]), cyborg_config=Path(state["cyborg_config"]),
            clouds_yaml=Path(state["clouds_yaml"]), cloud=state["cloud"],
            admin_token=state["admin_token"], service_token=state["service_token"],
            logs=Path(state["logs"]))


@dataclass(frozen=True)
class BoundVf:
    """Where an ARQ landed, resolved against the discovery model."""

    arq_uuid: str
    instance_uuid: str
    device_rp_uuid: str
    address: str
    pf_address: str
    physnet: str | None
    eswitch_mode: str | None
    model: str
    attach_info: Mapping[str, str]

    def summary(self) -> str:
        details = ", ".join(x for x in (self.physnet, self.eswitch_mode, self.model) if x)
        return f"bound ARQ {self.arq_uuid} -> VF {self.address} ({details})"


@dataclass
class DemoResult:
    """What the demo saw; the stack smoke test asserts on it."""

    stack: Stack | None = None
    expected_providers: set[str] = field(default_factory=set)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, list[Any]] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    bound: BoundVf | None = None
    nova_events: int = 0
    usage_after_release: int | None = None
    host_plan_refusal: str = ""
    host_plan: str = ""
    timings: dict[str, float] = field(default_factory=dict)


# -- the stack -----------------------------------------------------------------------------
def stack_argv(action: str, work_dir: Path, *extra: str) -> list[str]:
    if not STACK_SCRIPT.is_file():
        raise DemoError(step="stack", reason=f"{STACK_SCRIPT} not found: the demo runs from a "
                                             "source checkout of cyborg-smartnic")
    return [sys.executable, str(STACK_SCRIPT), action, "--work-dir", str(work_dir), *extra]


def start_stack(work_dir: Path, extra: Sequence[str], timeout: float) -> Stack:
    """Run `stack.py start` (its progress lines go to our stdout) and read its stack.json."""
    argv = stack_argv("start", work_dir, "--timeout", str(timeout), *extra)
    try:
        done = subprocess.run(argv, timeout=timeout + 60, check=False,
                              stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired as exc:
        raise DemoError(step="start the stack",
                        reason=f"no answer in {timeout + 60:.0f} s") from exc
    if done.returncode != 0:
        raise DemoError(step="start the stack", reason=done.stderr.strip() or
                        f"deploy/stack.py exited {done.returncode}")
    return Stack.from_state(json.loads((work_dir / "stack.json").read_text()))


def stop_stack(work_dir: Path, out: TextIO) -> None:
    done = subprocess.run(stack_argv("stop", work_dir), capture_output=True, text=True,
                          timeout=120, check=False)
    out.write(done.stdout)
    if done.returncode != 0:
        out.write(done.stderr)


# -- clients -------------------------------------------------------------------------------
class Clients:
    """The operator's openstacksdk connection and Nova's view (a service token on top)."""

    def __init__(self, stack: Stack) -> None:
        import openstack.config  # noqa: PLC0415 (heavy; only when a stack runs)
        from keystoneauth1 import adapter, session, token_endpoint  # noqa: PLC0415
        from keystoneauth1.service_token import ServiceTokenAuthWrapper  # noqa: PLC0415
        from openstack import connection  # noqa: PLC0415

        region = openstack.config.OpenStackConfig(
            config_files=[str(stack.clouds_yaml)]).get_one(cloud=stack.cloud)
        self.operator = connection.Connection(config=region)
        user = token_endpoint.Token(stack.cyborg_url, stack.admin_token)
        service = token_endpoint.Token(stack.cyborg_url, stack.service_token)
        nova_session = session.Session(auth=ServiceTokenAuthWrapper(user, service))
        # raise_exc=False: every answer goes through _json, which names the failed step.
        self.nova_cyborg = adapter.Adapter(nova_session, service_type="accelerator",
                                           endpoint_override=stack.cyborg_url + "/v2",
                                           raise_exc=False)
        self.nova = adapter.Adapter(
            session.Session(auth=token_endpoint.Token(stack.nova_url, stack.admin_token)),
            service_type="compute", endpoint_override=stack.nova_url, raise_exc=False)
        self.placement = adapter.Adapter(
            session.Session(auth=token_endpoint.Token(stack.placement_url, "admin")),
            service_type="placement", endpoint_override=stack.placement_url,
            default_microversion=PLACEMENT_VERSION, raise_exc=False)


def _json(response: Any, step: str, expect: Sequence[int] = (200,)) -> Any:
    if response.status_code not in expect:
        raise DemoError(step=step, reason=f"HTTP {response.status_code} from "
                                          f"{response.request.method} {response.url}: "
                                          f"{response.text[:300]}")
    return response.json() if response.content else None


# -- command line tool ---------------------------------------------------------------------
def tool(args: Sequence[str], env: Mapping[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run `cyborg-smartnic ARGS` as a user would."""
    return subprocess.run([str(BIN / "cyborg-smartnic"), *args], capture_output=True,
                          text=True, timeout=120, check=False,
                          env=None if env is None else {**os.environ, **env})


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def run_tool(args: Sequence[str], step: str, env: Mapping[str, str] | None = None) -> str:
    """`cyborg-smartnic ARGS`: its stdout, or DemoError with the error line it printed."""
    done = tool(args, env)
    if done.returncode != 0:
        raise DemoError(step=step, reason=f"cyborg-smartnic {' '.join(args)} exited "
                                          f"{done.returncode}: {_last_line(done.stderr)}")
    return done.stdout


def cloud_env(stack: Stack) -> dict[str, str]:
    """What openstacksdk clients (profile apply, host plan) need to reach the stack."""
    return {"OS_CLIENT_CONFIG_FILE": str(stack.clouds_yaml), "OS_CLOUD": stack.cloud}


def host_args(stack: Stack) -> list[str]:
    return ["--sysfs-root", str(stack.sysfs_root), "--config-file", str(stack.cyborg_config)]


# -- the steps -----------------------------------------------------------------------------
def show_discovery(stack: Stack, out: TextIO) -> dict[str, Any]:
    out.write(run_tool(["discover", *host_args(stack)], "discover"))
    data: dict[str, Any] = json.loads(
        run_tool(["discover", *host_args(stack), "-f", "json"], "discover"))
    return data


def expected_providers(stack: Stack) -> set[str]:
    devices = json.loads(run_tool(["report", *host_args(stack), "-f", "json"], "report"))
    return {str(dep["name"]) for dev in devices for dep in dev["deployable_list"]}


def show_reported(stack: Stack, clients: Clients, out: TextIO) -> dict[str, dict[str, Any]]:
    """The compute node's provider tree as Placement has it, next to Cyborg's deployables."""
    step = "reported resource providers"
    place = clients.placement
    tree = _json(place.get(f"/resource_providers?in_tree={stack.compute_rp_uuid}"), step)
    providers: dict[str, dict[str, Any]] = {}
    for rp in tree["resource_providers"]:
        if rp["uuid"] == stack.compute_rp_uuid:
            continue
        inventories = _json(place.get(f"/resource_providers/{rp['uuid']}/inventories"), step)
        rp_traits = _json(place.get(f"/resource_providers/{rp['uuid']}/traits"), step)
        providers[rp["name"]] = {
            "uuid": rp["uuid"],
            "inventories": {rc: inv["total"] for rc, inv in inventories["inventories"].items()},
            "traits": sorted(rp_traits["traits"]),
        }
    rows = [(name, ", ".join(f"{rc}={n}" for rc, n in sorted(p["inventories"].items())),
             "\n".join(p["traits"])) for name, p in sorted(providers.items())]
    out.write(render_table(("resource provider", "inventory", "traits"), rows) + "\n")
    deployables = list(clients.operator.accelerator.deployables())
    out.write(f"Cyborg knows {len(deployables)} deployables; Placement has "
              f"{len(providers)} providers under {stack.hostname}\n")
    if len(deployables) != len(providers):
        raise DemoError(step=step, reason="Cyborg's deployables and Placement's providers "
                                          "differ")
    return providers


def apply_profiles(stack: Stack, clients: Clients, out: TextIO) -> dict[str, list[Any]]:
    """`cyborg-smartnic profile apply profiles/` twice (the second must change nothing);
    returns the device profiles Cyborg now has, name -> groups."""
    step = "profile apply"
    args = ["profile", "apply", "--yes", "--os-cloud", stack.cloud, str(PROFILES_DIR)]
    applied = run_tool(args, step, env=cloud_env(stack))
    # The tool prints its plan, then one "done:" line per change: show the plan and the end.
    out.write("".join(line for line in applied.splitlines(keepends=True)
                      if not line.startswith("done: ")))
    again = run_tool(args, step, env=cloud_env(stack))
    if "Nothing to change." not in again:
        raise DemoError(step=step, reason=f"a second apply changed things: {again.strip()}")
    out.write("applied again: Nothing to change.\n")
    profiles = {str(dp.name): list(dp.groups)
                for dp in clients.operator.accelerator.device_profiles()}
    if BIND_PROFILE not in profiles:
        raise DemoError(step=step, reason=f"no device profile {BIND_PROFILE} in Cyborg")
    return profiles


def flavors(stack: Stack, clients: Clients) -> dict[str, dict[str, Any]]:
    """Device profile name -> the Nova (stub) flavor that asks for it."""
    found = _json(clients.nova.get("/flavors/detail"), "flavors")
    return {f["extra_specs"]["accel:device_profile"]: f for f in found["flavors"]
            if "accel:device_profile" in f.get("extra_specs", {})}


def candidate_query(groups: Sequence[Mapping[str, str]],
                    flavor: Mapping[str, Any] | None) -> str:
    """The GET /allocation_candidates Nova's scheduler makes for a flavor and its profile."""
    if flavor is None:
        root = FLAVOR_RESOURCES
        policy = "none"
    else:
        root = f"VCPU:{flavor['vcpus']},MEMORY_MB:{flavor['ram']},DISK_GB:{flavor['disk']}"
        policy = flavor["extra_specs"].get("group_policy", "none")
    query = [f"resources={root}", f"group_policy={policy}", "limit=10"]
    for index, group in enumerate(groups):
        suffix = f"_accel{index}"
        resources = [f"{k.split(':', 1)[1]}:{v}" for k, v in group.items()
                     if k.startswith("resources:")]
        required = [k.split(":", 1)[1] for k, v in group.items()
                    if k.startswith("trait:") and v == "required"]
        forbidden = [f"!{k.split(':', 1)[1]}" for k, v in group.items()
                     if k.startswith("trait:") and v == "forbidden"]
        query.append(f"resources{suffix}={','.join(resources)}")
        if required or forbidden:
            query.append(f"required{suffix}={','.join(required + forbidden)}")
    return "/allocation_candidates?" + "&".join(query)


def device_rows(found: Mapping[str, Any], names: Mapping[str, str]) -> list[tuple[str, ...]]:
    """(candidate #, request group, device provider name, what it takes) per device group."""
    rows: list[tuple[str, ...]] = []
    for number, request in enumerate(found["allocation_requests"], start=1):
        for suffix, rps in sorted(request.get("mappings", {}).items()):
            for rp in rps:
                if rp in names:  # not the compute node itself (VCPU, MEMORY_MB, DISK_GB)
                    used = request["allocations"][rp]["resources"]
                    rows.append((str(number), suffix, names[rp],
                                 ", ".join(f"{k}={v}" for k, v in used.items())))
    return rows


def allocation_candidates(stack: Stack, clients: Clients, profiles: Mapping[str, list[Any]],
                          providers: Mapping[str, Mapping[str, Any]],
                          out: TextIO) -> dict[str, Any]:
    """Candidates for every applied profile (an overview), then in full for BIND_PROFILE."""
    step = "allocation candidates"
    names = {str(p["uuid"]): name for name, p in providers.items()}
    by_profile = flavors(stack, clients)
    overview = []
    chosen: dict[str, Any] = {}
    chosen_path = ""
    for name, groups in sorted(profiles.items()):
        flavor = by_profile.get(name)
        path = candidate_query(groups, flavor)
        response = clients.placement.get(path)
        unknown = re.search(r"No such trait\(s\): ([A-Z0-9_, ]+)", response.text)
        if response.status_code == 400 and unknown:
            # Placement refuses traits nobody created, as Nova's scheduler would find out.
            overview.append((name, flavor["name"] if flavor else "(port)", "0",
                             f"none: no host reports {unknown.group(1).strip(' .')}"))
            continue
        found = _json(response, step)
        pools = sorted({row[2].removeprefix(f"{stack.hostname}_")
                        for row in device_rows(found, names)})
        overview.append((name, flavor["name"] if flavor else "(port)",
                         str(len(found["allocation_requests"])), ", ".join(pools) or "-"))
        if name == BIND_PROFILE:
            chosen = dict(found)
            chosen_path = path
    out.write(render_table(("device profile", "flavor", "candidates", "device pools"),
                           overview) + "\n")
    out.write(f"\n{BIND_PROFILE}: GET {chosen_path}\n")
    out.write(render_table(("#", "request group", "device resource provider", "takes"),
                           device_rows(chosen, names)) + "\n")
    if not chosen.get("allocation_requests"):
        raise DemoError(step=step, reason=f"Placement found no provider for {BIND_PROFILE}")
    return chosen


def claim_and_bind(stack: Stack, clients: Clients, profile: str,
                   candidates: Mapping[str, Any], discovery: Mapping[str, Any],
                   *, out: TextIO) -> BoundVf:
    """Nova's part: claim the first candidate, create the ARQ, bind it, wait until Bound."""
    step = "bind"
    instance = str(uuid.uuid4())
    request = candidates["allocation_requests"][0]
    claim = {"allocations": request["allocations"], "consumer_generation": None,
             "project_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4())}
    _json(clients.placement.put(f"/allocations/{instance}", json=claim), "claim", (204,))
    out.write(f"claimed the first candidate for instance {instance}\n")

    created = clients.nova_cyborg.post("/accelerator_requests",
                                       json={"device_profile_name": profile})
    arqs = _json(created, "create ARQ", (201,))["arqs"]
    patch: dict[str, list[dict[str, str]]] = {}
    for arq in arqs:
        group = f"_accel{arq['device_profile_group_id']}"
        device_rp = request["mappings"][group][0]
        patch[arq["uuid"]] = [
            {"path": "/hostname", "op": "add", "value": stack.hostname},
            {"path": "/device_rp_uuid", "op": "add", "value": device_rp},
            {"path": "/instance_uuid", "op": "add", "value": instance},
        ]
    _json(clients.nova_cyborg.patch("/accelerator_requests", json=patch),
          step, (202,))
    bound = _wait_bound(clients, instance, len(arqs))
    arq = bound[0]
    out.write(f"ARQ {arq['uuid']}: {arq['state']}, attach handle {arq['attach_handle_type']} "
              f"{json.dumps(arq['attach_handle_info'], sort_keys=True)}\n")
    return resolve_vf(arq, discovery)


def _wait_bound(clients: Clients, instance: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + BIND_TIMEOUT
    while True:
        arqs = _json(clients.nova_cyborg.get(
            f"/accelerator_requests?instance={instance}"), "bind")["arqs"]
        states = {a["state"] for a in arqs}
        if "BindFailed" in states:
            raise DemoError(step="bind", reason=f"Cyborg reports BindFailed: {arqs}")
        if len(arqs) == count and states == {"Bound"}:
            return list(arqs)
        if time.monotonic() > deadline:
            raise DemoError(step="bind", reason=f"ARQs not Bound after {BIND_TIMEOUT:.0f} s: "
                                                f"{sorted(states)}")
        time.sleep(0.5)


def resolve_vf(arq: Mapping[str, Any], discovery: Mapping[str, Any]) -> BoundVf:
    """Map the ARQ's PCI attach handle back to a VF of the discovered host."""
    info = arq["attach_handle_info"]
    if arq["attach_handle_type"] != "PCI":
        raise DemoError(step="bind", reason=f"attach handle type {arq['attach_handle_type']}")
    address = str(PciAddress.parse(
        f"{info['domain']}:{info['bus']}:{info['device']}.{info['function']}"))
    for pf in discovery["physical_functions"]:
        for vf in pf["virtual_functions"]:
            if vf["address"] == address:
                return BoundVf(
                    arq_uuid=arq["uuid"], instance_uuid=arq["instance_uuid"],
                    device_rp_uuid=arq["device_rp_uuid"], address=address,
                    pf_address=pf["address"], physnet=info.get("physical_network"),
                    eswitch_mode=pf.get("eswitch_mode"), model=pf.get("model") or "",
                    attach_info=dict(info))
    raise DemoError(step="bind", reason=f"{address} is not a VF of the discovered host")


def nova_events(stack: Stack) -> int:
    """How many external-event POSTs the Nova stub answered with 200 (from its access log)."""
    try:
        log = (stack.logs / "nova-stub.log").read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in log.splitlines()
               if "POST /v2.1/os-server-external-events" in line and '" 200 ' in line)


def show_host_plan(stack: Stack, out: TextIO, bound: BoundVf | None) -> str:
    """`host plan` for deploy/host.example.yaml, asking Cyborg which VFs are bound.

    The example config resizes the PF whose VF the demo bound: while the ARQ is bound the
    plan must refuse (exit 1, naming the ARQ); once released it must pass.
    """
    step = "host plan"
    if not HOST_EXAMPLE.is_file():
        raise DemoError(step=step, reason=f"{HOST_EXAMPLE} not found")
    args = ["host", "plan", "--sysfs-root", str(stack.sysfs_root), "--config-file",
            str(stack.cyborg_config), "--os-cloud", stack.cloud, str(HOST_EXAMPLE)]
    done = tool(args, cloud_env(stack))
    out.write(done.stdout)
    error = _last_line(done.stderr)
    if bound is None:
        if done.returncode != 0:
            raise DemoError(step=step, reason=f"exited {done.returncode}: {error}")
        return done.stdout
    out.write(error + "\n")
    if done.returncode != 1 or bound.arq_uuid not in error:
        raise DemoError(step=step, reason=f"did not refuse to disturb {bound.address} "
                                          f"(exit {done.returncode}): {error}")
    return error


def release(clients: Clients, bound: BoundVf, out: TextIO) -> int:
    """Nova deleting the server: delete its ARQs, drop its allocations; returns VF usage left."""
    _json(clients.nova_cyborg.delete(f"/accelerator_requests?instance={bound.instance_uuid}"),
          "release", (204,))
    _json(clients.placement.delete(f"/allocations/{bound.instance_uuid}"),
          "release", (204,))
    usages = _json(clients.placement.get(f"/resource_providers/{bound.device_rp_uuid}/usages"),
                   "release")["usages"]
    used = int(usages.get(traits.DEFAULT_RESOURCE_CLASS, 0))
    out.write(f"deleted ARQ {bound.arq_uuid} and the allocations of instance "
              f"{bound.instance_uuid}; VFs in use on that provider: {used}\n")
    return used


# -- driver --------------------------------------------------------------------------------
class Steps:
    """Numbered, timed step headers on the output."""

    def __init__(self, out: TextIO, result: DemoResult) -> None:
        self.out = out
        self.result = result
        self.number = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.number += 1
        self.out.write(f"\n== {self.number}. {title}\n")
        self.out.flush()
        started = time.monotonic()
        yield
        took = round(time.monotonic() - started, 1)
        self.result.timings[title] = took
        self.out.write(f"   ok ({took} s)\n")
        self.out.flush()


def run(work_dir: Path, out: TextIO, *, timeout: float = 240.0, keep: bool = False,
        stack_extra: Sequence[str] = ()) -> DemoResult:
    """Every step in order; the stack is stopped on the way out unless keep is set."""
    result = DemoResult()
    steps = Steps(out, result)
    started = time.monotonic()
    try:
        with steps.step("Start the local stack (deploy/stack.py)"):
            stack = start_stack(work_dir, stack_extra, timeout)
            result.stack = stack
        _run_steps(stack, steps, result, out)
    finally:
        if not keep:
            out.write("\n== Stop the local stack\n")
            stop_stack(work_dir, out)
        else:
            out.write(f"\nstack left running: python {STACK_SCRIPT} stop --work-dir "
                      f"{work_dir}\n")
    result.timings["total"] = round(time.monotonic() - started, 1)
    return result


def _run_steps(stack: Stack, steps: Steps, result: DemoResult, out: TextIO) -> None:
    with steps.step(f"What discovery sees on the example host ({stack.sysfs_root})"):
        discovery = show_discovery(stack, out)
    with steps.step("What the agent reported: Placement's provider tree"):
        clients = Clients(stack)
        result.expected_providers = expected_providers(stack)
        result.providers = show_reported(stack, clients, out)
        missing = result.expected_providers - set(result.providers)
        if missing:
            raise DemoError(step="report", reason=f"not in Placement: {sorted(missing)}")
    with steps.step(f"Apply {PROFILES_DIR.name}/ (device profiles and flavors) through the APIs"):
        result.profiles = apply_profiles(stack, clients, out)
    with steps.step("Allocation candidates from Placement, as Nova's scheduler asks"):
        candidates = allocation_candidates(stack, clients, result.profiles, result.providers,
                                           out)
        names = {str(p["uuid"]): name for name, p in result.providers.items()}
        result.candidates = sorted({names[rp] for req in candidates["allocation_requests"]
                                    for rps in req["mappings"].values() for rp in rps
                                    if rp in names})
    with steps.step("Claim, create and bind an ARQ as Nova would"):
        bound = claim_and_bind(stack, clients, BIND_PROFILE, candidates, discovery, out=out)
        result.bound = bound
        result.nova_events = nova_events(stack)
        out.write(f"Nova stub answered {result.nova_events} accelerator-request-bound "
                  "event(s)\n")
        if result.nova_events < 1:
            raise DemoError(step="bind", reason="Nova was not notified of the bind")
        out.write(f"\n   {bound.summary()}\n")
    with steps.step("Host plan (deploy/host.example.yaml) refuses to touch the bound VF"):
        result.host_plan_refusal = show_host_plan(stack, out, bound)
    with steps.step("Release the VF as Nova would on server delete"):
        result.usage_after_release = release(clients, bound, out)
        if result.usage_after_release != 0:
            raise DemoError(step="release", reason="the VF is still allocated")
    with steps.step("Host plan again, now that nothing is bound"):
        result.host_plan = show_host_plan(stack, out, None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cyborg_smartnic.demo",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", default=str(REPO / "build" / "demo"),
                        help="the stack's work dir (default build/demo)")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds for the stack to start (default 240)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the stack running at the end (stop it with stack.py stop)")
    return parser


def main(argv: Sequence[str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    errors = err or sys.stderr
    try:
        result = run(Path(args.work_dir).resolve(), stream, timeout=args.timeout,
                     keep=args.keep)
    except SmartNicError as exc:
        errors.write(f"demo: FAILED: {exc}\n")
        return 1
    except Exception as exc:  # a bug or an unexpected answer: say where, then fail
        traceback.print_exc(file=errors)
        errors.write(f"demo: FAILED: unexpected {exc!r}\n")
        return 1
    except KeyboardInterrupt:
        errors.write("demo: interrupted\n")
        return 130
    stream.write(_timing_table(result.timings) + "\n")
    if result.bound:
        stream.write(f"demo: OK: {result.bound.summary()}\n")
    return 0


def _timing_table(timings: Mapping[str, float]) -> str:
    return render_table(("step", "seconds"), [(name, f"{secs:.1f}")
                                              for name, secs in timings.items()])


if __name__ == "__main__":
    sys.exit(main())
