#!/usr/bin/env python3
"""`make demo`: real servers on SmartNIC VFs, on a local stack started by deploy/stack.py.

Starts the local stack (MariaDB, RabbitMQ, Placement, Cyborg with the smartnic driver
reading the bundled example host, real Nova with the fake virt driver, real Neutron with
the image and Neutron-agent stand-ins), then does what an operator does: look at what was
discovered and reported, apply profiles/ (device profiles and flavors), check which profiles
the host can serve, boot a server from each flavor that it can serve and show the VF Nova
and Cyborg gave it, create the Neutron port a port profile renders and boot a server with
it (ARQ bound, port bound by sriovnicswitch to that VF, all released on delete),
ask `host plan` to resize a PF under a running server (it must refuse) and `host plan
--drain` to drain the host first (the server shows BLOCKED: Nova 34 does not live-migrate
accelerator servers), delete the
servers and see the VFs free again, and boot one flavor the host cannot serve (NoValidHost,
with the reason `profile check` gives). The stack is stopped at the end, also on failure;
the exit code is 0 only when every step passed.

    python deploy/demo.py [--work-dir build/demo] [--keep]
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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a file: import deploy.* from this checkout, not deploy/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from cyborg_smartnic.cli.common import render_table
from cyborg_smartnic.errors import SmartNicError
from cyborg_smartnic.pci import PciAddress
from deploy.stacklib import neutron_ports, noauth
from deploy.stacklib.client import (
    ApiError,
    Clients,
    StackInfo,
    allocations_of,
    arqs_of,
    boot,
    delete_server,
    json_of,
    vf_usage,
    wait_server,
)

DEPLOY = Path(__file__).resolve().parent
REPO = DEPLOY.parent
STACK_SCRIPT = DEPLOY / "stack.py"
HOST_EXAMPLE = DEPLOY / "host.example.yaml"
PROFILES_DIR = REPO / "profiles"
BIN = Path(sys.executable).parent
# Port profiles of profiles/ have no flavor; until the stack runs Neutron (ports), the demo
# makes a throwaway flavor for two of them: one whose VF sits on the PF that
# deploy/host.example.yaml resizes (so `host plan` has a bound VF to refuse to disturb),
# and one the example host cannot serve.
PLAN_PROFILE = "sriov-port"  # a Cyborg port profile: its VF is on the PF host.example.yaml resizes
UNSERVABLE_PROFILE = "bluefield-nic-vfs"


class DemoError(SmartNicError):
    msg_fmt = "%(step)s: %(reason)s"


@dataclass(frozen=True)
class BoundVf:
    """One VF a server got: its ARQ, resolved against the discovery model and Placement."""

    arq_uuid: str
    instance_uuid: str
    device_rp_uuid: str
    pool: str
    address: str
    pf_address: str
    physnet: str | None
    eswitch_mode: str | None
    model: str
    attach_info: Mapping[str, str]

    def summary(self) -> str:
        details = ", ".join(x for x in (self.physnet, self.eswitch_mode, self.model) if x)
        return f"VF {self.address} ({details}; pool {self.pool}; ARQ {self.arq_uuid})"


@dataclass
class Boot:
    """One server the demo booted and what it saw of it."""

    profile: str
    flavor: str
    server_id: str = ""
    status: str = ""
    fault: str = ""
    seconds: float = 0.0
    vfs: list[BoundVf] = field(default_factory=list)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)
    scheduler_query: str = ""
    arqs_after_delete: int = -1
    usage_after_delete: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoResult:
    """What the demo saw; the stack tests assert on it."""

    stack: StackInfo | None = None
    expected_providers: set[str] = field(default_factory=set)
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, list[Any]] = field(default_factory=dict)
    check: dict[str, dict[str, Any]] = field(default_factory=dict)
    boots: list[Boot] = field(default_factory=list)
    refused: Boot | None = None
    host_plan_refusal: str = ""
    drain_plan: str = ""  # `host plan --drain` under that server: the drain shown first
    host_plan: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    port_boot: neutron_ports.PortBoot | None = None


# -- the stack -----------------------------------------------------------------------------
def stack_argv(action: str, work_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(STACK_SCRIPT), action, "--work-dir", str(work_dir), *extra]


def start_stack(work_dir: Path, extra: Sequence[str], timeout: float) -> StackInfo:
    """Run `stack.py start` (its progress lines go to our stdout) and read its stack.json."""
    argv = stack_argv("start", work_dir, "--timeout", str(timeout), *extra)
    try:
        done = subprocess.run(argv, timeout=timeout + 60, check=False, stdin=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired as exc:
        raise DemoError(step="start the stack",
                        reason=f"no answer in {timeout + 60:.0f} s") from exc
    if done.returncode != 0:
        raise DemoError(step="start the stack", reason=done.stderr.strip() or
                        f"deploy/stack.py exited {done.returncode}")
    return StackInfo.load(work_dir)


def stop_stack(work_dir: Path, out: TextIO) -> None:
    done = subprocess.run(stack_argv("stop", work_dir), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL,
                          timeout=180, check=False)
    out.write(done.stdout)
    if done.returncode != 0:
        out.write(done.stderr)


# -- command line tool ---------------------------------------------------------------------
def tool(args: Sequence[str], env: Mapping[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    """Run `cyborg-smartnic ARGS` as a user would."""
    return subprocess.run([str(BIN / "cyborg-smartnic"), *args], capture_output=True,
                          stdin=subprocess.DEVNULL,
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


def cloud_env(stack: StackInfo) -> dict[str, str]:
    """What openstacksdk clients (profile apply, host plan) need to reach the stack."""
    return {"OS_CLIENT_CONFIG_FILE": str(stack.clouds_yaml), "OS_CLOUD": stack.cloud}


def host_args(stack: StackInfo) -> list[str]:
    return ["--sysfs-root", str(stack.sysfs_root), "--config-file", str(stack.cyborg_config)]


# -- looking at the host and the report ----------------------------------------------------
def show_discovery(stack: StackInfo, out: TextIO) -> dict[str, Any]:
    out.write(run_tool(["discover", *host_args(stack)], "discover"))
    data: dict[str, Any] = json.loads(
        run_tool(["discover", *host_args(stack), "-f", "json"], "discover"))
    return data


def expected_providers(stack: StackInfo) -> set[str]:
    devices = json.loads(run_tool(["report", *host_args(stack), "-f", "json"], "report"))
    return {str(dep["name"]) for dev in devices for dep in dev["deployable_list"]}


def show_reported(stack: StackInfo, clients: Clients, out: TextIO
                  ) -> dict[str, dict[str, Any]]:
    """The compute node's provider tree as Placement has it, next to Cyborg's deployables."""
    step = "reported resource providers"
    place = clients.placement
    tree = json_of(place.get(f"/resource_providers?in_tree={stack.compute_rp_uuid}"), step)
    providers: dict[str, dict[str, Any]] = {}
    for rp in tree["resource_providers"]:
        if rp["uuid"] == stack.compute_rp_uuid:
            continue
        inventories = json_of(place.get(f"/resource_providers/{rp['uuid']}/inventories"), step)
        rp_traits = json_of(place.get(f"/resource_providers/{rp['uuid']}/traits"), step)
        providers[rp["name"]] = {
            "uuid": rp["uuid"],
            "inventories": {rc: inv["total"] for rc, inv in inventories["inventories"].items()},
            "traits": sorted(rp_traits["traits"]),
        }
    rows = [(name, ", ".join(f"{rc}={n}" for rc, n in sorted(p["inventories"].items())),
             "\n".join(p["traits"])) for name, p in sorted(providers.items())]
    out.write(render_table(("resource provider", "inventory", "traits"), rows) + "\n")
    deployables = json_of(clients.cyborg.get("/deployables"), step)["deployables"]
    out.write(f"Cyborg knows {len(deployables)} deployables; Placement has "
              f"{len(providers)} providers under {stack.hostname}\n")
    if len(deployables) != len(providers):
        raise DemoError(step=step, reason="Cyborg's deployables and Placement's providers "
                                          "differ")
    return providers


def apply_profiles(stack: StackInfo, clients: Clients, out: TextIO) -> dict[str, list[Any]]:
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
    found = json_of(clients.cyborg.get("/device_profiles"), step)["device_profiles"]
    return {str(dp["name"]): list(dp["groups"]) for dp in found}


def check_profiles(stack: StackInfo, out: TextIO) -> dict[str, dict[str, Any]]:
    """`profile check` on the stack's host: which profiles it can serve, and why not."""
    args = ["profile", "check", *host_args(stack), str(PROFILES_DIR)]
    done = tool(args)
    if done.returncode != 0:
        raise DemoError(step="profile check", reason=_last_line(done.stderr))
    out.write(done.stdout)
    out.write(done.stderr)  # what Nova will refuse for servers of each servable profile
    rows = json.loads(run_tool([*args, "-f", "json"], "profile check"))["profiles"]
    return {str(row["profile"]): dict(row) for row in rows}


def flavors_by_profile(clients: Clients) -> dict[str, dict[str, Any]]:
    """Device profile name -> the Nova flavor that asks for it (`accel:device_profile`)."""
    found = json_of(clients.nova.get("/flavors/detail"), "flavors")["flavors"]
    return {f["extra_specs"]["accel:device_profile"]: f for f in found
            if "accel:device_profile" in f.get("extra_specs", {})}


# -- servers -------------------------------------------------------------------------------
def delete_demo_servers(clients: Clients, out: TextIO) -> None:
    """Servers named demo-* that a failed step left behind."""
    found = json_of(clients.nova.get("/servers"), "servers")["servers"]
    for server in found:
        if server["name"].startswith("demo-"):
            out.write(f"deleting {server['name']} ({server['id']}) left by a failed step\n")
            delete_server(clients, server["id"])


def resolve_vf(arq: Mapping[str, Any], discovery: Mapping[str, Any],
               pools: Mapping[str, str]) -> BoundVf:
    """Map a bound ARQ's PCI attach handle back to a VF of the discovered host."""
    if arq["state"] != "Bound" or arq["attach_handle_type"] != "PCI":
        raise DemoError(step="bind", reason=f"ARQ {arq['uuid']} is {arq['state']} with "
                                            f"attach handle {arq['attach_handle_type']}")
    info = arq["attach_handle_info"]
    address = str(PciAddress.from_attach_info(info))
    for pf in discovery["physical_functions"]:
        for vf in pf["virtual_functions"]:
            if vf["address"] == address:
                return BoundVf(
                    arq_uuid=arq["uuid"], instance_uuid=arq["instance_uuid"],
                    device_rp_uuid=arq["device_rp_uuid"],
                    pool=pools.get(arq["device_rp_uuid"], arq["device_rp_uuid"]),
                    address=address, pf_address=pf["address"],
                    physnet=info.get("physical_network"),
                    eswitch_mode=pf.get("eswitch_mode"), model=pf.get("model") or "",
                    attach_info=dict(info))
    raise DemoError(step="bind", reason=f"{address} is not a VF of the discovered host")


