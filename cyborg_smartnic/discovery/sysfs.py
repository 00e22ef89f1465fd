"""A read-only sysfs reader bound to one root, and strict parsers for the kernel's spellings.

Every path is derived from the injected root (``/`` on a host, a generated tree or unpacked
snapshot in tests), so nothing here ever reads the real ``/sys`` by accident. Reads are
tolerant of the kernel's normal events: a file that is absent, or answers ENOENT/ENODEV/
EINVAL/EOPNOTSUPP (vanished function, link down, unsupported attribute) reads as ``None``;
any other failure (EACCES, EISDIR, EIO) raises ``UnreadableAttribute`` so the scan can skip
the one device with a reason. So does anything that is not a regular file: a tree passed as
``--sysfs-root`` (an unpacked snapshot) may hold a FIFO, which would block the scan forever,
or a device node, whose open can act; below any root but ``/`` both are refused before they
are opened, and files are always opened non-blocking. The hot path uses ``os`` calls on
``str`` paths: a scan of a large host makes tens of thousands of them.

``hook(op, path)`` runs before every operation (``op`` is ``read``, ``readlink`` or
``listdir``): benchmarks record the exact paths read, tests delete things mid-scan.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO, cast, overload

from cyborg_smartnic.errors import SmartNicError

# The kernel's "not there (now)" answers: the function vanished, the link is down, the
# attribute is not supported by this driver. Not errors.
_ABSENT = frozenset({errno.ENOENT, errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP,
                     errno.ENXIO, errno.ENOTDIR})
_MAX_READ = 65536
PCI_DEVICES = "sys/bus/pci/devices"
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))

Hook = Callable[[str, str], None]


class SysfsError(SmartNicError):
    msg_fmt = "%(path)s: %(reason)s"


class UnreadableAttribute(SysfsError):
    """A sysfs file exists but cannot be read (EACCES, EISDIR, EIO...)."""

    msg_fmt = "cannot read %(path)s: %(reason)s"


class MalformedAttribute(SmartNicError):
    """A sysfs value that does not have the kernel's spelling."""

    msg_fmt = "%(attribute)s %(value)r: %(reason)s"


class NotRegularFile(OSError):
    """A FIFO, socket or device node where a file was expected; never opened."""


@overload
def open_regular(path: str) -> BinaryIO: ...


@overload
def open_regular(path: str, encoding: str, errors: str | None = None) -> TextIO: ...


