"""Record exactly what discovery reads from a host into a deterministic ``.tar.gz``.

A snapshot is a small root filesystem: every sysfs file, symlink and directory the scan
touched, at the path the kernel shows it (``sys/bus/pci/devices/<addr>`` stays a relative
symlink into ``sys/devices/...``), plus the answers to the read-only devlink, mstconfig and
mlxfwreset questions in the files ``devlink.RecordedTools`` reads
(``devlink.recorded_queries``), the host's name in
``etc/hostname`` (discovery of a recorded tree reads it there) and a ``snapshot.json``
manifest. The ``[smartnic]`` options given to the command (those that differ from the
defaults, host paths left out) are recorded in ``etc/smartnic.conf``: every command run with
the unpacked snapshot as ``--sysfs-root`` reads them first (``--config-file`` is layered on
top), so a replay keeps the host's physnets, pools and traits. Unpacked, it is a valid
``--sysfs-root`` for every command, and discovery gives the same answer as on the host.

What goes in is decided by tracing the scan (the reader records each operation and whether
it found something), never by globbing: nothing discovery does not read is recorded. Listed
directories keep their subdirectories and symlinks (so listings match) but not the contents
of files discovery never opened. When ``[smartnic] devices`` selects devices, the host is also
traced without selectors (what ``host plan`` reads), so either view works on the snapshot.

Sysfs files claim 4096 bytes: content is read to EOF and the tar size set from what was read.
A file that vanished between the scan and the pack, or cannot be read (EACCES, EIO: some
``vpd``), is left out with a warning and listed in the manifest's ``omitted``. Members are
sorted, owned by root, with mode and mtime fixed, and the gzip header carries no name or
time, so two snapshots of an unchanged host taken with the same ``created`` are identical.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import json
import logging
import os
import posixpath
import re
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oslo_config import cfg

from cyborg_smartnic import __version__, safetar
from cyborg_smartnic import conf as smartnic_conf
from cyborg_smartnic.catalog import MLX5_DRIVER, Catalog
from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery.export import host_to_dict
from cyborg_smartnic.discovery.model import Host, PhysicalFunction
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.sysfs import (
    NotRegularFile,
    SysfsReader,
    UnreadableAttribute,
    open_regular,
)
from cyborg_smartnic.errors import SmartNicError

LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "snapshot.json"
HOSTNAME_FILE = "etc/hostname"
CONFIG_FILE = "etc/smartnic.conf"
#: Paths on the recorded host: meaningless (or harmful) where the snapshot is replayed.
_HOST_PATH_OPTIONS = frozenset({"sysfs_root", "state_file", "pci_ids_path"})
MAX_FILE_BYTES = 1 << 20
MAX_SYMLINKS = 40
#: What ``unpack`` accepts: a 2048-VF host with 2000 other PCI functions snapshots to about
#: 32,000 members and 1 MiB of file content (22 MiB of tar data); no file exceeds
#: MAX_FILE_BYTES, as ``take`` caps them.
UNPACK_LIMITS = safetar.Limits(members=250_000, file_bytes=MAX_FILE_BYTES,
                               total_bytes=64 << 20, stream_bytes=512 << 20)

FILE = "file"
DIR = "dir"
LINK = "link"

READ = "read"
READLINK = "readlink"
LISTDIR = "listdir"

# The answers SysfsReader treats as "not there (now)": such a file is left out, silently.
_NOT_THERE = frozenset({errno.ENOENT, errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP,
                        errno.ENXIO, errno.ENOTDIR})
_TOP_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DISCOVERY_LOGGERS = ("cyborg_smartnic.discovery.scan", "cyborg_smartnic.discovery.devlink")


class SnapshotError(SmartNicError):
    msg_fmt = "%(path)s: %(reason)s"


@dataclass(frozen=True, slots=True)
class Access:
    """One reader operation of the scan: ``path`` relative to the root, and whether the
    scan found something there (a file or link, a non-empty listing, or an unreadable file)."""

    op: str
    path: str
    found: bool


@dataclass(frozen=True, slots=True)
class Member:
    """One archive entry, ``name`` relative to the snapshot root."""

    name: str
    kind: str
    data: bytes = b""
    target: str = ""


@dataclass(frozen=True, slots=True)
class Omission:
    path: str
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """What ``take`` gathered: the scanned host, the members and the manifest."""

    host: Host
    top: str
    members: tuple[Member, ...]
    omitted: tuple[Omission, ...]
    manifest: Mapping[str, Any]

    def count(self, kind: str) -> int:
        return sum(1 for member in self.members if member.kind == kind)


# ---------------------------------------------------------------------------- tracing
class TracingReader(SysfsReader):
    """A ``SysfsReader`` that remembers each operation, relative path and outcome."""

    __slots__ = ("trace",)

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self.trace: list[Access] = []

    def _note(self, op: str, path: str, found: bool) -> None:
        prefix = self.root + "/"
        if path.startswith(prefix):
            self.trace.append(Access(op, path[len(prefix):], found))

    def read(self, path: str) -> str | None:
        try:
            text = super().read(path)
        except UnreadableAttribute:
            self._note(READ, path, True)
            raise
        self._note(READ, path, text is not None)
        return text

    def read_bytes(self, path: str) -> bytes | None:
        try:
            data = super().read_bytes(path)
        except UnreadableAttribute:
            self._note(READ, path, True)
            raise
        self._note(READ, path, data is not None)
        return data

    def link_name(self, path: str) -> str | None:
        try:
            name = super().link_name(path)
        except UnreadableAttribute:
            self._note(READLINK, path, True)
            raise
        self._note(READLINK, path, name is not None)
        return name

    def listdir(self, path: str) -> list[str]:
        try:
            names = super().listdir(path)
        except UnreadableAttribute:
            self._note(LISTDIR, path, True)
            raise
        self._note(LISTDIR, path, bool(names))
        return names


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet_discovery() -> Iterator[None]:
    """The second (selector-free) trace repeats the first one's warnings: hide them."""
    quiet = _QuietFilter()
    loggers = [logging.getLogger(name) for name in _DISCOVERY_LOGGERS]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def trace_scan(root: str, options: ScanOptions) -> tuple[Host, list[Access],
                                                        list[PhysicalFunction]]:
    """Scan ``root`` with ``options`` (the manifest's view), and again without selectors when
    there are any; returns the first host, every access of both and the PFs of both."""
    reader = TracingReader(root)
    host = scan(root, options, reader=reader)
    accesses = list(reader.trace)
    pfs = list(host.physical_functions)
    if options.selectors:
        wide = TracingReader(root)
        with _quiet_discovery():
            every = scan(root, dataclasses.replace(options, selectors=()), reader=wide)
        accesses += wide.trace
        known = {pf.address for pf in pfs}
        pfs += [pf for pf in every.physical_functions if pf.address not in known]
    return host, accesses, pfs


# ---------------------------------------------------------------------------- packing
def _read_file(path: str) -> bytes:
    """Whole content (sysfs sizes are fictional), capped at ``MAX_FILE_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    with open_regular(path) as stream:  # a FIFO would block, a device node can act
        while size < MAX_FILE_BYTES:
            chunk = stream.read(min(65536, MAX_FILE_BYTES - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


class Packer:
    """Turns traced accesses into members, following symlinks component by component so that
    every link on the way is recorded as a link and every real directory as a directory."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")  # "" for the running host
        self.members: dict[str, Member] = {}
        self.omitted: dict[str, str] = {}
        self._lstat: dict[str, os.stat_result | None] = {}

    @property
    def live(self) -> bool:
        return self.root == ""

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def lstat(self, rel: str) -> os.stat_result | None:
        if rel not in self._lstat:
            try:
                self._lstat[rel] = os.lstat(self.full(rel))
            except OSError:
                self._lstat[rel] = None
        return self._lstat[rel]

    def omit(self, rel: str, reason: str) -> None:
        if rel not in self.omitted:
            LOG.warning("snapshot: leaving out /%s: %s", rel, reason)
            self.omitted[rel] = reason

    def add(self, access: Access) -> None:
        if access.op == READLINK:
            self.walk(access.path, access.found, follow_last=False)
            return
        real = self.walk(access.path, access.found, follow_last=True)
        if real is None:
            return
        info = self.lstat(real)
        if info is None:
            return
        if stat.S_ISDIR(info.st_mode):
            self.members.setdefault(real, Member(real, DIR))
            if access.op == LISTDIR:
                self.add_listing(real)
        elif access.op == READ and stat.S_ISREG(info.st_mode):
            self.add_file(real, access.found)
        elif access.op == READ:
            self.omit(real, "not a regular file")

    def walk(self, rel: str, expected: bool, follow_last: bool) -> str | None:
        """The real relative path ``rel`` leads to (``None`` when it is not there), recording
        each symlink met on the way (and the final one itself when not following it)."""
        pending = [part for part in rel.split("/") if part not in ("", ".")]
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if not current:
                    self.omit(rel, "leads outside the root")
                    return None
                current.pop()
                continue
            here = "/".join([*current, part])
            info = self.lstat(here)
            if info is None:
                if expected:
                    self.omit(here, "vanished between the scan and the snapshot")
                return None
            if stat.S_ISLNK(info.st_mode):
                target = self.add_link(here)
                if target is None:
                    return None
                if not pending and not follow_last:
                    return here
                hops += 1
                if hops > MAX_SYMLINKS:
                    self.omit(rel, "too many levels of symbolic links")
                    return None
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            if pending and not stat.S_ISDIR(info.st_mode):
                return None  # ENOTDIR: the scan read None here too
            current.append(part)
        return "/".join(current)

    def add_link(self, rel: str) -> str | None:
        """Record the symlink ``rel`` as the kernel shows it; its relative target, or ``None``
        when it cannot be kept (absolute outside a recorded tree, or escaping the root)."""
        existing = self.members.get(rel)
        if existing is not None and existing.kind == LINK:
            return existing.target
        try:
            target = os.readlink(self.full(rel))
        except OSError as exc:
            self.omit(rel, os.strerror(exc.errno or 0))
            return None
        parent = posixpath.dirname(rel)
        if target.startswith("/"):
            if not self.live:
                self.omit(rel, f"absolute symlink to {target} leaves the recorded tree")
                return None
            target = posixpath.relpath(target, "/" + parent)
        lexical = posixpath.normpath(posixpath.join(parent, target))
        if lexical == ".." or lexical.startswith("../"):
            self.omit(rel, f"symlink to {target} leads outside the root")
            return None
        self.members[rel] = Member(rel, LINK, target=target)
        return target

    def add_listing(self, real: str) -> None:
        """Entries of a listed directory: subdirectories (empty unless read further) and
        symlinks; files discovery never opened stay out."""
        try:
            names = sorted(os.listdir(self.full(real)))
        except OSError as exc:
            if exc.errno not in _NOT_THERE:
                self.omit(real, os.strerror(exc.errno or 0))
            return
        for name in names:
            rel = f"{real}/{name}"
            info = self.lstat(rel)
            if info is None:
                continue
            if stat.S_ISDIR(info.st_mode):
                self.members.setdefault(rel, Member(rel, DIR))
            elif stat.S_ISLNK(info.st_mode):
                self.add_link(rel)

    def add_file(self, rel: str, expected: bool) -> None:
        try:
            data = _read_file(self.full(rel))
        except NotRegularFile:
            self.omit(rel, "not a regular file")
            return
        except OSError as exc:
            if exc.errno == errno.ENOENT and expected:
                self.omit(rel, "vanished between the scan and the snapshot")
            elif exc.errno not in _NOT_THERE:
                self.omit(rel, os.strerror(exc.errno or 0))
            return
        self.members[rel] = Member(rel, FILE, data=data)

    def put(self, rel: str, data: bytes) -> None:
        """A member the snapshot writes itself (tool output, hostname, manifest)."""
        self.members[rel] = Member(rel, FILE, data=data)

    def omissions(self) -> tuple[Omission, ...]:
        return tuple(Omission(path, reason) for path, reason in sorted(self.omitted.items()))

    def finish(self) -> tuple[Member, ...]:
        """Members with every ancestor directory, in tree order."""
        for name in list(self.members):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                ancestor = "/".join(parts[:depth])
                self.members.setdefault(ancestor, Member(ancestor, DIR))
        return tuple(sorted(self.members.values(), key=lambda m: m.name.split("/")))


