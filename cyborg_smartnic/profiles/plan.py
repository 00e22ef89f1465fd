"""Plan an idempotent sync of compiled profiles against a cloud snapshot (pure).

The plan is computed and printed before anything changes. Rules:

* a device profile is created when missing, left alone when identical, and replaced
  (delete + create: Cyborg has no update) when it differs;
* only profiles whose description carries ``[managed-by: cyborg-smartnic]`` are ever replaced
  or pruned, and pruning needs ``--prune``; a same-named profile made by someone else is a
  conflict, never silently adopted;
* a profile that accelerator requests still use cannot be replaced or pruned (Cyborg would
  orphan the requests): that is a conflict with a way forward, and a plan with any conflict
  changes nothing;
* flavors get the profile's extra specs plus two marker specs recording which profile set
  which keys, so a key the profile no longer sets (or a flavor dropped from the profile) is
  unset later, and keys set by someone else are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cyborg_smartnic.profiles.cloud import CloudState, RemoteFlavor
from cyborg_smartnic.profiles.compiler import CompiledProfile, is_managed
from cyborg_smartnic.profiles.spec import FlavorSpec

MARK_PROFILE = "cyborg_smartnic:profile"
MARK_KEYS = "cyborg_smartnic:managed_keys"

CREATE_PROFILE = "create-profile"
REPLACE_PROFILE = "replace-profile"
DELETE_PROFILE = "delete-profile"
CREATE_FLAVOR = "create-flavor"
SET_SPECS = "set-specs"
UNSET_SPECS = "unset-specs"

#: Execution order: profiles exist before flavors point at them; pruning comes last, after
#: the flavors that pointed at pruned profiles were cleaned up.
ORDER = (REPLACE_PROFILE, CREATE_PROFILE, CREATE_FLAVOR, SET_SPECS, UNSET_SPECS, DELETE_PROFILE)


@dataclass(frozen=True)
class Step:
    kind: str
    target: str  # profile or flavor name
    detail: str = ""
    body: Mapping[str, Any] | None = None  # device profile body (create/replace)
    uuid: str | None = None  # device profile uuid (replace/delete), flavor id (specs)
    flavor: FlavorSpec | None = None  # create-flavor
    specs: Mapping[str, str] = field(default_factory=dict)  # set-specs
    keys: tuple[str, ...] = ()  # unset-specs

    def line(self) -> str:
        sign = {CREATE_PROFILE: "+", CREATE_FLAVOR: "+", DELETE_PROFILE: "-"}.get(self.kind, "~")
        noun = "profile" if "profile" in self.kind else "flavor"
        verb = {CREATE_PROFILE: "create", REPLACE_PROFILE: "replace", DELETE_PROFILE: "prune",
                CREATE_FLAVOR: "create", SET_SPECS: "set", UNSET_SPECS: "unset"}[self.kind]
        return f"{sign} {noun} {self.target}: {verb}" + (f" {self.detail}" if self.detail else "")

    def short(self) -> str:
        noun = "profile" if "profile" in self.kind else "flavor"
        verb = {CREATE_PROFILE: "created", REPLACE_PROFILE: "replaced", DELETE_PROFILE: "pruned",
                CREATE_FLAVOR: "created", SET_SPECS: "set extra specs on",
                UNSET_SPECS: "unset extra specs on"}[self.kind]
        return f"{verb} {noun} {self.target}"


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    unchanged: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # profiles with no Cyborg part, said so rather than skipped

    @property
    def has_changes(self) -> bool:
        return bool(self.steps)

    def lines(self) -> list[str]:
        out = [f"  {note}" for note in self.notes]
        out += [f"= {item}: unchanged" for item in self.unchanged]
        out += [step.line() for step in self.steps]
        out += [f"  profile {name}: managed by cyborg-smartnic but in no file given "
                f"(--prune deletes it)" for name in self.leftovers]
        out += [f"! {conflict}" for conflict in self.conflicts]
        return out


def managed_specs(profile: CompiledProfile) -> dict[str, str]:
    """The extra specs ``apply`` sets on each of the profile's flavors, markers included."""
    specs = dict(profile.flavor_extra_specs)
    specs[MARK_PROFILE] = profile.name
    specs[MARK_KEYS] = ",".join(sorted(profile.flavor_extra_specs))
    return specs


