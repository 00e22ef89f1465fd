"""Resolve and open paths under ``<root>/sys`` with directory file descriptors, never by name.

``realpath()`` followed by ``open(path)`` looks the path up twice: a directory swapped for a
symlink between the two lands the write wherever the symlink points. Here every lookup is
one component at a time, relative to a directory file descriptor we already hold, with
``O_NOFOLLOW``:

- ``SysDir.resolve`` walks from the descriptor of ``<root>/sys``. Symlinks (sysfs is full
  of them: ``bus/pci/devices/<addr> -> ../../../devices/...``) are read with
  ``readlinkat`` and their text is walked the same way; ``..`` pops our own stack of
  descriptors instead of asking the kernel, so nothing can step above ``<root>/sys``, and an
  absolute link is refused. The result is the physical path: no symlink in it.
- ``open_physical`` opens such a path from ``/`` with ``O_NOFOLLOW`` at every component and
  refuses anything but a regular file at the end. A symlink swapped in after ``resolve``
  makes the open fail (``ELOOP``/``ENOTDIR``); it can never send the write elsewhere.

Pure ``os`` calls (``openat`` via ``dir_fd``); no ``openat2``, so it works on every kernel
and inside seccomp profiles that hide the newer syscall.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

MAX_LINKS = 40  # what Linux allows in one lookup (MAXSYMLINKS)
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Escape(ValueError):
    """The path leaves ``<root>/sys`` (a ``..`` too many, or an absolute symlink)."""


def component(part: str) -> str:
    """One caller-supplied path component: no separators, no ``.``/``..``, no NUL."""
    if not isinstance(part, str) or part in ("", ".", "..") or "/" in part or "\0" in part:
        raise ValueError(f"unsafe path component {part!r}")
    return part


class SysDir:
    """An open ``<root>/sys``; close it (or use ``with``) when done."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path  # physical path of the directory (from the descriptor)

    @classmethod
    def open(cls, root: str) -> SysDir:
        """Open ``<root>/sys``: ``root`` itself is the operator's choice and may contain
        symlinks; ``sys`` inside it must be a real directory."""
        top = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = os.open("sys", _DIR_FLAGS, dir_fd=top)
        finally:
            os.close(top)
        return cls(fd, os.readlink(f"/proc/self/fd/{fd}"))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SysDir:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def join(self, rel: tuple[str, ...]) -> str:
        return os.path.join(self.path, *rel)

    def resolve(self, *parts: str, follow_last: bool = True) -> tuple[str, ...]:
        """The physical components of ``parts`` below ``<root>/sys``.

        Every component must exist (``FileNotFoundError`` names the first that does not);
        with ``follow_last=False`` a final symlink is returned as itself. ``Escape`` when
        the walk would leave ``<root>/sys``.
        """
        walk = _Walk(self, parts)
        try:
            return walk.run(follow_last)
        finally:
            walk.close()

    def lstat(self, *parts: str) -> os.stat_result:
        """``lstat`` of ``parts`` (its directories resolved beneath ``<root>/sys``)."""
        rel = self.resolve(*parts, follow_last=False)
        return self._at(rel, lambda name, fd: os.stat(name, dir_fd=fd, follow_symlinks=False))

    def readlink(self, *parts: str) -> str:
        """The text of the symlink ``parts`` (``OSError(EINVAL)`` if it is not one)."""
        rel = self.resolve(*parts, follow_last=False)
        return self._at(rel, lambda name, fd: os.readlink(name, dir_fd=fd))

    def is_link(self, *parts: str) -> bool:
        try:
            return stat.S_ISLNK(self.lstat(*parts).st_mode)
        except FileNotFoundError:
            return False

    def read(self, *parts: str, limit: int = 65536) -> str:
        """A small regular file below ``<root>/sys`` (attributes, meminfo)."""
        fd = open_physical(self.join(self.resolve(*parts)), os.O_RDONLY)
        try:
            return os.read(fd, limit).decode("utf-8", "replace")
        finally:
            os.close(fd)

    def _at(self, rel: tuple[str, ...], call: Callable[[str, int], T]) -> T:
        parent = open_physical_dir(self.join(rel[:-1])) if len(rel) > 1 else os.dup(self.fd)
        try:
            return call(rel[-1], parent)
        finally:
            os.close(parent)



