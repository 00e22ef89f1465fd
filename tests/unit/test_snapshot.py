"""``snapshot``: exactly what discovery reads, packed so that discovery of the unpacked tree
gives the same answer (every scenario and broken host), deterministic, safe to unpack."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic import safetar
from cyborg_smartnic.catalog import Catalog
from cyborg_smartnic.discovery import snapshot as snap
from cyborg_smartnic.discovery.devlink import LiveTools, RecordedTools
from cyborg_smartnic.discovery.export import host_to_dict
from cyborg_smartnic.discovery.physnets import parse_physnet_mappings
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.selection import parse_selectors
from cyborg_smartnic.discovery.sysfs import RecordingReader, SysfsReader
from cyborg_smartnic.host.devlink_params import read_param
from cyborg_smartnic.hostgen import (
    PATHOLOGIES,
    SCENARIOS,
    SysfsTree,
    build_pathology,
    build_scenario,
    scratch_dir,
)

CREATED = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)
SYNTHETIC = ("snapshot.json", "etc/hostname")


@pytest.fixture
def work() -> Iterator[Path]:
    with scratch_dir("snapshot-") as path:
        yield path


def _options(tree: SysfsTree, **extra: Any) -> ScanOptions:
    return ScanOptions(physnets=parse_physnet_mappings(tree.physnet_mappings()), **extra)


def _round_trip(work: Path, tree: SysfsTree, options: ScanOptions) -> tuple[snap.Snapshot, Path]:
    """Snapshot the tree as host ``node-1``, write it, unpack it with safetar."""
    taken = snap.take(tree.root, replace(options, hostname="node-1"), created=CREATED)
    archive = work / "host.tar.gz"
    snap.write(taken, archive)
    dest = work / "unpacked"
    with tarfile.open(archive, "r:gz") as tar:
        safetar.extract(tar, dest)
    return taken, dest / taken.top


def _is_param(argv: list[str]) -> bool:
    return len(argv) > 3 and argv[3] == "param"


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_discovers_the_same_from_its_snapshot(work: Path, name: str) -> None:
    tree = build_scenario(work / "tree", name)
    options = _options(tree)
    taken, root = _round_trip(work, tree, options)
    original = host_to_dict(scan(tree.root, replace(options, hostname="node-1")))
    unpacked = host_to_dict(scan(root, options))  # no hostname option: etc/hostname says
    assert unpacked == original
    assert unpacked["hostname"] == "node-1"
    assert snap.read_manifest(root)["discover"] == original
    assert taken.omitted == ()


@pytest.mark.parametrize("name", sorted(PATHOLOGIES))
def test_every_broken_host_discovers_the_same_from_its_snapshot(work: Path, name: str) -> None:
    tree = build_pathology(work / "tree", name)
    options = _options(tree)
    _, root = _round_trip(work, tree, options)
    original = host_to_dict(scan(tree.root, replace(options, hostname="node-1")))
    assert original["skipped"] or name in ("pf_without_netdev", "unbound_pf",
                                           "bad_numa_and_mac")
    assert host_to_dict(scan(root, options)) == original


def test_manifest(work: Path) -> None:
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    taken, root = _round_trip(work, tree, _options(tree))
    manifest = snap.read_manifest(root)
    assert manifest["format"] == 1
    assert manifest["tool"] == "cyborg-smartnic"
    assert manifest["version"] == "0.1.0"
    assert manifest["created"] == "2024-05-17T09:30:00Z"
    assert manifest["hostname"] == "node-1"
    assert manifest["omitted"] == []
    assert "MAC addresses" in manifest["contains"]
    assert [pf["address"] for pf in manifest["discover"]["physical_functions"]] == [
        "0000:3b:00.0", "0000:3b:00.1"]
    assert taken.top == "snapshot-node-1"
    assert (root / "etc/hostname").read_text() == "node-1\n"


def _read_paths(tree: SysfsTree, options: ScanOptions) -> set[str]:
    """Real paths (relative to the root) of every file discovery's own RecordingReader read."""
    reader = RecordingReader(tree.root)
    scan(tree.root, options, reader=reader)
    root = os.path.realpath(tree.root)
    out = set()
    for op, path in reader.ops:
        real = os.path.realpath(path)
        if op == "read" and os.path.isfile(real):
            out.add(os.path.relpath(real, root))
    return out