def open_regular(path: str, encoding: str | None = None,
                 errors: str | None = None) -> BinaryIO | TextIO:
    """``open(path)`` for reading a file of a tree someone else made (a snapshot, a
    generated tree): ``NotRegularFile`` (an ``OSError``, so callers' handlers still apply)
    instead of blocking on a FIFO or opening a device node; opened non-blocking. Text mode
    when ``encoding`` is given. Every reader of files under ``--sysfs-root`` uses this."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(f"{path}: {_not_regular(mode)}")
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if encoding is None:
            return cast(BinaryIO, os.fdopen(fd, "rb"))
        return cast(TextIO, os.fdopen(fd, "r", encoding=encoding, errors=errors))
    except BaseException:
        os.close(fd)
        raise


def check_root(root: Path | str) -> None:
    """Raise ``SysfsError`` unless ``root`` holds ``sys/bus/pci/devices``.

    A host always has PCI functions, so a root without that directory is a typo, an
    unmounted sysfs or the directory above an unpacked snapshot: scanning it would report
    an empty host as if that were the truth (the driver refuses it the same way).
    """
    if not os.path.isdir(os.path.join(root, PCI_DEVICES)):
        where = "does not exist" if not os.path.lexists(root) else f"has no {PCI_DEVICES}"
        raise SysfsError(path=os.fspath(root),
                         reason=f"{where}: not a sysfs root (is sysfs mounted there? for a "
                                f"snapshot, pass its snapshot-<host> directory)")


class SysfsReader:
    """Reads files, links and directories below ``root``; nothing here writes."""

    __slots__ = ("_hook", "root", "sys")

    def __init__(self, root: Path | str, hook: Hook | None = None) -> None:
        text = os.fspath(root).rstrip("/")
        self.root = text  # "" for "/": paths are root + "/sys/..."
        self.sys = text + "/sys"
        self._hook = hook

    @property
    def is_live(self) -> bool:
        """True when reading the running host's own ``/``."""
        return self.root == ""

    def path(self, relative: str) -> str:
        """Absolute path of ``relative`` (e.g. ``proc/cmdline``) under the root."""
        return f"{self.root}/{relative}"

    def shown(self, path: str) -> str:
        """``path`` as the host would spell it (without the root prefix), for messages."""
        return path[len(self.root):] if self.root and path.startswith(self.root) else path

    def _unreadable(self, path: str, exc: OSError) -> UnreadableAttribute:
        return UnreadableAttribute(path=self.shown(path), reason=os.strerror(exc.errno or 0))

    def _open(self, path: str) -> int | None:
        """A descriptor of the regular file at ``path``, ``None`` when it is not there.

        Below another root (an unpacked snapshot, anyone's tree) the type is checked before
        the open, which costs one ``stat`` per read; the running host's sysfs and procfs hold
        no FIFOs or device nodes, so the agent's scan of ``/`` skips it.
        """
        try:
            if self.root:
                mode = os.stat(path).st_mode
                if not stat.S_ISREG(mode):
                    raise UnreadableAttribute(path=self.shown(path),
                                              reason=_not_regular(mode))
            return os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise self._unreadable(path, exc) from exc

    def _read_fd(self, path: str) -> bytes | None:
        fd = self._open(path)
        if fd is None:
            return None
        try:
            return os.read(fd, _MAX_READ)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise self._unreadable(path, exc) from exc
        finally:
            os.close(fd)

    def read(self, path: str) -> str | None:
        """The file's text without the trailing newline, or ``None`` when it is not there."""
        if self._hook is not None:
            self._hook("read", path)
        data = self._read_fd(path)
        if data is None:
            return None
        try:
            return data.decode().rstrip("\n")
        except UnicodeDecodeError as exc:
            raise UnreadableAttribute(path=self.shown(path), reason="not UTF-8 text") from exc

    def read_bytes(self, path: str) -> bytes | None:
        """Binary attributes (``vpd``); ``None`` when absent."""
        if self._hook is not None:
            self._hook("read", path)
        return self._read_fd(path)

    def link_name(self, path: str) -> str | None:
        """Last component of a symlink's target (``driver`` -> ``mlx5_core``); ``None`` if no
        link. The target is not resolved: a dangling link still has a name."""
        if self._hook is not None:
            self._hook("readlink", path)
        try:
            target = os.readlink(path)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return None
            raise self._unreadable(path, exc) from exc
        return target.rsplit("/", 1)[-1]

    def is_dir(self, path: str) -> bool:
        """True when ``path`` is a directory (a loaded module, a bound driver), following
        links as sysfs's own directory links need."""
        if self._hook is not None:
            self._hook("isdir", path)
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        """Entry names, or ``[]`` when the directory is not there."""
        if self._hook is not None:
            self._hook("listdir", path)
        try:
            return os.listdir(path)
        except OSError as exc:
            if exc.errno in _ABSENT:
                return []
            raise self._unreadable(path, exc) from exc


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return os.strerror(errno.EISDIR)  # what reading a directory answers
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    return f"not a regular file ({kind}); refusing to open it"


class RecordingReader(SysfsReader):
    """A reader that remembers every operation it made, in order (for the benchmark floor)."""

    __slots__ = ("ops",)

    def __init__(self, root: Path | str) -> None:
        self.ops: list[tuple[str, str]] = []
        super().__init__(root, hook=lambda op, path: self.ops.append((op, path)))