def previously_managed(flavor: RemoteFlavor) -> tuple[str | None, set[str]]:
    """(profile, keys) recorded by an earlier apply on ``flavor``."""
    owner = flavor.extra_specs.get(MARK_PROFILE)
    raw = flavor.extra_specs.get(MARK_KEYS, "")
    keys = {k for k in raw.split(",") if k}
    if owner is not None:
        keys |= {MARK_PROFILE, MARK_KEYS}
    return owner, keys


def _group_diff(old: Iterable[Mapping[str, str]], new: Iterable[Mapping[str, str]]) -> str:
    """Each changed key as ``key: old -> new``; keys added as ``+key=new``, removed as
    ``-key=old``; groups added or removed whole, with their keys."""
    old_l, new_l = list(old), list(new)
    parts = []
    if len(old_l) != len(new_l):
        parts.append(f"{len(old_l)} -> {len(new_l)} groups")
    for index in range(max(len(old_l), len(new_l))):
        a = old_l[index] if index < len(old_l) else {}
        b = new_l[index] if index < len(new_l) else {}
        changes = [f"{k}: {a[k]} -> {b[k]}" for k in sorted(b) if k in a and a[k] != b[k]]
        changes += [f"+{k}={b[k]}" for k in sorted(b) if k not in a]
        changes += [f"-{k}={a[k]}" for k in sorted(a) if k not in b]
        if changes:
            parts.append(f"groups[{index}] " + ", ".join(changes))
    return "; ".join(parts)


def _users_text(users: tuple[tuple[str, str | None], ...]) -> str:
    instances = sorted({inst for _, inst in users if inst})
    text = f"{len(users)} accelerator request(s)"
    if instances:
        text += f" of instance(s) {', '.join(instances[:5])}" + (" ..." if len(instances) > 5
                                                                  else "")
    return text


class _Planner:
    """Collects steps, unchanged items and conflicts while walking the profiles."""

    def __init__(self, state: CloudState) -> None:
        self.state = state
        self.steps: list[Step] = []
        self.unchanged: list[str] = []
        self.conflicts: list[str] = []
        self.notes: list[str] = []

    def profile(self, profile: CompiledProfile) -> None:
        body = profile.device_profile
        if body is None:
            self.notes.append(f"profile {profile.name}: no Cyborg device profile (its "
                              f"{profile.port.vnic_type if profile.port else ''} port's VF "
                              f"comes from Nova's PCI tracker); only its flavors are set")
            return
        remote = self.state.profiles.get(profile.name)
        if remote is None:
            self.steps.append(Step(CREATE_PROFILE, profile.name,
                                   f"{len(body['groups'])} group(s)", body=body))
            return
        same_groups = [dict(g) for g in remote.groups] == [dict(g) for g in body["groups"]]
        if same_groups and remote.description == body["description"]:
            self.unchanged.append(f"profile {profile.name}")
            return
        if not is_managed(remote.description):
            self.conflicts.append(
                f"profile {profile.name}: a device profile with this name exists and was not "
                f"created by cyborg-smartnic; rename the profile in {profile.source} or delete "
                f"the existing one (openstack accelerator device profile delete {remote.uuid})")
            return
        users = self.state.profile_users.get(profile.name, ())
        if users:
            self.conflicts.append(
                f"profile {profile.name}: changed, but {_users_text(users)} use it and Cyborg "
                f"cannot replace a profile in use; give the changed profile a new name (and "
                f"point its flavors at it), or delete those instances, then apply again")
            return
        changes = [] if same_groups else [_group_diff(remote.groups, body["groups"])]
        if remote.description != body["description"]:
            changes.append(f"description: {remote.description!r} -> {body['description']!r}")
        detail = "; ".join(changes)
        self.steps.append(Step(REPLACE_PROFILE, profile.name, detail, body=body,
                               uuid=remote.uuid))

    def flavor(self, flavor: FlavorSpec, desired: Mapping[str, str], owner_name: str) -> None:
        remote = self.state.flavors.get(flavor.name)
        if remote is None:
            if not flavor.creatable:
                self.conflicts.append(
                    f"flavor {flavor.name} (profile {owner_name}): does not exist; give vcpus "
                    f"and ram in the profile to create it")
                return
            self.steps.append(Step(CREATE_FLAVOR, flavor.name,
                                   f"{flavor.vcpus} vcpus, {flavor.ram_mb} MiB RAM, "
                                   f"{flavor.disk_gb} GiB disk", flavor=flavor))
            self.steps.append(Step(SET_SPECS, flavor.name, _specs_text(desired), specs=desired))
            return
        if flavor.creatable and (remote.vcpus, remote.ram_mb, remote.disk_gb) != (
                flavor.vcpus, flavor.ram_mb, flavor.disk_gb):
            self.conflicts.append(
                f"flavor {flavor.name} (profile {owner_name}): exists with {remote.vcpus} "
                f"vcpus, {remote.ram_mb} MiB RAM, {remote.disk_gb} GiB disk, the profile says "
                f"{flavor.vcpus}/{flavor.ram_mb}/{flavor.disk_gb}; Nova flavors cannot change: "
                f"use a new flavor name, or list the flavor by name only to adopt it")
            return
        _, before = previously_managed(remote)
        changed = {k: v for k, v in desired.items() if remote.extra_specs.get(k) != v}
        stale = tuple(sorted(k for k in before - set(desired) if k in remote.extra_specs))
        if changed:
            self.steps.append(Step(SET_SPECS, flavor.name, _specs_text(changed), specs=changed,
                                   uuid=remote.id))
        if stale:
            self.steps.append(Step(UNSET_SPECS, flavor.name, ", ".join(stale), keys=stale,
                                   uuid=remote.id))
        if not changed and not stale:
            self.unchanged.append(f"flavor {flavor.name}")