@pytest.mark.parametrize("use_devlink", [True, False])
def test_files_are_exactly_what_discovery_reads(work: Path, use_devlink: bool) -> None:
    tree = build_scenario(work / "tree", "example")
    param = json.dumps({"param": {"pci/0000:3b:00.0": [{"name": "flow_steering_mode", "values": [
        {"cmode": "runtime", "value": "dmfs"}]}]}})  # recorded by an earlier snapshot
    (tree.root / "devlink/dev-param-0000:3b:00.0.json").write_text(param)
    options = _options(tree, use_devlink=use_devlink)
    taken = snap.take(tree.root, options, created=CREATED)
    files = {m.name for m in taken.members if m.kind == snap.FILE}
    # host plan reads these (devlink_params, host.firmware), discovery does not
    tool_output = {name for name in files if name.startswith(("devlink/dev-param-",
                                                                "mstconfig/"))}
    assert files - set(SYNTHETIC) - tool_output == _read_paths(tree, options)
    names = {Path(name).name for name in files}
    assert not names & {"config", "uevent", "modalias", "resource0", "revision", "cpulist"}
    vpds = {name for name in files if name.endswith("/vpd")}
    if use_devlink:  # the serial comes from devlink dev info: the VPD is never opened
        assert vpds == set()
        assert tool_output == {"devlink/dev-param-0000:3b:00.0.json",  # host plan reads it
                               "mstconfig/query-0000:3b:00.0.txt",
                               "mstconfig/query-0000:3b:00.1.txt",
                               "mstconfig/reset-0000:3b:00.0.txt",
                               "mstconfig/reset-0000:3b:00.1.txt"}
        assert {m.name: m.data for m in taken.members}[
            "devlink/dev-param-0000:3b:00.0.json"] == param.encode()
    else:
        assert len(vpds) == 2 and not any(n.startswith("devlink/") for n in files)


def test_links_and_directories_are_kept_as_the_kernel_shows_them(work: Path) -> None:
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    taken = snap.take(tree.root, _options(tree), created=CREATED)
    links = [m for m in taken.members if m.kind == snap.LINK]
    assert links
    for member in links:
        assert member.target == os.readlink(tree.root / member.name)
        assert not member.target.startswith("/")
    for member in taken.members:
        if member.kind == snap.DIR and member.name != "etc":  # etc/hostname is written
            assert (tree.root / member.name).is_dir()
            assert not (tree.root / member.name).is_symlink()
    by_name = {m.name: m for m in taken.members}
    assert by_name["sys/bus/pci/devices/0000:3b:00.0"].kind == snap.LINK
    pf_dir = os.path.relpath(tree.device_path("0000:3b:00.0"), tree.root)
    assert by_name["sys/bus/pci/devices/0000:3b:00.0"].target == f"../../../{pf_dir[4:]}"
    assert by_name[f"{pf_dir}/virtfn0"].target == "../0000:3b:00.2"
    assert by_name[f"{pf_dir}/driver"].kind == snap.LINK
    assert by_name[f"{pf_dir}/net"].kind == snap.DIR


def test_archive_is_deterministic_and_sorted(work: Path) -> None:
    tree = build_scenario(work / "tree", "example")
    options = _options(tree, hostname="node-1")
    first = snap.archive_bytes(snap.take(tree.root, options, created=CREATED))
    second = snap.archive_bytes(snap.take(tree.root, options, created=CREATED))
    assert first == second
    later = snap.archive_bytes(snap.take(tree.root, options, created=datetime(2025, 1, 1,
                                                                              tzinfo=UTC)))
    assert later != first
    a, b = _contents(first), _contents(later)
    assert list(a) == list(b)
    assert [name for name in a if a[name] != b[name]] == ["snapshot-node-1/snapshot.json"]
    infos = list(_members(first).values())
    names = [info.name for info in infos]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, 0, "root",
                                                                             "root")}
    assert first[4:8] == b"\0\0\0\0"  # gzip header without a timestamp