# ---------------------------------------------------------------------------- parsers
_HEX_ID = re.compile(r"0x([0-9a-fA-F]{4})")
_BARE_HEX_ID = re.compile(r"[0-9a-fA-F]{4}")
_CLASS = re.compile(r"0x([0-9a-fA-F]{6})")
_INT = re.compile(r"-?[0-9]{1,10}")
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_SWITCH_ID = re.compile(r"[0-9a-fA-F]{2,64}")


def parse_hex_id(text: str | None, attribute: str) -> str:
    """``0x15b3`` -> ``15b3`` (``vendor``, ``device``, ``subsystem_*`` files)."""
    if text is None:
        raise MalformedAttribute(attribute=attribute, value="", reason="missing")
    match = _HEX_ID.fullmatch(text)
    if match is None:
        raise MalformedAttribute(attribute=attribute, value=text,
                                 reason="expected 0x and 4 hexadecimal digits")
    return match[1].lower()


def parse_bare_hex_id(text: str | None, attribute: str) -> str:
    """``101e`` -> ``101e`` (``sriov_vf_device`` has no ``0x``)."""
    if text is None:
        raise MalformedAttribute(attribute=attribute, value="", reason="missing")
    if _BARE_HEX_ID.fullmatch(text) is None:
        raise MalformedAttribute(attribute=attribute, value=text,
                                 reason="expected 4 hexadecimal digits")
    return text.lower()


def parse_class(text: str | None) -> int:
    """``0x020000`` -> ``0x20000``."""
    if text is None:
        raise MalformedAttribute(attribute="class", value="", reason="missing")
    match = _CLASS.fullmatch(text)
    if match is None:
        raise MalformedAttribute(attribute="class", value=text,
                                 reason="expected 0x and 6 hexadecimal digits")
    return int(match[1], 16)


def parse_int(text: str | None, attribute: str, minimum: int, maximum: int) -> int:
    """A decimal integer in ``[minimum, maximum]`` (rejects empty, huge and signed junk)."""
    if text is None:
        raise MalformedAttribute(attribute=attribute, value="", reason="missing")
    if _INT.fullmatch(text) is None:
        raise MalformedAttribute(attribute=attribute, value=text,
                                 reason="expected a decimal integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise MalformedAttribute(attribute=attribute, value=text,
                                 reason=f"out of range {minimum}..{maximum}")
    return value


def parse_numa_node(text: str | None) -> int | None:
    """``numa_node``: ``-1`` (or absent) means unknown."""
    if text is None:
        return None
    value = parse_int(text, "numa_node", -1, 4095)
    return None if value < 0 else value


def parse_mac(text: str | None) -> str | None:
    """A netdev ``address`` as lowercase ``aa:bb:cc:dd:ee:ff``; ``None`` when absent."""
    if text is None:
        return None
    if _MAC.fullmatch(text) is None:
        raise MalformedAttribute(attribute="address", value=text,
                                 reason="expected six colon-separated hex octets")
    return text.lower()


def parse_switch_id(text: str | None) -> str | None:
    """``phys_switch_id``: hex bytes; empty or absent means the port is not on an eswitch."""
    if not text:
        return None
    return text.lower() if _SWITCH_ID.fullmatch(text) else None


def parse_vpd_serial(data: bytes | None) -> str | None:
    """The ``SN`` keyword of a PCI VPD image's read-only section, if any."""
    if not data:
        return None
    pos = 0
    while pos < len(data):
        tag = data[pos]
        if tag in (0x78, 0x0F):  # small resource "end" tag
            return None
        if not tag & 0x80 or pos + 3 > len(data):
            return None
        length = int.from_bytes(data[pos + 1:pos + 3], "little")
        body = data[pos + 3:pos + 3 + length]
        if tag == 0x90:  # VPD-R
            inner = 0
            while inner + 3 <= len(body):
                key, size = body[inner:inner + 2], body[inner + 2]
                value = body[inner + 3:inner + 3 + size]
                if key == b"SN":
                    return value.decode("ascii", "replace").strip() or None
                inner += 3 + size
        pos += 3 + length
    return None
