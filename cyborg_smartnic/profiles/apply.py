"""Run a ``Plan`` against a cloud: bounded retries, re-checks, re-runnable when interrupted.

Every step is written so that running it again after a partial failure is safe: before a
retry the step re-reads the cloud and stops if its effect is already there (a create that
timed out but happened, a delete that already went through). Transient answers (409, 5xx,
connection failures and timeouts) are retried with exponential backoff; anything else stops
the run with one line saying which step failed. A re-run then plans only what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from cyborg_smartnic.apiclient import RetryPolicy, call, read
from cyborg_smartnic.profiles.cloud import Cloud, CloudError
from cyborg_smartnic.profiles.plan import (
    CREATE_FLAVOR,
    CREATE_PROFILE,
    DELETE_PROFILE,
    REPLACE_PROFILE,
    SET_SPECS,
    UNSET_SPECS,
    Plan,
    Step,
)

LOG = logging.getLogger(__name__)
class ApplyInterrupted(CloudError):
    """A step failed after earlier ones succeeded; a re-run plans only what is left."""

    msg_fmt = "%(error)s (%(done)s of %(total)s change(s) made; run apply again to finish)"


class ProfileInUseError(CloudError):
    msg_fmt = ("%(action)s failed: %(reason)s; give the changed profile a new name or delete "
               "the instances using it, then apply again")


class Executor:
    """Runs plan steps in order through a ``Cloud``; ``done`` lists the completed steps."""

    def __init__(self, cloud: Cloud, policy: RetryPolicy | None = None,
                 report: Callable[[str], None] | None = None) -> None:
        self.cloud = cloud
        self.policy = policy or RetryPolicy()
        self.report = report or (lambda line: None)
        self.done: list[Step] = []
        self._flavor_ids: dict[str, str] = {}

    def run(self, plan: Plan) -> list[Step]:
        if plan.conflicts:
            raise CloudError(action="apply", reason=f"{len(plan.conflicts)} conflict(s); "
                                                    f"nothing was changed")
        for step in plan.steps:
            handler = {
                CREATE_PROFILE: self._create_profile, REPLACE_PROFILE: self._replace_profile,
                DELETE_PROFILE: self._delete_profile, CREATE_FLAVOR: self._create_flavor,
                SET_SPECS: self._set_specs, UNSET_SPECS: self._unset_specs,
            }[step.kind]
            try:
                handler(step)
            except CloudError as exc:
                if not self.done:
                    raise
                raise ApplyInterrupted(error=str(exc), done=len(self.done),
                                       total=len(plan.steps)) from exc
            self.done.append(step)
            self.report(f"done: {step.short()}")
        return self.done

    # -- device profiles ----------------------------------------------------------------
    def _profile_matches(self, name: str, body: Any) -> bool:
        remote = self.cloud.find_profile(name)
        return remote is not None and remote.description == body["description"] and [
            dict(g) for g in remote.groups] == [dict(g) for g in body["groups"]]

    def _create_profile(self, step: Step) -> None:
        body = step.body
        if body is None:
            raise ValueError(f"{step.kind} step without a body")
        call(f"create device profile {step.target}", lambda: self.cloud.create_profile(body),
             self.policy, done=lambda: self._profile_matches(step.target, body))

    def _ensure_unused(self, action: str, name: str) -> None:
        """Checked again right before a delete: an instance may have appeared since the plan."""
        users = read(f"list accelerator requests for {name}", self.cloud.profile_users,
                     self.policy).get(name, ())
        if users:
            raise ProfileInUseError(action=action,
                                    reason=f"{len(users)} accelerator request(s) use it now")

    def _delete(self, action: str, name: str, uuid: str | None) -> None:
        if uuid is None:
            raise ValueError(f"{action}: no uuid")
        self._ensure_unused(action, name)
        call(action, lambda: self.cloud.delete_profile(uuid), self.policy,
             done=lambda: (p := self.cloud.find_profile(name)) is None or p.uuid != uuid)

    def _replace_profile(self, step: Step) -> None:
        self._delete(f"replace device profile {step.target} (delete)", step.target, step.uuid)
        self._create_profile(step)

    def _delete_profile(self, step: Step) -> None:
        self._delete(f"prune device profile {step.target}", step.target, step.uuid)

    # -- flavors --------------------------------------------------------------------------
    def _flavor_id(self, name: str) -> str:
        if name not in self._flavor_ids:
            flavor = read(f"find flavor {name}", lambda: self.cloud.find_flavor(name) or
                          _missing(name), self.policy)
            self._flavor_ids[name] = flavor.id
        return self._flavor_ids[name]

    def _create_flavor(self, step: Step) -> None:
        spec = step.flavor
        if spec is None or spec.vcpus is None or spec.ram_mb is None:
            raise ValueError(f"{step.kind} step without flavor sizes")
        vcpus, ram, disk = spec.vcpus, spec.ram_mb, spec.disk_gb or 0
        created = call(f"create flavor {spec.name}",
                       lambda: self.cloud.create_flavor(spec.name, vcpus, ram, disk),
                       self.policy, done=lambda: self.cloud.find_flavor(spec.name) is not None)
        if created is not None:
            self._flavor_ids[spec.name] = created.id

    def _set_specs(self, step: Step) -> None:
        flavor_id = step.uuid or self._flavor_id(step.target)
        call(f"set extra specs on flavor {step.target}",
             lambda: self.cloud.set_extra_specs(flavor_id, step.specs), self.policy)

    def _unset_specs(self, step: Step) -> None:
        flavor_id = step.uuid or self._flavor_id(step.target)
        for key in step.keys:
            call(f"unset {key} on flavor {step.target}",
                 lambda key=key: self.cloud.unset_extra_spec(flavor_id, key),  # type: ignore[misc]
                 self.policy)


def _missing(name: str) -> Any:
    raise CloudError(action=f"find flavor {name}", reason="it disappeared during apply")


def apply_plan(cloud: Cloud, plan: Plan, *, policy: RetryPolicy | None = None,
               report: Callable[[str], None] | None = None) -> list[Step]:
    return Executor(cloud, policy, report).run(plan)


def describe(steps: Iterable[Step]) -> list[str]:
    return [step.line() for step in steps]
