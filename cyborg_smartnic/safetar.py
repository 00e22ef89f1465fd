"""Unpack a tar archive of a recorded host tree without trusting it, on any Python 3.11.

``TarFile.extractall(filter="data")`` only exists from Python 3.11.4 (Debian 12 ships 3.11.2),
so members are checked and written here, which also lets the callers bound the size:

- only regular files, directories and symbolic links; names relative, without ``..``, no
  name twice; at most ``limits.members`` members, ``limits.file_bytes`` per file and
  ``limits.total_bytes`` in all (counted from the headers before anything is written,
  reading headers one at a time, so a flood of members stops at the limit);
- ``open_gz`` caps what the gzip stream may decompress to (``limits.stream_bytes``) and the
  size of any one read (tarfile reads a PAX header whole), so a small archive cannot make
  this process decompress or hold gigabytes before a header is even checked;
- files and directories are written first, while the destination holds no symlink at all, with
  fixed modes (0644 / 0755) and no owner, device or set-id bits;
- symlinks are made last, never through another symlink, each target relative and inside the
  destination by name; once all exist, every one is resolved (``os.path.realpath``) and must
  still land inside the destination, which catches chains the names alone cannot show.

On any refusal nothing created stays behind (the new top-level entries are removed) and
``UnsafeArchive`` names the archive, the member and the reason.
"""

from __future__ import annotations

import gzip
import io
import os
import posixpath
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cyborg_smartnic.errors import SmartNicError

FILE_MODE = 0o644
DIR_MODE = 0o755


class UnsafeArchive(SmartNicError):
    msg_fmt = "%(archive)s: %(member)s: %(reason)s"


@dataclass(frozen=True)
class Limits:
    """Upper bounds that keep a hostile or broken archive from filling the disk."""

    members: int = 200_000
    file_bytes: int = 16 << 20
    total_bytes: int = 512 << 20
    stream_bytes: int = 1 << 30  # decompressed tar data, headers included (open_gz)


DEFAULT_LIMITS = Limits()

def _check_name(name: str) -> str | None:
    """Why ``name`` may not be unpacked, or None."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return "absolute or malformed name"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return "name leaves the destination"
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class _Capped:
    """A gzip stream that refuses to decompress past ``limits.stream_bytes`` or to answer one
    read of more than a file's limit (tarfile reads data in chunks, a PAX header whole)."""

    def __init__(self, raw: gzip.GzipFile, label: str, limits: Limits) -> None:
        self._raw, self._label, self._limits = raw, label, limits
        self._max_read = limits.file_bytes + tarfile.BLOCKSIZE

    def _refuse(self, reason: str) -> UnsafeArchive:
        return UnsafeArchive(archive=self._label, member="(archive)", reason=reason)

    def _too_long(self) -> UnsafeArchive:
        return self._refuse(f"unpacks to more than {self._limits.stream_bytes} bytes of tar "
                            f"data")

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > self._max_read:
            raise self._refuse(f"a header or read of {size} bytes, more than the "
                               f"{self._max_read} allowed")
        left = self._limits.stream_bytes - self._raw.tell()
        data = self._raw.read(min(size, left + 1))
        if len(data) > left:
            raise self._too_long()
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int:
        target = offset if whence == io.SEEK_SET else self._raw.tell() + offset
        if whence == io.SEEK_END or target > self._limits.stream_bytes:
            raise self._too_long()
        return self._raw.seek(target)

    def tell(self) -> int:
        return self._raw.tell()

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("read-only")

    def close(self) -> None:
        """The gzip stream is closed by ``open_gz``."""


@contextmanager
def open_gz(path: Path | str, *, label: str | None = None,
            limits: Limits = DEFAULT_LIMITS) -> Iterator[tarfile.TarFile]:
    """A ``.tar.gz`` opened for ``extract`` with what it may decompress capped."""
    name = label or str(path)
    with gzip.open(path, "rb") as raw, \
            tarfile.open(fileobj=_Capped(raw, name, limits), mode="r:") as archive:
        yield archive


def plan(members: Iterable[tarfile.TarInfo], label: str, limits: Limits = DEFAULT_LIMITS
         ) -> list[tarfile.TarInfo]:
    """Every member checked before anything is written; pass the ``TarFile`` itself so its
    headers are read one at a time and a refusal stops the reading."""
    checked: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    total = 0
    for member in members:
        name = posixpath.normpath(member.name)
        reason = _check_name(member.name)
        if reason is None and not (member.isfile() or member.isdir() or member.issym()):
            reason = "only files, directories and symbolic links are allowed"
        if reason is None and name in seen:
            reason = "appears twice"
        if reason is None and member.issym():
            target = member.linkname
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if not target or target.startswith("/") or joined == ".." or \
                    joined.startswith("../"):
                reason = f"symbolic link to {target!r} leaves the destination"
        if reason is None and member.isfile():
            total += member.size
            if member.size > limits.file_bytes:
                reason = f"{member.size} bytes, more than the {limits.file_bytes} allowed"
            elif total > limits.total_bytes:
                reason = f"the archive unpacks to more than {limits.total_bytes} bytes"
        if reason is None and len(checked) >= limits.members:
            reason = f"more than {limits.members} members"
        if reason is not None:
            raise UnsafeArchive(archive=label, member=member.name, reason=reason)
        seen.add(name)
        checked.append(member)
    return checked


def extract(archive: tarfile.TarFile, dest: Path | str, *, label: str = "archive",
            limits: Limits = DEFAULT_LIMITS) -> None:
    """Unpack ``archive`` under ``dest`` (created if missing), or refuse and leave no trace."""
    members = plan(archive, label, limits)
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(root)
    tops = {posixpath.normpath(m.name).split("/", 1)[0] for m in members}
    existing = {top for top in tops if os.path.lexists(os.path.join(real_root, top))}
    if existing:
        raise UnsafeArchive(archive=label, member=sorted(existing)[0],
                            reason=f"already exists in {root}; unpack into an empty directory")
    try:
        _write(archive, members, real_root, label)
    except BaseException:
        for top in tops:
            path = os.path.join(real_root, top)
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
        raise


def _write(archive: tarfile.TarFile, members: list[tarfile.TarInfo], root: str,
           label: str) -> None:
    links = []
    for member in members:
        path = os.path.join(root, posixpath.normpath(member.name))
        if member.isdir():
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        elif member.isfile():
            os.makedirs(os.path.dirname(path), mode=DIR_MODE, exist_ok=True)
            source = archive.extractfile(member)
            if source is None:  # pragma: no cover - isfile() members always have data
                raise UnsafeArchive(archive=label, member=member.name, reason="no data")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with source, os.fdopen(os.open(path, flags, FILE_MODE), "wb") as out:
                shutil.copyfileobj(source, out)
        else:
            links.append(member)
    for member in links:
        path = os.path.join(root, posixpath.normpath(member.name))
        parent = os.path.dirname(path)
        os.makedirs(parent, mode=DIR_MODE, exist_ok=True)
        if os.path.realpath(parent) != parent:
            raise UnsafeArchive(archive=label, member=member.name,
                                reason="would be created through a symbolic link")
        os.symlink(member.linkname, path)
    for member in links:
        path = os.path.join(root, posixpath.normpath(member.name))
        if not _inside(os.path.realpath(path), root):
            raise UnsafeArchive(archive=label, member=member.name,
                                reason=f"symbolic link to {member.linkname!r} resolves "
                                       "outside the destination")
