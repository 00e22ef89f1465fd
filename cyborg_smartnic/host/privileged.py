"""The only code that changes the host: small oslo.privsep entry points, one per kind of write.

Each entry point runs inside the privsep daemon and re-validates every argument there (PCI
addresses, driver names, integer ranges, and the sysfs root: every path is walked with
directory descriptors beneath ``<root>/sys`` and opened with ``O_NOFOLLOW`` at every
component, see ``beneath``), because the unprivileged caller is not trusted. There is no
generic "write this file" entry point and no shell: devlink runs from a fixed path with an
argv list. Driver writes are allowed on VFs only, so a typo cannot unbind a disk controller.

Before a write that destroys or rebinds VFs (lowering ``sriov_numvfs``, a driver write on
a VF) the daemon re-reads the in-use witnesses of exactly those VFs itself (``inuse.detect``
on its own scan of the PF) and refuses with ``VfInUse``; hugepage pools are bounded by the
memory behind them. A bug or a second caller on the unprivileged side cannot skip that.

The context keeps three capabilities: CAP_DAC_OVERRIDE (sysfs attributes are root-owned 0644/
0200 files; the daemon may run as a non-root user), CAP_NET_ADMIN (devlink's netlink
commands are admin-only) and CAP_SYS_PTRACE (reading which device another user's process,
e.g. qemu as libvirt-qemu, holds open: ``/proc/<pid>/fd`` links need it). Nothing here
needs CAP_SYS_ADMIN. The firmware tools do (and CAP_SYS_RAWIO, CAP_SYS_MODULE), so they
have their own context and daemon (``firmware_privileged.context``), started only when a
plan has a firmware step: the daemon doing every sysfs write never holds those.

Writes go through ``KernelIO`` so tests can put a kernel emulator behind the same
validation (``use_kernel``); the entry points never see the difference.

Errors cross the privsep socket as ``(class, args)``: we raise only ``ValueError`` (a refused
argument) and ``OSError(errno, message)`` (the kernel said no), which survive that trip.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import subprocess
from typing import Protocol

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from cyborg_smartnic.catalog import MAX_VFS_PER_PF
from cyborg_smartnic.conf import PRIVSEP_GROUP
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery import model
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import ScanOptions, scan_function
from cyborg_smartnic.discovery.selection import parse_selector
from cyborg_smartnic.errors import InvalidPciAddress
from cyborg_smartnic.host import inuse
from cyborg_smartnic.host.beneath import SysDir, open_physical
from cyborg_smartnic.pci import PciAddress

LOG = logging.getLogger(__name__)

CONFIG_SECTION = PRIVSEP_GROUP

context = priv_context.PrivContext(
    "cyborg_smartnic",
    cfg_section=CONFIG_SECTION,
    pypath=__name__ + ".context",
    capabilities=[caps.CAP_DAC_OVERRIDE, caps.CAP_NET_ADMIN, caps.CAP_SYS_PTRACE],
)

MAX_NUMA_NODE = 1023
MAX_HUGEPAGES = 1 << 32  # the real bound is the memory behind the pool (_memory_kb)
ESWITCH_MODES = frozenset(model.ESWITCH_MODES)
DEVLINK_PARAMS: dict[str, frozenset[str]] = {
    dl.FLOW_STEERING_PARAM: frozenset(dl.FLOW_STEERING_MODES),
}
DEVLINK_PATHS = ("/usr/sbin/devlink", "/sbin/devlink", "/usr/bin/devlink", "/bin/devlink")
DEVLINK_TIMEOUT = 60.0
# Every tool the daemon runs, by argv[0], and where it may live (the firmware tools are run by
# host.firmware_privileged); each from a fixed path with an argv list, never through a shell.
TOOL_PATHS: dict[str, tuple[str, ...]] = {
    "devlink": DEVLINK_PATHS,
    "mstconfig": ("/usr/bin/mstconfig", "/usr/sbin/mstconfig", "/usr/local/bin/mstconfig"),
    "mlxconfig": ("/usr/bin/mlxconfig", "/usr/sbin/mlxconfig", "/usr/local/bin/mlxconfig"),
    "mlxfwreset": ("/usr/bin/mlxfwreset", "/usr/sbin/mlxfwreset", "/usr/local/bin/mlxfwreset"),
    "modprobe": ("/usr/sbin/modprobe", "/sbin/modprobe", "/usr/bin/modprobe"),
}
TOOL_TIMEOUTS: dict[str, float] = {"mlxfwreset": 300.0, "mstconfig": 120.0, "mlxconfig": 120.0,
                                   "modprobe": 120.0}
_DRIVER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ERRNO_BY_TEXT = {os.strerror(code): code for code in (
    errno.EBUSY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENODEV, errno.ENOENT, errno.EPERM,
    errno.ENOSPC, errno.ERANGE, errno.EAGAIN, errno.ENOMEM)}


class KernelIO(Protocol):
    """Where validated writes land: the real kernel, or an emulator in tests."""

    def write(self, path: str, value: str) -> None: ...

    def run(self, argv: list[str]) -> None: ...


class SystemKernel:
    """The real thing: one ``write(2)`` per sysfs attribute, devlink by absolute path."""

    def write(self, path: str, value: str) -> None:
        fd = open_physical(path, os.O_WRONLY)  # no symlink followed at any component
        try:
            os.write(fd, value.encode("ascii"))
        finally:
            os.close(fd)

    def has_tool(self, name: str) -> bool:
        return any(os.access(p, os.X_OK) for p in TOOL_PATHS.get(name, ()))

    def run(self, argv: list[str]) -> None:
        binary = next((p for p in TOOL_PATHS.get(argv[0], ()) if os.access(p, os.X_OK)), None)
        if binary is None:
            raise OSError(errno.ENOENT, f"{argv[0]} is not installed"
                          + (" (iproute2)" if argv[0] == "devlink" else ""))
        timeout = TOOL_TIMEOUTS.get(argv[0], DEVLINK_TIMEOUT)
        try:
            done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OSError(errno.ETIMEDOUT, f"{' '.join(argv)}: no answer in "
                                           f"{timeout:.0f}s") from exc
        if done.returncode != 0:
            text = (done.stderr or done.stdout or "").strip().splitlines()
            message = text[-1] if text else f"exit status {done.returncode}"
            code = next((c for t, c in _ERRNO_BY_TEXT.items() if t in message), errno.EIO)
            raise OSError(code, f"{' '.join(argv)}: {message}")


_kernel: KernelIO = SystemKernel()


def current_kernel() -> KernelIO:
    """Where writes land now (the firmware entry points ask it which tools exist)."""
    return _kernel


def use_kernel(kernel: KernelIO) -> KernelIO:
    """Swap where writes land (tests); returns the previous one. Not an entry point."""
    global _kernel  # one process-wide sink, swapped only by tests
    previous, _kernel = _kernel, kernel
    return previous


# --------------------------------------------------------------------------- validation


def _root(root: object) -> SysDir:
    """``<root>/sys`` opened as a directory descriptor, for an absolute, ``..``-free root."""
    if not isinstance(root, str) or not root or "\0" in root:
        raise ValueError("sysfs root must be a non-empty string")
    if not os.path.isabs(root):
        raise ValueError(f"sysfs root {root!r} must be an absolute path")
    if ".." in root.split(os.sep):
        raise ValueError(f"sysfs root {root!r} must not contain '..'")
    try:
        sysfs = SysDir.open(root)
    except OSError as exc:
        raise ValueError(f"{os.path.join(root, 'sys')} is not a directory") from exc
    try:
        _root_owned(root)
    except BaseException:
        sysfs.close()
        raise
    return sysfs


def _root_owned(root: str) -> None:
    """The daemon reads the tree as root (scan, in-use witnesses) and its findings and logs
    go back to the caller: a tree someone else can change could point those reads at any
    file (``<root>/proc/1/comm -> /etc/shadow``). So ``root`` and every directory above it
    must be root's and writable by no one else (a sticky ``/tmp`` above it is fine)."""
    parts = [p for p in os.path.realpath(root).split("/") if p]
    for depth in range(len(parts) + 1):
        path = "/" + "/".join(parts[:depth])
        info = os.lstat(path)
        shared = info.st_mode & 0o022 and not (info.st_mode & stat.S_ISVTX and depth < len(parts))
        if info.st_uid != 0 or shared:
            raise ValueError(f"sysfs root {root!r}: {path} must be owned by root and writable "
                             f"only by root (uid {info.st_uid}, mode "
                             f"{stat.S_IMODE(info.st_mode):04o}): the privileged daemon "
                             f"reads the tree as root")


