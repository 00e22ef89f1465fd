"""The vocabulary of host changes: one frozen ``Step`` per write, and the ``Plan`` holding them.

Steps are data, not code: the planner makes them, the CLI prints them and the executor runs
them, so the same object can be reviewed by a human before anything is touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SET_NUMVFS = "set_numvfs"
BIND_DRIVER = "bind_driver"  # to_value None means "unbind"
SET_ESWITCH_MODE = "set_eswitch_mode"
SET_DEVLINK_PARAM = "set_devlink_param"
SET_HUGEPAGES = "set_hugepages"
MANUAL = "manual"
SET_OVS_CONFIG = "set_ovs_config"  # param: the other_config key; to_value None removes it
RESTART_OVS = "restart_ovs"  # restart ovs-vswitchd (only with --restart-ovs, else MANUAL)
OVS_KINDS = (SET_OVS_CONFIG, RESTART_OVS)
KINDS = (SET_NUMVFS, BIND_DRIVER, SET_ESWITCH_MODE, SET_DEVLINK_PARAM, SET_HUGEPAGES, MANUAL,
         *OVS_KINDS)

Value = str | int | None


@dataclass(frozen=True, slots=True)
class Step:
    """One change. ``refused`` says why it must not run (the whole plan is then refused)."""

    kind: str
    target: str  # what a human reads: a PF/VF address, "<pf> vf3", "node0 2048kB"
    reason: str
    from_value: Value = None
    to_value: Value = None
    pf: str | None = None  # the PF address this step concerns
    vf_index: int | None = None  # for bind_driver: the VF (resolved at run time)
    numa_node: int | None = None  # for set_hugepages (None: the global pool)
    size_kb: int | None = None  # for set_hugepages
    param: str | None = None  # for set_devlink_param
    disruptive: bool = False
    destroys_vfs: tuple[str, ...] = ()  # VFs destroyed or disturbed (unbound, rebound)
    refused: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "target": self.target, "from": self.from_value,
            "to": self.to_value, "reason": self.reason, "disruptive": self.disruptive,
            "destroys_vfs": list(self.destroys_vfs), "refused": self.refused,
            "pf": self.pf, "vf_index": self.vf_index, "numa_node": self.numa_node,
            "size_kb": self.size_kb, "param": self.param,
        }


@dataclass(frozen=True, slots=True)
class Plan:
    """Ordered steps from the current host state to the desired one, plus notes."""

    steps: tuple[Step, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def refused(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.refused)

    @property
    def actions(self) -> tuple[Step, ...]:
        """The steps the executor runs (manual steps are left to the operator)."""
        return tuple(step for step in self.steps if step.kind != MANUAL)

    @property
    def manual(self) -> tuple[Step, ...]:
        return tuple(step for step in self.steps if step.kind == MANUAL)

    @property
    def destroys_vfs(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for step in self.steps:
            seen.update(dict.fromkeys(step.destroys_vfs))
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.to_dict() for step in self.steps],
            "notes": list(self.notes),
            "refused": len(self.refused),
            "destroys_vfs": list(self.destroys_vfs),
        }


def show(value: Value) -> str:
    """How a from/to value reads in a table: ``None`` is "-" (unbound, unknown)."""
    return "-" if value is None else str(value)