def _specs_text(specs: Mapping[str, str]) -> str:
    """``k=v`` pairs; the two marker specs are summarised, they only matter to apply."""
    text = ", ".join(f"{k}={v}" for k, v in sorted(specs.items())
                     if k not in (MARK_PROFILE, MARK_KEYS))
    if MARK_PROFILE in specs or MARK_KEYS in specs:
        text += (" " if text else "") + "(+ cyborg_smartnic markers)"
    return text


def make_plan(profiles: Iterable[CompiledProfile], state: CloudState, *,
              prune: bool = False) -> Plan:
    """Steps that make the cloud match ``profiles``; conflicts block the whole plan."""
    compiled = list(profiles)
    planner = _Planner(state)
    steps, conflicts = planner.steps, planner.conflicts
    # A profile with no Cyborg part leaves a same-named managed device profile (made by an
    # earlier version of it) a leftover, pruned with --prune.
    wanted = {p.name for p in compiled if p.device_profile is not None}
    named = {p.name for p in compiled}
    for profile in compiled:
        planner.profile(profile)

    pruned: set[str] = set()
    leftovers: list[str] = []
    for name, remote in sorted(state.profiles.items()):
        if name in wanted or not is_managed(remote.description):
            continue
        if not prune:
            leftovers.append(name)
            continue
        users = state.profile_users.get(name, ())
        if users:
            conflicts.append(f"profile {name}: to be pruned, but {_users_text(users)} use it; "
                             f"delete those instances first, or keep the profile in your "
                             f"files")
            continue
        pruned.add(name)
        steps.append(Step(DELETE_PROFILE, name, "(not in any file given)", uuid=remote.uuid))

    attached: set[str] = set()
    for profile in compiled:
        desired = managed_specs(profile)
        for flavor in profile.flavors:
            attached.add(flavor.name)
            planner.flavor(flavor, desired, profile.name)
    # Flavors an earlier apply attached to a profile given now (or pruned now) but that the
    # profile no longer lists: take back exactly the keys that apply set.
    for name, remote_flavor in sorted(state.flavors.items()):
        owner, keys = previously_managed(remote_flavor)
        if name in attached or owner is None or owner not in named | pruned:
            continue
        stale = tuple(sorted(k for k in keys if k in remote_flavor.extra_specs))
        if stale:
            steps.append(Step(UNSET_SPECS, name, ", ".join(stale) + f" (detached from {owner})",
                              keys=stale, uuid=remote_flavor.id))

    steps.sort(key=lambda s: ORDER.index(s.kind))
    return Plan(steps=tuple(steps), unchanged=tuple(planner.unchanged),
                leftovers=tuple(leftovers), conflicts=tuple(conflicts),
                notes=tuple(planner.notes))