# ---------------------------------------------------------------------------- tools
def tool_files(root: str, pfs: Iterable[PhysicalFunction], catalog: Catalog,
               commands: dl.LiveTools | None) -> dict[str, bytes]:
    """``devlink.recorded_queries`` of ``pfs`` in the layout ``devlink.RecordedTools``
    reads: asked live through ``commands``, or (``None``) copied from the recorded tree
    under ``root``."""
    out: dict[str, bytes] = {}
    for pf in sorted(pfs, key=lambda p: p.address):
        address = str(pf.address)
        model = catalog.lookup_pf(pf.vendor_id, pf.device_id)
        if commands is None:
            for query in dl.recorded_queries(address, MLX5_DRIVER, True, nv_config=True):
                try:
                    out[query.recorded] = _read_file(f"{root}/{query.recorded}")
                except OSError:
                    continue  # not recorded for this PF
            continue
        for query in dl.recorded_queries(address, pf.driver,
                                         bool(model is not None and model.dpu),
                                         nv_config=bool(model is not None
                                                        and model.nv_config)):
            text = commands.answer(query)
            if text:
                out[query.recorded] = text.encode()
    return out


# ---------------------------------------------------------------------------- taking
def top_dir(hostname: str) -> str:
    """``snapshot-<hostname>``, made safe as a single path component."""
    return "snapshot-" + (_TOP_UNSAFE.sub("_", hostname).strip("._") or "host")