def _contents(data: bytes) -> dict[str, bytes | str | None]:
    """Member name -> file content, link target, or None for a directory."""
    out: dict[str, bytes | str | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            handle = tar.extractfile(info) if info.isfile() else None
            out[info.name] = handle.read() if handle else (info.linkname or None)
    return out


def test_snapshot_of_an_unpacked_snapshot_is_identical(work: Path) -> None:
    tree = build_scenario(work / "tree", "example")
    options = _options(tree)
    taken, root = _round_trip(work, tree, options)
    again = snap.take(root, options, created=CREATED)
    assert snap.archive_bytes(again) == snap.archive_bytes(taken)


def test_selected_view_and_host_view_both_survive(work: Path) -> None:
    """With ``[smartnic] devices`` set, ``host plan`` (no selectors) still sees every PF."""
    tree = build_scenario(work / "tree", "example")
    options = _options(tree, selectors=parse_selectors(["0000:5e:00.0"]))
    taken, root = _round_trip(work, tree, options)
    assert [pf["address"] for pf in taken.manifest["discover"]["physical_functions"]] == [
        "0000:5e:00.0"]
    assert host_to_dict(scan(root, options)) == taken.manifest["discover"]
    every = replace(options, selectors=(), hostname="node-1")
    assert host_to_dict(scan(root, every)) == host_to_dict(scan(tree.root, every))
    assert len(scan(root, every).physical_functions) == 6


def test_file_vanishing_between_scan_and_pack_is_left_out(
        work: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    options = _options(tree, hostname="node-1")
    host, accesses, _ = snap.trace_scan(str(tree.root), options)
    gone = tree.vfs("0000:3b:00.0")[3]
    gone_dir = os.path.relpath(tree.device_path(gone), tree.root)
    tree.set_num_vfs("0000:3b:00.0", 3)  # VF 3 goes after the scan, before the pack
    packer = snap.Packer(str(tree.root))
    with caplog.at_level(logging.WARNING):
        for access in accesses:
            packer.add(access)
    omitted = dict((o.path, o.reason) for o in packer.omissions())
    assert omitted
    assert all(reason == "vanished between the scan and the snapshot"
               for reason in omitted.values())
    assert any(path.startswith(gone_dir) or gone in path for path in omitted)
    assert not any(m.name.startswith(gone_dir + "/") for m in packer.finish())
    assert "vanished between the scan and the snapshot" in caplog.text
    assert len(host.physical_functions[0].virtual_functions) == 4


def test_unreadable_file_is_left_out_with_a_warning(
        work: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Some ``vpd`` files answer EIO: the snapshot goes on without them and says so."""
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    real_read = snap._read_file

    def flaky(path: str) -> bytes:
        if path.endswith("/vpd"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(path)

    monkeypatch.setattr(snap, "_read_file", flaky)
    with caplog.at_level(logging.WARNING):
        taken = snap.take(tree.root, _options(tree, use_devlink=False), created=CREATED)
    assert [o.reason for o in taken.omitted] == ["Input/output error"] * 2
    assert all(o.path.endswith("/vpd") for o in taken.omitted)
    assert taken.manifest["omitted"] == [{"path": o.path, "reason": o.reason}
                                         for o in taken.omitted]
    assert not any(m.name.endswith("/vpd") for m in taken.members)
    assert "Input/output error" in caplog.text
    assert taken.host.physical_functions[0].serial == "MT2034X12345"


def test_live_tools_are_recorded_where_the_recorded_readers_look(work: Path) -> None:
    """On the running host devlink/mstconfig run (no shell, one PF per call); their output
    lands where ``RecordedTools`` and ``read_param`` read it back."""
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    SCENARIOS["bluefield2_dpu"](tree)
    host = scan(tree.root, _options(tree, hostname="node-1"))
    calls: list[list[str]] = []

    def fake_devlink(argv: list[str]) -> str | None:
        """Answers from the tree builder's recordings, as the real tools would print."""
        calls.append(argv)
        if argv[0] == "/bin/mstconfig":
            path = tree.root / f"mstconfig/query-{argv[argv.index('-d') + 1]}.txt"
            return path.read_text() if path.exists() else None
        if argv[0] == "/bin/mlxfwreset":
            return "3: Driver restart and PCI reset   -Supported\n"
        if _is_param(argv):  # the builder records no params: answer like mlx5 does
            return json.dumps({"param": {argv[5]: [{"name": "flow_steering_mode", "values": [
                {"cmode": "runtime", "value": "smfs"}]}]}})
        path = tree.root / f"devlink/dev-{argv[3]}-{argv[-1][4:]}.json"
        return path.read_text() if path.exists() else None

    commands = LiveTools("/sbin/devlink", "/bin/mstconfig", "/bin/mlxfwreset", run=fake_devlink)
    files = snap.tool_files("", host.physical_functions, Catalog(), commands)
    assert all(argv[0] in ("/sbin/devlink", "/bin/mstconfig", "/bin/mlxfwreset")
               for argv in calls)
    mst = sorted(argv[3] for argv in calls if argv[0] == "/bin/mstconfig")
    # every model with NV config (mlx5): the whole `mstconfig -e q` and `mlxfwreset q`
    assert mst == ["0000:3b:00.0", "0000:3b:00.1", "0000:af:00.0", "0000:af:00.1"]
    assert ["/bin/mlxfwreset", "-d", "0000:3b:00.0", "q"] in calls
    assert "mstconfig/reset-0000:3b:00.0.txt" in files
    params = sorted(argv[5] for argv in calls if _is_param(argv))
    assert params == ["pci/0000:3b:00.0", "pci/0000:3b:00.1", "pci/0000:af:00.0",
                      "pci/0000:af:00.1"]  # mlx5_core PFs
    replay = work / "replay"
    for rel, data in files.items():
        (replay / rel).parent.mkdir(parents=True, exist_ok=True)
        (replay / rel).write_bytes(data)
    tools = RecordedTools(SysfsReader(replay))
    assert tools.eswitch_mode("0000:3b:00.0") == "switchdev"
    info = tools.info("0000:3b:00.0")
    assert info is not None and info.serial == "MT2034X12345"
    assert tools.cpu_mode("0000:af:00.0") == "dpu"
    assert read_param(str(replay), "0000:3b:00.0") == "smfs"


def test_tools_not_installed_record_nothing(work: Path) -> None:
    tree = build_scenario(work / "tree", "cx6dx_switchdev")
    host = scan(tree.root, _options(tree, hostname="node-1"))
    commands = LiveTools(None, None, run=lambda argv: pytest.fail(f"ran {argv}"))
    assert snap.tool_files("", host.physical_functions, Catalog(), commands) == {}


def test_snapshot_of_this_machine(work: Path) -> None:
    """The real ``/`` (read only): succeeds, stays small, and round-trips."""
    taken = snap.take("/", ScanOptions(), created=CREATED)
    data = snap.archive_bytes(taken)
    assert len(data) < 256 * 1024
    names = [m.name for m in taken.members]
    assert all(n.split("/")[0] in ("sys", "proc", "etc", "devlink", "mstconfig")
               or n == "snapshot.json" for n in names)
    assert {n for n in names if n.startswith(("proc/", "etc/"))} <= {"proc/cmdline",
                                                                      "etc/hostname"}
    for member in taken.members:
        if member.kind == snap.FILE and member.name.startswith("sys/"):
            real = "/" + member.name
            assert os.path.isfile(real) and not os.path.islink(real)
        if member.kind == snap.LINK:
            assert member.target == os.readlink("/" + member.name)
    classes = [m for m in taken.members if m.name.endswith("/class")]
    if classes:  # sysfs claims 4096 bytes; the archive holds what was read
        real = "/" + classes[0].name
        assert os.stat(real).st_size == 4096
        assert classes[0].data == Path(real).read_bytes()
        assert _members(data)[f"{taken.top}/{classes[0].name}"].size == len(classes[0].data)
    archive = work / "live.tar.gz"
    archive.write_bytes(data)
    root = snap.unpack(archive, work / "unpacked")
    assert host_to_dict(scan(root, ScanOptions())) == taken.manifest["discover"]
    assert taken.host.hostname == socket.getfqdn()


def test_unpack_refuses_what_is_not_a_snapshot(work: Path) -> None:
    archive = work / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("a/b.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(snap.SnapshotError, match="not a cyborg-smartnic snapshot"):
        snap.unpack(archive, work / "out")
    (work / "junk.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(snap.SnapshotError, match=r"junk\.tar\.gz"):
        snap.unpack(work / "junk.tar.gz", work / "out")


def test_unpack_refuses_links_leaving_the_destination(work: Path) -> None:
    archive = work / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, target in (("top/snapshot.json", None), ("top/sys", "../../../etc")):
            info = tarfile.TarInfo(name)
            if target:
                info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(snap.SnapshotError):
        snap.unpack(archive, work / "out")
    assert not (work / "out/top/sys").exists()


def test_created_at_honours_source_date_epoch() -> None:
    assert snap.created_at({"SOURCE_DATE_EPOCH": "1715938200"}) == CREATED
    assert snap.created_at({}).tzinfo is UTC
    with pytest.raises(snap.SnapshotError, match="SOURCE_DATE_EPOCH: 'yesterday'"):
        snap.created_at({"SOURCE_DATE_EPOCH": "yesterday"})


def test_write_failure_leaves_nothing(work: Path) -> None:
    tree = build_scenario(work / "tree", "x710_legacy")
    taken = snap.take(tree.root, _options(tree), created=CREATED)
    with pytest.raises(snap.SnapshotError, match="No such file or directory"):
        snap.write(taken, work / "missing-dir" / "x.tar.gz")
    target = work / "out.tar.gz"
    assert snap.write(taken, target) == target.stat().st_size
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in work.iterdir()) == ["out.tar.gz", "tree"]