def _sys_path(sysfs: SysDir, what: str, *parts: str) -> str:
    """The physical path of ``<sys>/parts...``, walked beneath ``<root>/sys`` (symlinks
    resolved by us, never past it); ``ENOENT`` naming ``what`` when something is missing."""
    try:
        return sysfs.join(sysfs.resolve(*parts))
    except FileNotFoundError as exc:
        raise OSError(errno.ENOENT, f"{sysfs.join(parts)}: {what} does not exist") from exc


def _address(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError("PCI address must be a string")
    try:
        return str(PciAddress.parse(text))
    except InvalidPciAddress as exc:
        raise ValueError(str(exc)) from exc


def _driver(name: object) -> str:
    if not isinstance(name, str) or not _DRIVER_RE.fullmatch(name):
        raise ValueError(f"{name!r} is not a kernel driver name")
    return name


def _int(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an integer")
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside {low}-{high}")
    return value


def _device(sysfs: SysDir, address: str) -> str:
    return _sys_path(sysfs, "PCI device", "bus", "pci", "devices", address)


def _vf(sysfs: SysDir, address: str) -> str:
    """The device directory of ``address``, refused unless it is a VF (has ``physfn``)."""
    device = _device(sysfs, address)
    if not sysfs.is_link("bus", "pci", "devices", address, "physfn"):
        raise ValueError(f"{address} is not a virtual function: refusing to touch its driver")
    _sys_path(sysfs, "its PF", "bus", "pci", "devices", address, "physfn")  # stays in sysfs too
    return device


def _write(path: str, value: str) -> None:
    LOG.info("writing %r to %s", value.strip(), path)
    try:
        _kernel.write(path, value)
    except OSError as exc:
        code = exc.errno or errno.EIO
        raise OSError(code, f"writing {value.strip()!r} to {path}: "
                            f"{exc.strerror or os.strerror(code)}") from exc


# --------------------------------------------------------------------------- in-use guard


class VfInUse(ValueError):
    """A write would destroy or rebind a VF that something uses (or that we cannot see)."""


def _pf_view(root: str, pf_address: str) -> Host:
    """The daemon's own scan of one PF and its VFs (no devlink: nothing to run here)."""
    found = scan_function(root, pf_address, ScanOptions(
        selectors=(parse_selector(pf_address),), use_devlink=False))
    return Host(hostname="", physical_functions=() if found.pf is None else (found.pf,),
                skipped=found.skipped)


def _refuse_if_used(root: str, host: Host, addresses: set[str], action: str) -> None:
    """Re-read the in-use witnesses here, for exactly the VFs this write affects.

    The unprivileged side planned with the same witnesses, but a bug there or a second
    caller must not be able to destroy a VF a VM holds. Cyborg's bound requests need API
    credentials the daemon does not have: that witness stays on the caller's side.
    """
    if not addresses:
        return
    seen = {str(vf.address) for pf in host.physical_functions for vf in pf.virtual_functions}
    unseen = sorted(addresses - seen)
    if unseen:
        raise VfInUse(f"refusing to {action}: cannot read VF {', '.join(unseen)} to tell "
                      f"whether it is in use")
    found = inuse.detect(root, host)
    if found.blind:
        raise VfInUse(f"refusing to {action}: cannot tell whether {', '.join(sorted(addresses))}"
                      f" are free: {found.blind}")
    for address in sorted(addresses):
        reason = found.reason_for(address)
        if reason:
            raise VfInUse(f"refusing to {action}: VF {address} is in use: {reason}")


def _guard_numvfs(root: str, sysfs: SysDir, address: str, count: int) -> None:
    """Lowering ``sriov_numvfs`` destroys every VF whose index is ``count`` or above."""
    try:
        current = int(sysfs.read("bus", "pci", "devices", address, "sriov_numvfs").strip())
    except (OSError, ValueError):
        return  # the write below fails the same way (ENOENT: not an SR-IOV PF)
    if count >= current:
        return
    host = _pf_view(root, address)
    action = f"set {address} sriov_numvfs {current} -> {count}"
    doomed = set()
    for index in range(count, min(current, MAX_VFS_PER_PF + 1)):
        try:  # a VF without its virtfn link does not exist (yet): nothing can hold it
            link = sysfs.readlink("bus", "pci", "devices", address, f"virtfn{index}")
        except FileNotFoundError:
            continue
        doomed.add(_address(os.path.basename(link)))
    _refuse_if_used(root, host, doomed, action)


def _guard_vf(root: str, sysfs: SysDir, address: str, action: str) -> None:
    """A driver write on a VF rebinds it: refuse when its PF's scan says it is in use."""
    pf_address = _address(os.path.basename(
        sysfs.readlink("bus", "pci", "devices", address, "physfn")))
    _refuse_if_used(root, _pf_view(root, pf_address), {address}, f"{action} of VF {address}")


def _meminfo_kb(text: str, key: str) -> int | None:
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if key in fields:
            at = fields.index(key)
            if at + 1 < len(fields) and fields[at + 1].isdigit():
                return int(fields[at + 1])
    return None


def _memory_kb(root: str, sysfs: SysDir, node: int | None) -> int:
    """MemTotal of a NUMA node (its sysfs ``meminfo``) or of the host (``/proc/meminfo``,
    else the sum of the nodes'); ``OSError`` when it cannot be read (fail closed)."""
    def node_total(name: str) -> int | None:
        try:
            return _meminfo_kb(sysfs.read("devices", "system", "node", name, "meminfo"),
                               "MemTotal")
        except (OSError, ValueError):
            return None

    total: int | None
    if node is not None:
        total = node_total(f"node{node}")
    else:
        try:
            fd = open_physical(os.path.join(os.path.realpath(root), "proc", "meminfo"),
                               os.O_RDONLY)
            try:
                total = _meminfo_kb(os.read(fd, 65536).decode("ascii", "replace"), "MemTotal")
            finally:
                os.close(fd)
        except (OSError, ValueError):
            total = None
        if total is None:
            nodes = [node_total(name) for name in _node_names(sysfs)]
            total = sum(n for n in nodes if n is not None) if nodes and None not in nodes \
                else None
    if total is None:
        where = "the host" if node is None else f"NUMA node {node}"
        raise OSError(errno.ENOENT, f"cannot read MemTotal of {where} under {root}: "
                                    f"refusing to size a hugepage pool without it")
    return total


def _node_names(sysfs: SysDir) -> list[str]:
    try:
        rel = sysfs.resolve("devices", "system", "node")
        return sorted(n for n in os.listdir(sysfs.join(rel))
                      if n.startswith("node") and n[4:].isdigit())
    except (OSError, ValueError):
        return []


# --------------------------------------------------------------------------- entry points


@context.entrypoint
def set_sriov_numvfs(root: str, pf_address: str, count: int) -> None:
    """Write ``sriov_numvfs`` of a PF (the kernel enforces sriov_totalvfs: ERANGE)."""
    address = _address(pf_address)
    count = _int(count, 0, MAX_VFS_PER_PF, "VF count")
    with _root(root) as sysfs:
        _device(sysfs, address)
        path = _sys_path(sysfs, "sriov_numvfs (not an SR-IOV PF)",
                         "bus", "pci", "devices", address, "sriov_numvfs")
        _guard_numvfs(root, sysfs, address, count)
        _write(path, f"{count}\n")


@context.entrypoint
def set_driver_override(root: str, vf_address: str, driver: str | None) -> None:
    """Pin a VF to ``driver`` for the next probe, or clear the pin with ``None``."""
    address = _address(vf_address)
    value = "\n" if driver is None else _driver(driver) + "\n"
    with _root(root) as sysfs:
        _vf(sysfs, address)
        _guard_vf(root, sysfs, address, "set driver_override")
        _write(_sys_path(sysfs, "driver_override",
                         "bus", "pci", "devices", address, "driver_override"), value)


@context.entrypoint
def unbind_driver(root: str, vf_address: str) -> bool:
    """Unbind a VF from whatever driver holds it; False when it was not bound."""
    address = _address(vf_address)
    with _root(root) as sysfs:
        _vf(sysfs, address)
        link = ("bus", "pci", "devices", address, "driver")
        if not sysfs.is_link(*link):
            return False
        driver = _driver(os.path.basename(sysfs.readlink(*link)))
        _guard_vf(root, sysfs, address, f"unbind {driver}")
        _write(_sys_path(sysfs, f"driver {driver}", "bus", "pci", "drivers", driver, "unbind"),
               address)
    return True


@context.entrypoint
def bind_driver(root: str, vf_address: str, driver: str) -> None:
    """Bind an unbound VF to a loaded driver (``drivers/<driver>/bind``)."""
    address = _address(vf_address)
    name = _driver(driver)
    with _root(root) as sysfs:
        _vf(sysfs, address)
        _guard_vf(root, sysfs, address, f"bind {name}")
        _write(_sys_path(sysfs, f"driver {name} (module not loaded?)",
                         "bus", "pci", "drivers", name, "bind"), address)


@context.entrypoint
def drivers_probe(root: str, vf_address: str) -> None:
    """Ask the PCI core to probe a VF (honours driver_override)."""
    address = _address(vf_address)
    with _root(root) as sysfs:
        _vf(sysfs, address)
        _guard_vf(root, sysfs, address, "probe")
        _write(_sys_path(sysfs, "drivers_probe", "bus", "pci", "drivers_probe"), address)


@context.entrypoint
def set_nr_hugepages(root: str, node: int | None, size_kb: int, count: int) -> None:
    """Write ``nr_hugepages`` of one NUMA node's pool (``node=None``: the global pool)."""
    size = _int(size_kb, 4, 16 * 1024 * 1024, "hugepage size (kB)")
    if size & (size - 1):
        raise ValueError(f"hugepage size {size} kB is not a power of two")
    count = _int(count, 0, MAX_HUGEPAGES, "hugepage count")
    pool = f"hugepages-{size}kB"
    parts: tuple[str, ...]
    if node is None:
        parts = ("kernel", "mm", "hugepages", pool, "nr_hugepages")
    else:
        number = _int(node, 0, MAX_NUMA_NODE, "NUMA node")
        parts = ("devices", "system", "node", f"node{number}", "hugepages", pool,
                 "nr_hugepages")
    with _root(root) as sysfs:
        path = _sys_path(sysfs, f"{pool} pool", *parts)
        limit = _memory_kb(root, sysfs, node) // size
        if count > limit:
            where = "the host" if node is None else f"NUMA node {node}"
            raise ValueError(f"hugepage count {count} x {size} kB is more than the memory of "
                             f"{where} ({limit} pages)")
        _write(path, f"{count}\n")


@context.entrypoint
def devlink_set_eswitch_mode(pf_address: str, mode: str) -> None:
    """``devlink dev eswitch set pci/<pf> mode <legacy|switchdev>``."""
    address = _address(pf_address)
    if mode not in ESWITCH_MODES:
        raise ValueError(f"eswitch mode {mode!r} is not one of {sorted(ESWITCH_MODES)}")
    argv = ["devlink", "dev", "eswitch", "set", f"pci/{address}", "mode", mode]
    LOG.info("running %s", " ".join(argv))
    _kernel.run(argv)


@context.entrypoint
def devlink_set_param(pf_address: str, name: str, value: str) -> None:
    """``devlink dev param set pci/<pf> name <name> value <value> cmode runtime``.

    Only parameters in ``DEVLINK_PARAMS`` with one of their listed values are accepted.
    """
    address = _address(pf_address)
    allowed = DEVLINK_PARAMS.get(name) if isinstance(name, str) else None
    if allowed is None:
        raise ValueError(f"devlink parameter {name!r} is not one this tool sets")
    if value not in allowed:
        raise ValueError(f"{name} value {value!r} is not one of {sorted(allowed)}")
    argv = ["devlink", "dev", "param", "set", f"pci/{address}", "name", name, "value", value,
            "cmode", "runtime"]
    LOG.info("running %s", " ".join(argv))
    _kernel.run(argv)
