"""safetar: the archive checks that replace tarfile's ``data`` filter (absent before 3.11.4)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cyborg_smartnic import safetar

Member = tuple[str, str, str | bytes]  # (name, "file"|"dir"|"link"|"fifo"|"hard", data/target)


def _tar(path: Path, members: list[Member], mode: int = 0o644) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.mode = mode
            data = None
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size, data = len(payload), io.BytesIO(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            else:
                info.type = tarfile.FIFOTYPE
            archive.addfile(info, data)
    return path


def _extract(archive: Path, dest: Path, limits: safetar.Limits = safetar.DEFAULT_LIMITS) -> None:
    with tarfile.open(archive) as opened:
        safetar.extract(opened, dest, label=archive.name, limits=limits)


def test_a_tree_with_relative_links_unpacks(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar.gz", [
        ("top", "dir", ""), ("top/sys/devices/pci/0000:3b:00.0/vendor", "file", b"0x15b3\n"),
        ("top/sys/bus/pci/devices/0000:3b:00.0", "link", "../../../devices/pci/0000:3b:00.0"),
        ("top/sys/devices/pci/0000:3b:00.0/subsystem", "link", "../../../bus/pci"),
    ], mode=0o4777)
    _extract(archive, tmp_path / "out")
    vendor = tmp_path / "out/top/sys/bus/pci/devices/0000:3b:00.0/vendor"
    assert vendor.read_bytes() == b"0x15b3\n"
    mode = stat.S_IMODE((tmp_path / "out/top/sys/devices/pci/0000:3b:00.0/vendor").stat().st_mode)
    assert mode == 0o644  # no set-uid, no world write, whatever the archive says


@pytest.mark.parametrize(("members", "reason"), [
    ([("/etc/evil", "file", b"")], "absolute"),
    ([("top/../../evil", "file", b"")], "leaves the destination"),
    ([("top/l", "link", "/etc")], "leaves the destination"),
    ([("top/l", "link", "../../etc")], "leaves the destination"),
    ([("top/f", "fifo", "")], "only files, directories"),
    ([("top/a", "file", b"x"), ("top/h", "hard", "top/a")], "only files, directories"),
    ([("top/a", "file", b"x"), ("top/a", "file", b"y")], "appears twice"),
    # Each name stays inside, but resolved together they leave: t -> ".", e -> t/../..
    ([("top/t", "link", "."), ("top/e", "link", "t/../..")], "resolves outside"),
    ([("top/x/y/s", "link", "../.."), ("top/e", "link", "x/y/s/../..")], "resolves outside"),
    ([("top/d", "dir", ""), ("top/l", "link", "d"), ("top/l/f", "link", "..")],
     "through a symbolic link"),
])
def test_unsafe_members_are_refused_and_nothing_stays(
        tmp_path: Path, members: list[Member], reason: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", members)
    dest = tmp_path / "out"
    with pytest.raises(safetar.UnsafeArchive, match=reason) as caught:
        _extract(archive, dest)
    assert str(caught.value).startswith("bad.tar.gz: ")
    assert not dest.exists() or os.listdir(dest) == []
    assert not (tmp_path / "evil").exists()


def test_limits_are_checked_before_writing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "big.tar.gz", [("top/a", "file", b"x" * 100),
                                              ("top/b", "file", b"y" * 100)])
    with pytest.raises(safetar.UnsafeArchive, match="more than the 50 allowed"):
        _extract(archive, tmp_path / "o1", safetar.Limits(file_bytes=50))
    with pytest.raises(safetar.UnsafeArchive, match="more than 150 bytes"):
        _extract(archive, tmp_path / "o2", safetar.Limits(total_bytes=150))
    with pytest.raises(safetar.UnsafeArchive, match="more than 1 members"):
        _extract(archive, tmp_path / "o3", safetar.Limits(members=1))
    assert not (tmp_path / "o1/top").exists()
    _extract(archive, tmp_path / "o4", safetar.Limits(total_bytes=200))
    assert (tmp_path / "o4/top/b").read_bytes() == b"y" * 100


def test_an_existing_tree_is_not_overwritten(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar.gz", [("top/a", "file", b"new")])
    (tmp_path / "out/top").mkdir(parents=True)
    (tmp_path / "out/top/a").write_text("mine")
    with pytest.raises(safetar.UnsafeArchive, match="already exists"):
        _extract(archive, tmp_path / "out")
    assert (tmp_path / "out/top/a").read_text() == "mine"
