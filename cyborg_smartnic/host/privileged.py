"""The only code that changes the host: small oslo.privsep entry points, one per kind of write.

Each entry point runs inside the privsep daemon and re-validates every argument there (PCI
addresses, driver names, integer ranges, and the sysfs root: every path is walked with
directory descriptors beneath ``<root>/sys`` and opened with ``O_NOFOLLOW`` at every
component, see ``beneath``), because the unprivileged caller is not trusted. There is no
generic "write this file" entry point and no shell: devlink runs from a fixed path with an
argv list. Driver writes are allowed on VFs only, so a typo cannot unbind a disk controller.

The context keeps two capabilities: CAP_DAC_OVERRIDE (sysfs attributes are root-owned 0644/
0200 files; the daemon may run as a non-root user) and CAP_NET_ADMIN (devlink's netlink
commands are admin-only). Nothing here needs CAP_SYS_ADMIN.

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
import subprocess
from typing import Protocol

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from cyborg_smartnic.conf import PRIVSEP_GROUP
from cyborg_smartnic.errors import InvalidPciAddress
from cyborg_smartnic.host.beneath import SysDir, open_physical
from cyborg_smartnic.pci import PciAddress

LOG = logging.getLogger(__name__)

CONFIG_SECTION = PRIVSEP_GROUP

context = priv_context.PrivContext(
    "cyborg_smartnic",
    cfg_section=CONFIG_SECTION,
    pypath=__name__ + ".context",
    capabilities=[caps.CAP_DAC_OVERRIDE, caps.CAP_NET_ADMIN],
)

MAX_VFS = 4096
MAX_NUMA_NODE = 1023
MAX_HUGEPAGES = 10_000_000
ESWITCH_MODES = frozenset({"legacy", "switchdev"})
DEVLINK_PARAMS: dict[str, frozenset[str]] = {
    "flow_steering_mode": frozenset({"smfs", "dmfs"}),
}
DEVLINK_PATHS = ("/usr/sbin/devlink", "/sbin/devlink", "/usr/bin/devlink", "/bin/devlink")
DEVLINK_TIMEOUT = 60.0
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

    def run(self, argv: list[str]) -> None:
        binary = next((p for p in DEVLINK_PATHS if os.access(p, os.X_OK)), None)
        if binary is None:
            raise OSError(errno.ENOENT, "devlink (iproute2) is not installed")
        try:
            done = subprocess.run([binary, *argv[1:]], capture_output=True, text=True,
                                  timeout=DEVLINK_TIMEOUT, check=False)
        except subprocess.TimeoutExpired as exc:
            raise OSError(errno.ETIMEDOUT, f"{' '.join(argv)}: no answer in "
                                           f"{DEVLINK_TIMEOUT:.0f}s") from exc
        if done.returncode != 0:
            text = (done.stderr or done.stdout or "").strip().splitlines()
            message = text[-1] if text else f"exit status {done.returncode}"
            code = next((c for t, c in _ERRNO_BY_TEXT.items() if t in message), errno.EIO)
            raise OSError(code, f"{' '.join(argv)}: {message}")


_kernel: KernelIO = SystemKernel()


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
        return SysDir.open(root)
    except OSError as exc:
        raise ValueError(f"{os.path.join(root, 'sys')} is not a directory") from exc


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


# --------------------------------------------------------------------------- entry points


@context.entrypoint
def set_sriov_numvfs(root: str, pf_address: str, count: int) -> None:
    """Write ``sriov_numvfs`` of a PF (the kernel enforces sriov_totalvfs: ERANGE)."""
    address = _address(pf_address)
    count = _int(count, 0, MAX_VFS, "VF count")
    with _root(root) as sysfs:
        _device(sysfs, address)
        path = _sys_path(sysfs, "sriov_numvfs (not an SR-IOV PF)",
                         "bus", "pci", "devices", address, "sriov_numvfs")
        _write(path, f"{count}\n")


@context.entrypoint
def set_driver_override(root: str, vf_address: str, driver: str | None) -> None:
    """Pin a VF to ``driver`` for the next probe, or clear the pin with ``None``."""
    address = _address(vf_address)
    value = "\n" if driver is None else _driver(driver) + "\n"
    with _root(root) as sysfs:
        _vf(sysfs, address)
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
        _write(_sys_path(sysfs, f"driver {name} (module not loaded?)",
                         "bus", "pci", "drivers", name, "bind"), address)


@context.entrypoint
def drivers_probe(root: str, vf_address: str) -> None:
    """Ask the PCI core to probe a VF (honours driver_override)."""
    address = _address(vf_address)
    with _root(root) as sysfs:
        _vf(sysfs, address)
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
        _write(_sys_path(sysfs, f"{pool} pool", *parts), f"{count}\n")


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