def created_at(environ: Mapping[str, str] | None = None) -> datetime:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible snapshots)."""
    env = os.environ if environ is None else environ
    epoch = env.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise SnapshotError(path="SOURCE_DATE_EPOCH",
                                reason=f"{epoch!r} is not a Unix time") from exc
    return datetime.now(UTC).replace(microsecond=0)


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return text.replace("$", "$$")  # oslo.config would substitute $name


def recorded_options(conf: cfg.ConfigOpts) -> str:
    """``[smartnic]`` and ``[smartnic_pool:NAME]`` options of ``conf`` that differ from their
    defaults, as a config file (host paths left out). ``conf`` has them registered, as
    ``load_report_config`` or the CLI leave it."""
    groups = [(smartnic_conf.GROUP, smartnic_conf.SMARTNIC_OPTS)]
    groups += [(smartnic_conf.POOL_GROUP_PREFIX + name.strip(), smartnic_conf.POOL_OPTS)
               for name in conf[smartnic_conf.GROUP].pools if name.strip()]
    lines = ["# [smartnic] options the snapshot was taken with (those that differ from the",
             "# defaults). Commands run with this snapshot as --sysfs-root read them first."]
    for group, opts in groups:
        lines.append(f"[{group}]")
        for opt in opts:
            if group == smartnic_conf.GROUP and opt.name in _HOST_PATH_OPTIONS:
                continue
            value = conf[group][opt.name]
            if value is not None and value != opt.default:
                lines.append(f"{opt.name} = {_option_text(value)}")
    return "\n".join(lines) + "\n"


def recorded_config(root: Path | str) -> Path | None:
    """The options file of an unpacked snapshot at ``root``, or None for any other tree."""
    path = Path(root) / CONFIG_FILE
    if (Path(root) / MANIFEST).is_file() and path.is_file():
        return path
    return None


def take(root: Path | str, options: ScanOptions, *, created: datetime,
         commands: dl.LiveTools | None = None,
         extra: Callable[[Host], Mapping[str, bytes]] | None = None,
         config: str | None = None) -> Snapshot:
    """Trace a scan of ``root`` and gather the snapshot (nothing is written).

    ``commands`` is used for the running host (root ``/``) only; by default the installed
    ``devlink`` and ``mstconfig`` (when ``options.use_devlink``). Other roots copy their
    recorded tool output instead. ``extra`` adds more recorded answers for the scanned host
    (relative path -> content), e.g. the host tool's Open vSwitch answers. ``config``
    (``recorded_options``) is stored as ``etc/smartnic.conf``.
    """
    text = os.fspath(root)
    host, accesses, pfs = trace_scan(text, options)
    packer = Packer(text)
    for access in accesses:
        packer.add(access)
    if options.use_devlink:
        live = None
        if packer.live:
            live = commands if commands is not None else dl.installed_tools()
        for rel, data in tool_files(packer.root, pfs, options.catalog, live).items():
            packer.put(rel, data)
    for rel, data in (extra(host) if extra is not None else {}).items():
        packer.put(rel, data)
    packer.put(HOSTNAME_FILE, (host.hostname + "\n").encode())
    if config is not None:
        packer.put(CONFIG_FILE, config.encode())
    omitted = packer.omissions()
    manifest = build_manifest(host, created, omitted, config=CONFIG_FILE if config else None)
    packer.put(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return Snapshot(host=host, top=top_dir(host.hostname), members=packer.finish(),
                    omitted=omitted, manifest=manifest)


def build_manifest(host: Host, created: datetime, omitted: Iterable[Omission],
                   config: str | None = None) -> dict[str, Any]:
    manifest = {
        "format": FORMAT_VERSION,
        "tool": "cyborg-smartnic",
        "version": __version__,
        "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": host.hostname,
        "contains": "the sysfs files and links discovery reads (including MAC addresses, "
                    "board serial numbers and the kernel command line) and devlink/mstconfig "
                    "output",
        "omitted": [{"path": o.path, "reason": o.reason} for o in omitted],
        "discover": host_to_dict(host),
    }
    if config is not None:
        manifest["config"] = config  # the [smartnic] options, read by every replay
    return manifest


# ---------------------------------------------------------------------------- archive
def archive_bytes(snapshot: Snapshot) -> bytes:
    """The deterministic ``.tar.gz`` of a snapshot."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_info(snapshot.top, DIR))
        for member in snapshot.members:
            info = _info(f"{snapshot.top}/{member.name}", member.kind)
            if member.kind == FILE:
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
            else:
                info.linkname = member.target
                archive.addfile(info)
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as stream:
        stream.write(raw.getvalue())
    return packed.getvalue()


