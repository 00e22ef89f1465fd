"""Who schedules each VF, read from the real nova.conf and cyborg.conf (for ``host doctor``).

A VF must belong to exactly one scheduler. Claimed by both, Cyborg and Nova's PCI tracker
each hand it to a different guest (Placement tracks it twice); claimed by neither, nothing
can ever use it. Cyborg's claim is what the driver would report: the host scanned with
cyborg.conf's ``[smartnic]`` options (the same scan the agent runs, so the selector rules,
VF ranges and "empty selects every catalogued PF" all apply). Nova's claim is ``[pci]
device_spec`` matched the way Nova matches it (``host.novaspec``). VFs that host.yaml holds
back with ``reserved_vfs`` are meant to be nobody's and pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from oslo_config import cfg

from cyborg_smartnic import conf as smartnic_conf
from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.host import novaspec
from cyborg_smartnic.host.config import OWNER_CYBORG, OWNER_NOVA, OWNER_RESERVED, HostConfig
from cyborg_smartnic.host.plan import selects
from cyborg_smartnic.ranges import format_ranges

BOTH = "both"
NEITHER = "neither"
NAME = "vf owners"


@dataclass(frozen=True, slots=True)
class VfClaim:
    pf: str
    index: int
    address: str
    cyborg: bool
    nova: novaspec.DeviceSpec | None
    intended: str | None  # host.yaml's owner (cyborg/nova/reserved), None without host.yaml

    @property
    def verdict(self) -> str:
        if self.cyborg and self.nova is not None:
            return BOTH
        if self.cyborg:
            return OWNER_CYBORG
        if self.nova is not None:
            return OWNER_NOVA
        return OWNER_RESERVED if self.intended == OWNER_RESERVED else NEITHER


@dataclass(frozen=True, slots=True)
class Finding:
    """One ownership problem (or the all-clear), in doctor's terms."""

    status: str  # ok / warn / fail
    detail: str
    remedy: str = ""


def cyborg_claims(cyborg_conf: str, root: str, hostname: str) -> frozenset[str]:
    """Addresses of the VFs the smartnic driver would report with this cyborg.conf."""
    from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf  # noqa: PLC0415

    conf = cfg.ConfigOpts()
    smartnic_conf.register_opts(conf)
    try:
        conf(args=[], project="cyborg", default_config_files=[cyborg_conf], use_env=False)
    except (cfg.Error, OSError) as exc:
        raise ConfigError(option="--cyborg-conf",
                          reason=f"{cyborg_conf}: {str(exc).splitlines()[0]}") from exc
    options = dataclasses.replace(scan_options_from_conf(conf), hostname=hostname or None)
    host = scan(root, options)
    return frozenset(str(vf.address) for pf in host.physical_functions
                     for vf in pf.virtual_functions)


def nova_specs(nova_conf: str, host: Host) -> tuple[novaspec.DeviceSpec, ...]:
    try:
        values = novaspec.read_device_spec(nova_conf)
    except (cfg.Error, OSError) as exc:
        raise ConfigError(option="--nova-conf",
                          reason=f"{nova_conf}: {str(exc).splitlines()[0]}") from exc
    return novaspec.parse_values(values, host, nova_conf)


def _intended(config: HostConfig | None, pf: PhysicalFunction, index: int) -> str | None:
    if config is None:
        return None
    for device in config.devices:
        if selects(device, pf):
            return device.owner_of(index)
    return None


def claims(host: Host, cyborg: frozenset[str], specs: Sequence[novaspec.DeviceSpec],
           config: HostConfig | None = None) -> tuple[VfClaim, ...]:
    """Every VF of ``host`` with both schedulers' claims (pure); with host.yaml, the VFs of
    the PFs it configures (the others serve no guest by its word)."""
    found = []
    for pf in host.physical_functions:
        if config is not None and not any(selects(d, pf) for d in config.devices):
            continue
        for vf in pf.virtual_functions:
            dev = novaspec.PciFunction(vf.vendor_id, vf.device_id, str(vf.address),
                                       str(pf.address), pf.serial)
            found.append(VfClaim(str(pf.address), vf.index, str(vf.address),
                                 str(vf.address) in cyborg, novaspec.assignable(specs, dev),
                                 _intended(config, pf, vf.index)))
    return tuple(found)


def findings(vfs: Sequence[VfClaim], cyborg_conf: str, nova_conf: str,
             config: HostConfig | None) -> list[Finding]:
    """FAIL per PF for VFs claimed twice or by nobody, or owned against host.yaml's word."""
    out: list[Finding] = []
    fix_files = (f"`cyborg-smartnic host conf {config.file}` writes both files from "
                 f"host.yaml's vf_owners" if config else
                 "name each VF range's owner in host.yaml (vf_owners) and write both files "
                 "with `cyborg-smartnic host conf HOST.yaml`")
    for pf in sorted({v.pf for v in vfs}):
        mine = [v for v in vfs if v.pf == pf]
        both = [v for v in mine if v.verdict == BOTH]
        if both:
            specs = sorted({v.nova.text for v in both if v.nova is not None})
            out.append(Finding("fail", f"{pf}: VF(s) {_ranges(both)} ({_addresses(both)}) are "
                               f"claimed by Cyborg ([smartnic] devices in {cyborg_conf}) and "
                               f"by Nova ({nova_conf} device_spec {specs[0]}): both would "
                               f"hand them to guests",
                               f"take them out of one: {fix_files}, then restart "
                               f"cyborg-agent and nova-compute"))
        nobody = [v for v in mine if v.verdict == NEITHER]
        if nobody:
            out.append(Finding("fail", f"{pf}: VF(s) {_ranges(nobody)} ({_addresses(nobody)}) "
                               f"are claimed by nobody: neither [smartnic] devices nor "
                               f"[pci] device_spec selects them, so no guest can get them",
                               f"give them an owner ({fix_files}), or hold them back for "
                               f"the host with reserved_vfs in host.yaml"))
        for have, want in ((OWNER_CYBORG, OWNER_NOVA), (OWNER_NOVA, OWNER_CYBORG)):
            drift = [v for v in mine if v.verdict == have and v.intended == want]
            if drift:
                out.append(Finding("fail", f"{pf}: VF(s) {_ranges(drift)} are scheduled by "
                                   f"{have}, host.yaml says {want}", fix_files))
        wrong_net = [v for v in mine if v.nova is not None and v.verdict == OWNER_NOVA
                     and not v.nova.physical_network]
        if wrong_net:
            out.append(Finding("warn", f"{pf}: Nova's VF(s) {_ranges(wrong_net)} have no "
                               f"physical_network tag: Nova gives them to no direct or "
                               f"remote-managed port",
                               'add "physical_network": "PHYSNET" to their device_spec'))
    if not out:
        counts = {k: sum(1 for v in vfs if v.verdict == k)
                  for k in (OWNER_CYBORG, OWNER_NOVA, OWNER_RESERVED)}
        out.append(Finding("ok", f"{len(vfs)} VF(s): {counts[OWNER_CYBORG]} Cyborg's, "
                                 f"{counts[OWNER_NOVA]} Nova's, {counts[OWNER_RESERVED]} held "
                                 f"back; none claimed twice or by nobody"))
    return out


def _ranges(vfs: Sequence[VfClaim]) -> str:
    return format_ranges(tuple(sorted(v.index for v in vfs)))


def _addresses(vfs: Sequence[VfClaim]) -> str:
    shown = ", ".join(v.address for v in vfs[:3])
    return shown + (f" and {len(vfs) - 3} more" if len(vfs) > 3 else "")
