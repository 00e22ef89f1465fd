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
# firmware (host.firmware): NV config, its activation, the ice DDP package, and a reboot
SET_NV_CONFIG = "set_nv_config"  # param: the NV key (mstconfig/mlxconfig), to_value its value
FW_RESET = "fw_reset"  # activate the NV config: mlxfwreset level 3 or devlink fw_activate
INSTALL_DDP = "install_ddp"  # param: the package file name, to_value the DDP mode
RELOAD_DRIVER = "reload_driver"  # param: the module (ice); every PF of it is disturbed
REBOOT = "reboot"  # the apply stops here; `host apply --resume` continues after the boot
FIRMWARE_KINDS = (SET_NV_CONFIG, FW_RESET, INSTALL_DDP, RELOAD_DRIVER, REBOOT)
KINDS = (SET_NUMVFS, BIND_DRIVER, SET_ESWITCH_MODE, SET_DEVLINK_PARAM, SET_HUGEPAGES, MANUAL,
         *OVS_KINDS, *FIRMWARE_KINDS)

# How much a step disturbs, least first: the plan shows it, a drain (issue 15 item 3) reads it
DISRUPTION_NONE = "none"
DISRUPTION_VFS = "vf-destroying"
DISRUPTION_DRIVER = "driver-reload"
DISRUPTION_FW_RESET = "fw-reset"
DISRUPTION_REBOOT = "reboot"
DISRUPTIONS = (DISRUPTION_NONE, DISRUPTION_VFS, DISRUPTION_DRIVER, DISRUPTION_FW_RESET,
               DISRUPTION_REBOOT)

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
    # none / vf-destroying / driver-reload / fw-reset / reboot ("none" with destroys_vfs
    # reads as vf-destroying); disturbs_pfs: every PF the step takes down (its blast radius)
    disruption: str = DISRUPTION_NONE
    disturbs_pfs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.disruption not in DISRUPTIONS:
            raise ValueError(f"unknown disruption {self.disruption!r}")
        if self.disruption == DISRUPTION_NONE and self.destroys_vfs:
            object.__setattr__(self, "disruption", DISRUPTION_VFS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "target": self.target, "from": self.from_value,
            "to": self.to_value, "reason": self.reason, "disruptive": self.disruptive,
            "destroys_vfs": list(self.destroys_vfs), "refused": self.refused,
            "pf": self.pf, "vf_index": self.vf_index, "numa_node": self.numa_node,
            "size_kb": self.size_kb, "param": self.param, "disruption": self.disruption,
            "disturbs_pfs": list(self.disturbs_pfs),
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

    @property
    def disruption(self) -> str:
        """The worst disruption of any step (what a drain must prepare for)."""
        return max((step.disruption for step in self.steps), key=DISRUPTIONS.index,
                   default=DISRUPTION_NONE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [step.to_dict() for step in self.steps],
            "disruption": self.disruption,
            "notes": list(self.notes),
            "refused": len(self.refused),
            "destroys_vfs": list(self.destroys_vfs),
        }


def show(value: Value) -> str:
    """How a from/to value reads in a table: ``None`` is "-" (unbound, unknown)."""
    return "-" if value is None else str(value)
