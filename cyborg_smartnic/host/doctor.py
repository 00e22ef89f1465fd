"""Preflight checks of a compute node, each with a remedy an operator can act on.

The checks read the discovery model plus two facts discovery does not carry (is vfio-pci
loaded or available as a module); everything else is a pure function of the host, the
host config's plan and the profiles' requirements.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from cyborg_smartnic.catalog import VFIO_DRIVER as VFIO
from cyborg_smartnic.catalog import Catalog
from cyborg_smartnic.discovery.devlink import FW_DPU
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.procfs import ProcReader
from cyborg_smartnic.discovery.sysfs import SysfsReader, open_regular
from cyborg_smartnic.host.config import HostConfig
from cyborg_smartnic.host.ovs import plan as ovs_plan
from cyborg_smartnic.host.requirements import Finding
from cyborg_smartnic.host.steps import Plan, Step

OK = "ok"
WARN = "warn"
FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # OK / WARN / FAIL
    detail: str
    remedy: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail,
                "remedy": self.remedy}


def vfio_state(root: str) -> str | None:
    """``loaded``, ``module`` (installed, not loaded) or None, read under ``root``: sysfs
    and /proc through their readers, the module index from ``lib/modules``."""
    sysfs = SysfsReader(root)
    if sysfs.is_dir(f"{sysfs.sys}/bus/pci/drivers/{VFIO}") or sysfs.is_dir(
            f"{sysfs.sys}/module/vfio_pci"):
        return "loaded"
    release = ProcReader(root).os_release()
    if release:
        modules = os.path.join(root, "lib/modules", release)
        dep = _read(os.path.join(modules, "modules.dep")) or ""
        builtin = _read(os.path.join(modules, "modules.builtin")) or ""
        if "/vfio-pci.ko" in dep or "/vfio-pci.ko" in builtin:
            return "module"
    return None


def run_checks(host: Host, *, vfio: str | None, config: HostConfig | None = None,
               plan: Plan | None = None, findings: Iterable[Finding] = (),
               catalog: Catalog | None = None) -> tuple[Check, ...]:
    """Every check, in a fixed order; the caller exits 1 when any is FAIL."""
    found = tuple(findings)
    needs_vfio = any(VFIO in (d.driver for d in (c.vf_drivers)) for c in
                     (config.devices if config else ())) or any(
        VFIO in f.message for f in found)
    checks = [_iommu(host), _vfio(vfio, needs_vfio)]
    checks.extend(_hugepages(host, config))
    checks.extend(_dpus(host, catalog or Catalog()))
    if plan is not None:
        checks.append(_plan(plan))
    checks.extend(Check(f"profile {f.profile}", OK if f.ok else FAIL, f.message,
                        "" if f.ok else "change host.yaml (or the profile), then host apply")
                  for f in found)
    for skipped in host.skipped:
        checks.append(Check("skipped", WARN, f"{skipped.address}: {skipped.reason}"))
    return tuple(checks)


def _iommu(host: Host) -> Check:
    cmdline = (host.kernel_cmdline or "").split()
    flags = [w for w in cmdline if w.split("=")[0] in ("intel_iommu", "amd_iommu", "iommu")]
    remedy = ("enable VT-d / AMD-Vi in the firmware setup and add intel_iommu=on iommu=pt "
              "(Intel) or amd_iommu=on iommu=pt (AMD) to the kernel command line, then reboot")
    if not host.iommu_enabled:
        return Check("iommu", FAIL, "no IOMMU groups: VFs cannot be passed to instances"
                     + (f" (command line has {' '.join(flags)})" if flags else ""), remedy)
    if "iommu=pt" not in cmdline:
        return Check("iommu", WARN, "IOMMU on, but iommu=pt is not set (host DMA is "
                     "translated too, slower)", "add iommu=pt to the kernel command line")
    return Check("iommu", OK, f"IOMMU groups present ({' '.join(flags)})")


def _vfio(state: str | None, needed: bool) -> Check:
    remedy = ("modprobe vfio-pci; echo vfio-pci > /etc/modules-load.d/vfio-pci.conf")
    if state == "loaded":
        return Check(VFIO, OK, "vfio-pci driver loaded")
    if state == "module":
        return Check(VFIO, WARN if not needed else FAIL,
                     "vfio-pci module installed but not loaded", remedy)
    return Check(VFIO, FAIL if needed else WARN, "vfio-pci is neither loaded nor found in "
                 "the kernel's modules" + (" (host.yaml or a profile needs it)" if needed
                                           else ""), remedy)


def _hugepages(host: Host, config: HostConfig | None) -> list[Check]:
    if config is None or not config.hugepages:
        pools = [f"{'node' + str(p.numa_node) if p.numa_node is not None else 'global'} "
                 f"{p.size_kb}kB: {p.total} ({p.free} free)"
                 for p in host.hugepages if p.numa_node is not None and p.total]
        return [Check("hugepages", OK if pools else WARN,
                      "; ".join(pools) if pools else "no hugepages reserved",
                      "" if pools else "reserve them in host.yaml (hugepages:) or on the "
                                       "kernel command line")]
    checks = []
    for want in config.hugepages:
        pool = next((p for p in host.hugepages if p.numa_node == want.numa_node
                     and p.size_kb == want.size_kb), None)
        have = pool.total if pool else 0
        status = OK if have >= want.count else FAIL
        checks.append(Check("hugepages", status, f"{want.label}: {have} reserved, host.yaml "
                            f"wants {want.count}", "" if status == OK else
                            "cyborg-smartnic host apply (or hugepagesz=/hugepages= on the "
                            "kernel command line when memory is fragmented)"))
    return checks


def _dpus(host: Host, catalog: Catalog) -> list[Check]:
    checks = []
    for pf in host.physical_functions:
        model = catalog.lookup_pf(pf.vendor_id, pf.device_id)
        if model is None or not model.dpu:
            continue
        mode = pf.firmware.mode
        if mode == FW_DPU:
            checks.append(Check("dpu", WARN, f"{pf.address} ({model.name}) is in DPU mode: "
                                             f"host-side eswitch and VF changes are refused",
                                "configure its eswitch from the Arm side, or set firmware_mode: "
                                "nic in host.yaml (host apply writes the NV config; it takes "
                                "effect after a reboot)"))
        elif mode is None:
            checks.append(Check("dpu", WARN, f"{pf.address} ({model.name}): DPU or NIC mode "
                                             f"unknown; host-side changes are refused",
                                f"mstconfig -d {pf.address} q INTERNAL_CPU_MODEL"))
        else:
            checks.append(Check("dpu", OK, f"{pf.address} ({model.name}) is in {mode} mode"))
    return checks


def _plan(plan: Plan) -> Check:
    if plan.refused:
        first = plan.refused[0]
        return Check("host.yaml", FAIL, f"{len(plan.refused)} change(s) refused; first: "
                                        f"{first.kind} {first.target}: {first.refused}",
                     "see `cyborg-smartnic host plan`")
    pending = plan.actions
    manual = plan.manual
    if pending or manual:
        parts = []
        if pending:
            parts.append(f"{len(pending)} change(s) pending")
        if manual:
            kinds = sorted({"OVS" if _is_ovs_step(s) else "firmware" for s in manual})
            parts.append(f"{len(manual)} manual step(s) ({', '.join(kinds)})")
        return Check("host.yaml", FAIL, "host does not match host.yaml: " + ", ".join(parts),
                     "cyborg-smartnic host apply --yes HOST.yaml"
                     + ("; then the manual steps `host plan` lists" if manual else ""))
    return Check("host.yaml", OK, "host matches host.yaml")


def _is_ovs_step(step: Step) -> bool:
    """A manual step of host.yaml's ``ovs:`` section (restart, uplink), not firmware."""
    return step.target == ovs_plan.VSWITCHD or step.reason.startswith("uplink ")


def _read(path: str) -> str | None:
    try:
        with open_regular(path, encoding="utf-8", errors="replace") as stream:
            return stream.read().strip()
    except OSError:
        return None
