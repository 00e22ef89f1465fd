"""Unpacking a snapshot from someone else: small archives that would become huge trees, header
floods and member types a recorded tree never holds are refused, with nothing left behind."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic import safetar
from cyborg_smartnic.discovery import snapshot as snap
from cyborg_smartnic.hostgen import scratch_dir

CHUNK = 1 << 20


@pytest.fixture
def work() -> Iterator[Path]:
    with scratch_dir("unpack-limits-") as path:
        yield path


def _header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE,
            pax: dict[str, str] | None = None) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    if pax:
        info.pax_headers = pax
    return info.tobuf(format=tarfile.PAX_FORMAT if pax else tarfile.GNU_FORMAT)


def _zeros_archive(path: Path, files: dict[str, int]) -> Path:
    """A real .tar.gz of ``top/snapshot.json`` plus ``files`` (name -> MiB of zeros), written
    without compressing every byte: after a full flush deflate starts afresh, so one
    compressed MiB of zeros can be repeated. Gunzip gives back every byte."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc, size = 0, 0
    out = io.BytesIO()
    out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")

    def put(data: bytes) -> None:
        nonlocal crc, size
        crc, size = zlib.crc32(data, crc), size + len(data)
        out.write(deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH))

    put(_header("top/snapshot.json"))
    zeros = bytes(CHUNK)
    packed = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    for name, mib in files.items():
        put(_header(name, mib * CHUNK))
        for _ in range(mib):
            out.write(packed)
            crc, size = zlib.crc32(zeros, crc), size + CHUNK
    put(bytes(2 * tarfile.BLOCKSIZE))
    out.write(deflate.flush())
    out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    path.write_bytes(out.getvalue())
    return path


def _refused(archive: Path, dest: Path, match: str) -> str:
    with pytest.raises(snap.SnapshotError, match=match) as caught:
        snap.unpack(archive, dest)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{archive}: ")
    assert not dest.exists() or list(dest.iterdir()) == []
    return message


def test_a_1_mib_archive_never_becomes_1_gib(work: Path) -> None:
    archive = _zeros_archive(work / "bomb.tar.gz", {"top/big": 1024})
    raw = archive.read_bytes()
    assert len(raw) < 2 * CHUNK
    # A real archive (inflating all of it takes seconds, so check its start and its trailer):
    start = zlib.decompressobj(31).decompress(raw, 4 * CHUNK)
    assert start[tarfile.BLOCKSIZE:tarfile.BLOCKSIZE + 7] == b"top/big"
    assert start[3 * tarfile.BLOCKSIZE:] == bytes(4 * CHUNK - 3 * tarfile.BLOCKSIZE)
    assert struct.unpack("<I", raw[-4:])[0] == (1024 * CHUNK + 4 * tarfile.BLOCKSIZE) % 2**32
    _refused(archive, work / "out", f"more than the {snap.MAX_FILE_BYTES} allowed")


def test_total_size_is_limited(work: Path) -> None:
    """Files each within the per-file limit, too many bytes together."""
    files = {f"top/f{index}": 1 for index in range(65)}
    archive = _zeros_archive(work / "many.tar.gz", files)
    _refused(archive, work / "out", f"more than {snap.UNPACK_LIMITS.total_bytes} bytes")


def test_header_flood_stops_at_the_member_limit(work: Path) -> None:
    archive = work / "flood.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(50):
            tar.addfile(tarfile.TarInfo(f"top/f{index}"), io.BytesIO())
    limits = safetar.Limits(members=10)
    with safetar.open_gz(archive, limits=limits) as opened:
        with pytest.raises(safetar.UnsafeArchive, match="more than 10 members"):
            safetar.plan(opened, archive.name, limits)
        assert len(opened.members) <= 11  # headers were read one at a time, not all 50


def test_huge_pax_header_is_refused_before_it_is_read(work: Path) -> None:
    archive = work / "pax.tar.gz"
    with gzip.open(archive, "wb") as out:
        out.write(_header("top/snapshot.json", pax={"comment": "x" * (2 * CHUNK)}))
        out.write(bytes(2 * tarfile.BLOCKSIZE))
    _refused(archive, work / "out", "a header or read of")


def test_decompressed_stream_is_capped(work: Path) -> None:
    archive = _zeros_archive(work / "ok.tar.gz", {"top/data": 1})
    limits = safetar.Limits(stream_bytes=4096)
    with safetar.open_gz(archive, limits=limits) as opened, \
            pytest.raises(safetar.UnsafeArchive, match="more than 4096 bytes of tar data"):
        safetar.extract(opened, work / "out", label=archive.name, limits=limits)
    assert not (work / "out/top").exists()


@pytest.mark.parametrize(("kind", "what"), [
    (tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
    (tarfile.FIFOTYPE, "FIFO"), (tarfile.LNKTYPE, "hard link")])
def test_member_types_a_tree_never_holds_are_refused(work: Path, kind: bytes,
                                                     what: str) -> None:
    archive = work / f"{what.replace(' ', '-')}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("top/snapshot.json"), io.BytesIO())
        info = tarfile.TarInfo("top/sys/bus/pci/devices/0000:3b:00.0/vendor")
        info.type = kind
        if kind == tarfile.LNKTYPE:
            info.linkname = "top/snapshot.json"
        tar.addfile(info)
    message = _refused(archive, work / "out", "only files, directories and symbolic links")
    assert "vendor" in message


def test_an_honest_snapshot_still_unpacks(work: Path) -> None:
    archive = _zeros_archive(work / "fine.tar.gz", {"top/sys/data": 1})
    root = snap.unpack(archive, work / "out")
    assert root == work / "out/top"
    assert (root / "sys/data").stat().st_size == CHUNK