class _Walk:
    """One ``SysDir.resolve``: the components still to walk, and the directory descriptors
    and physical names walked so far (the first descriptor is the ``SysDir``'s own)."""

    def __init__(self, top: SysDir, parts: tuple[str, ...]) -> None:
        self.top = top
        self.parts = parts
        self.pending = deque(component(p) for p in parts)
        self.fds = [top.fd]
        self.names: list[str] = []
        self.links = 0

    def run(self, follow_last: bool) -> tuple[str, ...]:
        while self.pending:
            name = self.pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                self.up()
                continue
            info = _lstat(name, self.fds[-1], self.top.join((*self.names, name)))
            last = not self.pending
            if stat.S_ISLNK(info.st_mode) and (follow_last or not last):
                self.follow(name)
                continue
            if last:
                self.names.append(name)
                break
            if self.descend(name):
                self.names.append(name)
        return tuple(self.names)

    def up(self) -> None:
        """``..`` pops our own stack: never above ``<root>/sys``."""
        if not self.names:
            raise Escape(f"{'/'.join(self.parts)} resolves outside {self.top.path}")
        self.names.pop()
        os.close(self.fds.pop())

    def follow(self, name: str) -> None:
        """Walk a symlink's text in place of it; absolute links and loops are refused."""
        self.links += 1
        if self.links > MAX_LINKS:
            raise OSError(errno.ELOOP, f"{'/'.join(self.parts)}: too many symlinks")
        target = os.readlink(name, dir_fd=self.fds[-1])
        if target.startswith("/"):
            raise Escape(f"{'/'.join(self.parts)} resolves outside {self.top.path} "
                         f"({self.top.join((*self.names, name))} links to {target})")
        self.pending.extendleft(reversed(target.split("/")))

    def descend(self, name: str) -> bool:
        """Open the directory ``name``; False when it turned into something else under us
        (it is looked at again)."""
        try:
            self.fds.append(os.open(name, _DIR_FLAGS, dir_fd=self.fds[-1]))
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            self.pending.appendleft(name)  # swapped under us: look at it again
            self.links += 1
            if self.links > MAX_LINKS:
                raise OSError(errno.ENOTDIR, f"{self.top.join((*self.names, name))}: "
                                             f"not a directory") from exc
            return False
        return True

    def close(self) -> None:
        for fd in self.fds[1:]:
            os.close(fd)


def open_physical_dir(path: str) -> int:
    """An ``O_PATH`` descriptor of the directory ``path``, no symlink followed anywhere."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for name in _parts(path):
            fd_next = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = fd_next
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_physical(path: str, flags: int) -> int:
    """Open the regular file ``path`` with ``flags``, no symlink followed anywhere.

    ``O_NONBLOCK`` keeps a FIFO put in place of an attribute from blocking us; anything
    that is not a regular file is refused (``EISDIR`` for a directory, else ``EINVAL``).
    """
    parts = _parts(path)
    if not parts:
        raise OSError(errno.EISDIR, f"{path}: is a directory")
    parent = open_physical_dir("/" + "/".join(parts[:-1]))
    try:
        fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
    finally:
        os.close(parent)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
        raise OSError(code, f"{path}: not a regular file")
    return fd


def _parts(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not an absolute path")
    parts = [p for p in path.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise ValueError(f"{path!r} is not a physical path")
    return parts


def _lstat(name: str, dir_fd: int, shown: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError as exc:
        raise FileNotFoundError(errno.ENOENT, f"{shown}: no such file or directory") from exc