def scheduler_query(stack: StackInfo, since: int) -> str:
    """The last GET /allocation_candidates in Placement's log after byte offset `since`:
    the query Nova's scheduler made for the boot (Placement logs every request)."""
    try:
        with open(stack.logs / "placement.log", "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    found = re.findall(r'"GET (/allocation_candidates\?[^ "]+)', text)
    return found[-1] if found else ""


def _log_size(stack: StackInfo) -> int:
    try:
        return (stack.logs / "placement.log").stat().st_size
    except OSError:
        return 0


def boot_and_show(stack: StackInfo, clients: Clients, profile: str,
                  flavor: Mapping[str, Any], *, discovery: Mapping[str, Any],
                  pools: Mapping[str, str], out: TextIO) -> Boot:
    """Boot one server from flavor; on ACTIVE, show its VFs and what Placement allocated."""
    result = Boot(profile=profile, flavor=str(flavor["name"]))
    mark = _log_size(stack)
    started = time.monotonic()
    result.server_id = boot(stack, clients, flavor, f"demo-{profile}")
    server = wait_server(clients, result.server_id)
    result.seconds = round(time.monotonic() - started, 1)
    result.status = server["status"]
    result.fault = str(server.get("fault", {}).get("message", ""))
    result.scheduler_query = scheduler_query(stack, mark)
    out.write(f"server {server['name']} ({result.server_id}), flavor {result.flavor}: "
              f"{result.status} after {result.seconds} s\n")
    if result.scheduler_query:
        out.write(f"  Nova's scheduler asked Placement: GET {result.scheduler_query}\n")
    if result.status != "ACTIVE":
        out.write(f"  fault: {result.fault}\n")
        return result
    result.vfs = [resolve_vf(arq, discovery, pools) for arq in arqs_of(clients, result.server_id)]
    for vf in result.vfs:
        out.write(f"  ARQ bound: {vf.summary()}\n")
    result.usage = allocations_of(clients, result.server_id)
    rows = [(pools.get(rp, f"{stack.hostname} (compute node)"),
             ", ".join(f"{rc}={n}" for rc, n in sorted(used.items())))
            for rp, used in sorted(result.usage.items())]
    out.write(render_table(("Placement allocation of the server", "resources"), rows) + "\n")
    return result


def delete_and_show(clients: Clients, result: Boot, out: TextIO) -> None:
    delete_server(clients, result.server_id)
    result.arqs_after_delete = len(arqs_of(clients, result.server_id))
    result.usage_after_delete = {vf.pool: vf_usage(clients, vf.device_rp_uuid)
                                 for vf in result.vfs}
    free = ", ".join(f"{pool}: {used} in use" for pool, used in
                     sorted(result.usage_after_delete.items()))
    out.write(f"deleted {result.server_id}: {result.arqs_after_delete} ARQ(s) left; "
              f"VFs {free or '-'}\n")
    if result.arqs_after_delete or any(result.usage_after_delete.values()):
        raise DemoError(step="delete", reason=f"server {result.server_id} left ARQs or VF "
                                              "allocations behind")


@contextmanager
def temporary_flavor(clients: Clients, profile: str) -> Iterator[dict[str, Any]]:
    """A flavor `demo.PROFILE` asking for a device profile, deleted on the way out."""
    step = f"flavor for {profile}"
    flavor = json_of(clients.nova.post("/flavors", json={"flavor": {
        "name": f"demo.{profile}", "vcpus": 2, "ram": 2048, "disk": 10}}), step)["flavor"]
    try:
        json_of(clients.nova.post(f"/flavors/{flavor['id']}/os-extra_specs", json={
            "extra_specs": {"accel:device_profile": profile}}), step)
        yield dict(flavor)
    finally:
        clients.nova.delete(f"/flavors/{flavor['id']}")


def boot_unservable(stack: StackInfo, clients: Clients, check: Mapping[str, Any],
                    out: TextIO) -> Boot:
    """A flavor asking for a profile the host cannot serve: Nova must answer NoValidHost."""
    with temporary_flavor(clients, UNSERVABLE_PROFILE) as flavor:
        out.write(f"flavor {flavor['name']} asks for {UNSERVABLE_PROFILE}; profile check "
                  "said this host cannot serve it:\n")
        for problem in check.get("problems", []):
            out.write(f"  {problem}\n")
        result = boot_and_show(stack, clients, UNSERVABLE_PROFILE, flavor, discovery={},
                               pools={}, out=out)
        delete_server(clients, result.server_id)
    if result.status != "ERROR" or "No valid host" not in result.fault:
        raise DemoError(step="unservable profile", reason=f"expected ERROR with No valid "
                                                          f"host, got {result.status}: "
                                                          f"{result.fault}")
    return result


def plan_under_a_server(stack: StackInfo, clients: Clients, *, discovery: Mapping[str, Any],
                        pools: Mapping[str, str], out: TextIO) -> tuple[Boot, str, str]:
    """A server on a VF of the PF host.example.yaml resizes; `host plan` must refuse, and
    `host plan --drain` shows the drain first, the server BLOCKED by Nova's rule."""
    with temporary_flavor(clients, PLAN_PROFILE) as flavor:
        booted = boot_and_show(stack, clients, PLAN_PROFILE, flavor, discovery=discovery,
                               pools=pools, out=out)
        if booted.status != "ACTIVE":
            raise DemoError(step=f"boot {flavor['name']}",
                            reason=f"{booted.status}: {booted.fault}")
        refusal = show_host_plan(stack, out, booted.vfs)
        drain_plan = show_drain_plan(stack, out, booted)
        delete_and_show(clients, booted, out)
    return booted, refusal, drain_plan


def show_host_plan(stack: StackInfo, out: TextIO, busy: Sequence[BoundVf]) -> str:
    """`host plan` for deploy/host.example.yaml, asking Cyborg which VFs are bound.

    The example config changes every PF of the example host: while a server holds VFs the
    plan must refuse (exit 1, naming an ARQ); once they are free it must pass.
    """
    step = "host plan"
    args = ["host", "plan", *host_args(stack), "--os-cloud", stack.cloud, str(HOST_EXAMPLE)]
    done = tool(args, cloud_env(stack))
    out.write(done.stdout)
    error = _last_line(done.stderr)
    if not busy:
        if done.returncode != 0:
            raise DemoError(step=step, reason=f"exited {done.returncode}: {error}")
        return done.stdout
    out.write(error + "\n")
    if done.returncode != 1 or not any(vf.arq_uuid in error for vf in busy):
        raise DemoError(step=step, reason=f"did not refuse to disturb a bound VF "
                                          f"(exit {done.returncode}): {error}")
    return error


def show_drain_plan(stack: StackInfo, out: TextIO, booted: Boot) -> str:
    """`host plan --drain`: the drain of the host comes first, naming the server holding a
    VF the steps disturb; an accelerator server cannot be live-migrated (exit 1)."""
    step = "host plan --drain"
    args = ["host", "plan", "--drain", *host_args(stack), "--os-cloud", stack.cloud,
            str(HOST_EXAMPLE)]
    out.write(f"$ cyborg-smartnic {' '.join(args)}\n")
    done = tool(args, cloud_env(stack))
    drain = done.stdout.split("\n\n", 1)[0]
    out.write(drain + "\n" + _last_line(done.stderr) + "\n")
    if done.returncode != 1 or booted.server_id not in drain or "BLOCKED" not in drain:
        raise DemoError(step=step, reason=f"did not show the server blocking the drain "
                                          f"(exit {done.returncode}): "
                                          f"{_last_line(done.stderr)}")
    return drain


# -- a server with a Neutron port from a port profile (real Neutron) ------------------------
def boot_with_profile_port(stack: StackInfo, clients: Clients, out: TextIO
                           ) -> neutron_ports.PortBoot:
    """The port `profile render` gives for a Cyborg-scheduled port profile, created on the
    stack's Neutron; a server booted with it; its ARQ, the port's binding and the release."""
    step = "boot with a port"
    state = json.loads((stack.work_dir / "stack.json").read_text())
    rendered = json.loads(run_tool(["profile", "render", "-f", "json", str(PROFILES_DIR)],
                                   step))
    networks = {f"provider-{p}" for p in state["provider_networks"]}
    candidates = sorted((name, r) for name, r in neutron_ports.port_profiles(rendered).items()
                        if r.cyborg_scheduled and r.network in networks)
    if not candidates:
        raise DemoError(step=step, reason="no accelerator-direct port profile in profiles/ "
                                          "on a network of this host")
    profile, request = candidates[0]
    arguments = next(p["port_arguments"] for p in neutron_ports.rendered_profiles(rendered)
                     if p["name"] == profile)
    out.write(f"profile {profile}: openstack port create {' '.join(arguments)} demo-port\n")
    flavor = json_of(clients.nova.post("/flavors", json={"flavor": {
        "name": "demo.port", "vcpus": 1, "ram": 512, "disk": 1}}), step)["flavor"]
    try:
        booted = neutron_ports.boot_with_port(state, clients, profile, request,
                                              flavor_id=flavor["id"], name="demo-port",
                                              project_id=noauth.PROJECT_ID)
    finally:
        clients.nova.delete(f"/flavors/{flavor['id']}")
    out.write(f"server demo-port ({booted.server_id}) with port {booted.port_id} on "
              f"provider-{booted.network_physnet}: {booted.status} after {booted.seconds} s\n")
    for arq in booted.arqs:
        out.write(f"  ARQ {arq['uuid']} {arq['state']} ({arq['device_profile_name']}), VF "
                  f"{arq['attach_handle_info']}\n")
    out.write(f"  port bound by {booted.bound_by}: binding:vif_type {booted.vif_type}, "
              f"binding:profile {json.dumps(booted.binding_profile, sort_keys=True)}\n")
    out.write(f"  after delete: port {booted.released['binding:vif_type']}, "
              f"{booted.released['arqs_left']} ARQ(s), "
              f"{booted.released['allocations_left']} allocation(s) left\n")
    arq_vfs = [arq["attach_handle_info"] for arq in booted.arqs]
    slot = booted.binding_profile.get("pci_slot")
    if (booted.status != "ACTIVE" or booted.vif_type != "hw_veb" or len(arq_vfs) != 1
            or slot != str(PciAddress.parse("{domain}:{bus}:{device}.{function}".format(
                **arq_vfs[0]))) or booted.released["binding:vif_type"] != "unbound"
            or booted.released["arqs_left"] or booted.released["allocations_left"]):
        raise DemoError(step=step, reason=f"server {booted.status} ({booted.fault}), port "
                                          f"{booted.vif_type} on {slot}, ARQs {arq_vfs}, "
                                          f"after delete {booted.released}")
    return booted


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
        stack_extra: Sequence[str] = (), start: bool = True) -> DemoResult:
    """Every step in order. With start=False the stack in work_dir is already running
    (the stack tests share one) and is left running; otherwise it is started here and
    stopped on the way out unless keep is set."""
    result = DemoResult()
    steps = Steps(out, result)
    started = time.monotonic()
    try:
        if start:
            with steps.step("Start the local stack (deploy/stack.py)"):
                result.stack = start_stack(work_dir, stack_extra, timeout)
        else:
            result.stack = StackInfo.load(work_dir)
        try:
            _run_steps(result.stack, steps, result, out)
        finally:
            if not start or keep:  # a stack that stays up: leave no demo server behind
                delete_demo_servers(Clients(result.stack), out)
    finally:
        if start and not keep:
            out.write("\n== Stop the local stack\n")
            stop_stack(work_dir, out)
        elif start:
            out.write(f"\nstack left running: python {STACK_SCRIPT} stop --work-dir "
                      f"{work_dir}\n")
    result.timings["total"] = round(time.monotonic() - started, 1)
    return result


def _run_steps(stack: StackInfo, steps: Steps, result: DemoResult, out: TextIO) -> None:
    with steps.step(f"What discovery sees on the host ({stack.sysfs_root})"):
        discovery = show_discovery(stack, out)
    with steps.step("What the agent reported: Placement's provider tree"):
        clients = Clients(stack)
        result.expected_providers = expected_providers(stack)
        result.providers = show_reported(stack, clients, out)
        missing = result.expected_providers - set(result.providers)
        if missing:
            raise DemoError(step="report", reason=f"not in Placement: {sorted(missing)}")
    pools = {str(p["uuid"]): name for name, p in result.providers.items()}
    with steps.step(f"Apply {PROFILES_DIR.name}/ (device profiles and flavors) through the APIs"):
        result.profiles = apply_profiles(stack, clients, out)
    with steps.step("Which profiles can this host serve (profile check)"):
        result.check = check_profiles(stack, out)
    flavors = flavors_by_profile(clients)
    servable = [name for name in sorted(flavors) if result.check.get(name, {}).get("servable")]
    if not servable:
        raise DemoError(step="profile check", reason="no flavor profile is servable here")
    for name in servable:
        with steps.step(f"Boot a server from flavor {flavors[name]['name']} ({name})"):
            booted = boot_and_show(stack, clients, name, flavors[name], discovery=discovery,
                                   pools=pools, out=out)
            result.boots.append(booted)
            if booted.status != "ACTIVE":
                raise DemoError(step=f"boot {flavors[name]['name']}",
                                reason=f"{booted.status}: {booted.fault}")
            delete_and_show(clients, booted, out)
    with steps.step("Boot with a real Neutron port from a port profile (profile render)"):
        result.port_boot = boot_with_profile_port(stack, clients, out)
    with steps.step(f"Host plan (deploy/host.example.yaml) under a server on {PLAN_PROFILE}"):
        booted, result.host_plan_refusal, result.drain_plan = plan_under_a_server(
            stack, clients, discovery=discovery, pools=pools, out=out)
        result.boots.append(booted)
    with steps.step("Host plan again, now that no VF is bound"):
        result.host_plan = show_host_plan(stack, out, ())
    with steps.step(f"A flavor asking for {UNSERVABLE_PROFILE}, which this host cannot serve"):
        result.refused = boot_unservable(stack, clients, result.check[UNSERVABLE_PROFILE], out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python deploy/demo.py",
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
    except (SmartNicError, ApiError) as exc:
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
    last = next(b for b in reversed(result.boots) if b.profile != PLAN_PROFILE)
    stream.write(f"demo: OK: server demo-{last.profile} ({last.server_id}) ran ACTIVE on "
                 f"{last.vfs[0].summary()}\n")
    return 0


def _timing_table(timings: Mapping[str, float]) -> str:
    return render_table(("step", "seconds"), [(name, f"{secs:.1f}")
                                              for name, secs in timings.items()])


if __name__ == "__main__":
    sys.exit(main())
