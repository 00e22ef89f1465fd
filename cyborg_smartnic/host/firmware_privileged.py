"""Privileged entry points for firmware changes, in their own privsep context.

Four writes, each a fixed argument list validated again inside the daemon: an NV config
parameter (``mstconfig``/``mlxconfig -y -d <pci> set KEY=VALUE``, keys and values from the
closed table ``firmware.NV_KEYS``), a firmware reset (``mlxfwreset -d <pci> --level 3 -y
reset``, else ``devlink dev reload pci/<pci> action fw_activate``), reloading a driver from a
closed set (``modprobe -r ice``, ``modprobe ice``), and installing an ice DDP package: a file
named like a DDP package, read from one of the fixed source directories under the root and
written atomically to ``<root>/lib/firmware/updates/intel/ice/ddp/ice.pkg``, every component
below ``<root>/lib/firmware`` opened with ``O_NOFOLLOW`` (``beneath``). No shell, no generic
"run this" or "write any file".

The tools need more than the sysfs writes do, so ``context`` here is a second context (config
section ``[cyborg_smartnic_firmware_privileged]``, its own daemon, started on the first
firmware call, so only when a plan has a firmware step) and ``privileged.context`` keeps its
narrow set. Its capabilities: CAP_SYS_ADMIN and CAP_SYS_RAWIO (``mstconfig``/``mlxfwreset``
write PCI config space and reset the device), CAP_SYS_MODULE (``modprobe -r``/``modprobe``),
CAP_NET_ADMIN (the ``devlink dev reload ... fw_activate`` fallback is an admin-only netlink
command) and CAP_DAC_OVERRIDE (``install_ddp`` reads and writes root-owned files under
``lib/firmware``; the daemon may run as a non-root user).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat

from oslo_privsep import capabilities as caps
from oslo_privsep import priv_context

from cyborg_smartnic.conf import FIRMWARE_PRIVSEP_GROUP
from cyborg_smartnic.host import firmware, privileged
from cyborg_smartnic.host.beneath import component, open_physical, open_physical_dir

LOG = logging.getLogger(__name__)

NV_TOOLS = ("mstconfig", "mlxconfig")  # mstflint's, then NVIDIA MFT's
RELOADABLE_DRIVERS = frozenset({firmware.DDP_DRIVER})
MAX_DDP_BYTES = 16 * 1024 * 1024  # ice packages are about 1 MiB
FIRMWARE_DIR = "lib/firmware"

CONFIG_SECTION = FIRMWARE_PRIVSEP_GROUP

context = priv_context.PrivContext(
    "cyborg_smartnic",
    cfg_section=CONFIG_SECTION,
    pypath=__name__ + ".context",
    capabilities=[caps.CAP_SYS_ADMIN, caps.CAP_SYS_RAWIO, caps.CAP_SYS_MODULE,
                  caps.CAP_NET_ADMIN, caps.CAP_DAC_OVERRIDE],
)

def _has_tool(name: str) -> bool:
    check = getattr(privileged.current_kernel(), "has_tool", None)
    return bool(check(name)) if check is not None else False


def nv_value(key: object, value: object) -> tuple[str, int]:
    """``key`` from ``firmware.NV_KEYS`` and an integer it allows, else ``ValueError``."""
    if not isinstance(key, str) or key not in firmware.NV_KEYS:
        raise ValueError(f"NV parameter {key!r} is not one this tool sets "
                         f"({', '.join(sorted(firmware.NV_KEYS))})")
    if not isinstance(value, int) or isinstance(value, bool) or value not in (
            firmware.NV_KEYS[key]):
        raise ValueError(f"{key} value {value!r} is not allowed")
    return key, value


@context.entrypoint
def nv_config_set(pf_address: str, key: str, value: int) -> str:
    """``mstconfig -y -d <pf> set KEY=VALUE`` (``mlxconfig`` when mstflint is missing);
    returns the tool used."""
    address = privileged._address(pf_address)
    name, number = nv_value(key, value)
    tool = next((t for t in NV_TOOLS if _has_tool(t)), None)
    if tool is None:
        raise OSError(errno.ENOENT, "neither mstconfig (mstflint) nor mlxconfig (MFT) is "
                                    "installed")
    argv = [tool, "-y", "-d", address, "set", f"{name}={number}"]
    LOG.info("running %s", " ".join(argv))
    privileged.current_kernel().run(argv)
    return tool


@context.entrypoint
def fw_reset(pf_address: str) -> str:
    """Activate pending NV config: ``mlxfwreset`` level 3, else devlink ``fw_activate``."""
    address = privileged._address(pf_address)
    if _has_tool("mlxfwreset"):
        argv = ["mlxfwreset", "-d", address, "--level", "3", "-y", "reset"]
    else:
        argv = ["devlink", "dev", "reload", f"pci/{address}", "action", "fw_activate"]
    LOG.info("running %s", " ".join(argv))
    privileged.current_kernel().run(argv)
    return argv[0]


@context.entrypoint
def reload_driver(driver: str) -> None:
    """``modprobe -r <driver>`` then ``modprobe <driver>``, for drivers in a closed set."""
    if driver not in RELOADABLE_DRIVERS:
        raise ValueError(f"driver {driver!r} is not one this tool reloads")
    for argv in (["modprobe", "-r", driver], ["modprobe", driver]):
        LOG.info("running %s", " ".join(argv))
        privileged.current_kernel().run(argv)


@context.entrypoint
def install_ddp(root: str, directory: str, name: str) -> bool:
    """Copy ``<root>/<directory>/<name>`` to ``<root>/lib/firmware/updates/intel/ice/ddp/
    ice.pkg`` atomically; False when it is there already, byte for byte."""
    if directory not in firmware.DDP_SOURCE_DIRS:
        raise ValueError(f"{directory!r} is not a DDP package directory")
    if not isinstance(name, str) or firmware.DDP_FILE_RE.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a DDP package file name (ice[_kind]-N.N.N.N.pkg)")
    base = _firmware_dir(root)
    source = os.path.join(base, directory.removeprefix(FIRMWARE_DIR + "/"), component(name))
    data = _read_all(source)
    target_dir = firmware.DDP_TARGET_DIR.removeprefix(FIRMWARE_DIR + "/").split("/")
    fd = _make_dirs(base, target_dir)
    try:
        try:
            existing = os.open(firmware.DDP_TARGET, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except FileNotFoundError:
            existing = -1
        if existing >= 0:
            try:
                same = (stat.S_ISREG(os.fstat(existing).st_mode)
                        and os.read(existing, MAX_DDP_BYTES + 1) == data)
            finally:
                os.close(existing)
            if same:
                return False
        temporary = f".{firmware.DDP_TARGET}.{os.getpid()}.tmp"
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                      dir_fd=fd)
        try:
            os.write(out, data)
            os.fsync(out)
        finally:
            os.close(out)
        os.rename(temporary, firmware.DDP_TARGET, src_dir_fd=fd, dst_dir_fd=fd)
        os.fsync(fd)
        LOG.info("installed %s as %s/ice.pkg", source, firmware.DDP_TARGET_DIR)
        return True
    finally:
        os.close(fd)


def _firmware_dir(root: str) -> str:
    """The physical ``<root>/lib/firmware`` (``/lib`` is a symlink on merged-/usr systems),
    owned by root and writable by no one else, like the sysfs root."""
    privileged._root(root).close()
    path = os.path.realpath(os.path.join(root, FIRMWARE_DIR))
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise ValueError(f"{path} must be a directory owned by root and writable only by root")
    return path


def _read_all(path: str) -> bytes:
    fd = open_physical(path, os.O_RDONLY)
    try:
        data = os.read(fd, MAX_DDP_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_DDP_BYTES or not data:
        raise ValueError(f"{path}: not a DDP package (size {len(data)} bytes)")
    return data


def _make_dirs(base: str, parts: list[str]) -> int:
    """A directory descriptor of ``base/parts...``, creating missing ones, no symlinks."""
    fd = open_physical_dir(base)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(component(part), 0o755, dir_fd=fd)
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd
