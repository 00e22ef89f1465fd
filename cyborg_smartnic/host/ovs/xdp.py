"""XDP readiness: the kernel's BPF/XDP options and the VF drivers of profiles that ask for XDP.

The kernel config is read under the host's root like everything else: ``boot/config-<release>``
(``<release>`` from ``proc/sys/kernel/osrelease``) or else ``proc/config.gz``. XDP needs
``CONFIG_BPF_SYSCALL`` (loading programs at all), ``CONFIG_BPF_JIT`` (without it programs are
interpreted: too slow for a datapath) and ``CONFIG_XDP_SOCKETS`` (AF_XDP, what DPDK's af_xdp
driver and most XDP packet tools use). Whether a VF driver runs XDP natively is a catalogue
fact (``catalog.xdp_support``).
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterable

from cyborg_smartnic.catalog import XDP_GENERIC, XDP_NATIVE, Catalog, xdp_support
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.procfs import ProcReader, ProcUnreadable
from cyborg_smartnic.discovery.sysfs import open_regular
from cyborg_smartnic.host.doctor import FAIL, OK, WARN, Check
from cyborg_smartnic.profiles.compiler import HostRequirements

OPTIONS = ("CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_XDP_SOCKETS")
MAX_CONFIG_BYTES = 8 << 20


def parse_config(text: str) -> dict[str, str]:
    """``CONFIG_X=y`` lines -> {"CONFIG_X": "y"}; "is not set" lines -> "n"."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip('"')
    return values


def read_config(root: str) -> tuple[dict[str, str] | None, str]:
    """(options, where they were read) or (None, why not)."""
    base = root.rstrip("/")
    proc = ProcReader(root)
    release = proc.os_release()
    if release is None and base == "":
        release = os.uname().release
    tried = []
    if release:
        path = f"{base}/boot/config-{release}"
        tried.append(path)
        text = _read(path)
        if text is not None:
            return parse_config(text), path
    path = f"{proc.proc}/config.gz"
    tried.append(path)
    try:
        packed = proc.read_bytes(path)
        if packed is not None:
            with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
                data = stream.read(MAX_CONFIG_BYTES)
            return parse_config(data.decode("utf-8", "replace")), path
    except (ProcUnreadable, OSError, EOFError, zlib.error):
        pass
    return None, f"no kernel config at {' or '.join(tried)}"


def kernel_check(root: str, *, wanted: bool) -> Check:
    """One check of the three options; FAIL only when a profile asks for XDP."""
    values, where = read_config(root)
    if values is None:
        return Check("xdp kernel", WARN, f"cannot tell: {where}",
                     "install the kernel's config (Debian ships /boot/config-$(uname -r)) "
                     "or enable CONFIG_IKCONFIG_PROC")
    missing = [o for o in OPTIONS if values.get(o) not in ("y", "m")]
    if missing:
        shown = ", ".join(f"{o}={values.get(o, 'absent')}" for o in missing)
        return Check("xdp kernel", FAIL if wanted else WARN,
                     f"{shown} ({where})" + (": a profile asks for XDP" if wanted else ""),
                     "use a kernel built with " + ", ".join(f"{o}=y" for o in missing))
    return Check("xdp kernel", OK, f"{', '.join(f'{o}={values[o]}' for o in OPTIONS)} "
                                   f"({where})")


def driver_checks(requirements: Iterable[HostRequirements], host: Host,
                  catalog: Catalog | None = None) -> list[Check]:
    """For each profile group that asks for native XDP: do the PFs on its physnet hand the
    guest VFs whose driver runs XDP natively?"""
    models = catalog or Catalog()
    out = []
    for needs in requirements:
        for group in needs.groups:
            if group.xdp != XDP_NATIVE:
                continue
            pfs = [pf for pf in host.physical_functions
                   if group.physnet is None or pf.physnet == group.physnet]
            facts = []
            good = False
            for pf in pfs:
                model = models.lookup_pf(pf.vendor_id, pf.device_id)
                driver = model.vf_driver if model else None
                support = xdp_support(driver) or "unknown"
                good = good or support == XDP_NATIVE
                facts.append(f"{pf.address} ({pf.model}) VFs run {driver or '?'}: "
                             f"{support} XDP")
            where = f" on {group.physnet}" if group.physnet else ""
            if not pfs:
                out.append(Check(f"xdp {needs.profile}", FAIL, f"no PF{where}",
                                 "give a PF that physnet in host.yaml"))
            elif good:
                out.append(Check(f"xdp {needs.profile}", OK, "; ".join(facts)))
            else:
                generic = any(XDP_GENERIC in f for f in facts)
                out.append(Check(f"xdp {needs.profile}", FAIL, "; ".join(facts),
                                 "put the physnet on a NIC whose VF driver has native XDP "
                                 "(mlx5_core, ixgbevf, bnxt_en...)" + (
                                     ", or ask for xdp: generic (slower: skb mode)"
                                     if generic else "")))
    return out


def _read(path: str) -> str | None:
    try:
        if os.path.getsize(path) > MAX_CONFIG_BYTES:
            return None
        with open_regular(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()
    except OSError:
        return None