def _info(name: str, kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if kind == DIR:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif kind == LINK:
        info.type, info.mode = tarfile.SYMTYPE, 0o777
    else:
        info.type, info.mode = tarfile.REGTYPE, 0o644
    return info


def write(snapshot: Snapshot, path: Path | str) -> int:
    """Write the archive atomically (a temporary file renamed over ``path``, so a failure
    leaves nothing half-written); mode 0600, as it holds MACs and serials. Returns its size."""
    target = Path(path)
    data = archive_bytes(snapshot)
    temp: str | None = None
    try:
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                         delete=False) as handle:
            temp = handle.name
            handle.write(data)
        os.replace(temp, target)
    except OSError as exc:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise SnapshotError(path=str(target), reason=reason) from exc
    return len(data)


def unpack(archive: Path | str, dest: Path | str) -> Path:
    """Unpack a snapshot under ``dest`` (``safetar``: only files, directories and links that
    stay inside, within ``UNPACK_LIMITS``, checked before anything is written); returns the
    root to pass as ``--sysfs-root``. Refused or failed, it leaves nothing behind."""
    label = str(archive)
    try:
        with safetar.open_gz(archive, label=label, limits=UNPACK_LIMITS) as tar:
            members = safetar.plan(tar, label, UNPACK_LIMITS)
            names = {posixpath.normpath(m.name): m for m in members}
            tops = {name.split("/", 1)[0] for name in names}
            manifest = names.get(f"{next(iter(tops), '')}/{MANIFEST}")
            if len(tops) != 1 or manifest is None or not manifest.isfile():
                raise SnapshotError(path=label,
                                    reason="not a cyborg-smartnic snapshot (one top "
                                           f"directory holding {MANIFEST} expected)")
            safetar.extract(tar, dest, label=label, limits=UNPACK_LIMITS)
    except safetar.UnsafeArchive as exc:
        raise SnapshotError(path=label, reason=str(exc).split(": ", 1)[-1]) from exc
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise SnapshotError(path=label, reason=str(exc) or type(exc).__name__) from exc
    return Path(dest) / next(iter(tops))


def read_manifest(root: Path | str) -> dict[str, Any]:
    """The manifest of an unpacked snapshot."""
    path = Path(root) / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(path=str(path), reason=str(exc)) from exc
    return data
