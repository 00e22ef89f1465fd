"""The tree builder makes kernel-shaped trees, and the bundled example host is what it makes."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery.example import (
    CONF_NAME,
    TARBALL_NAME,
    data_file,
    unpack_example_host,
)
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.hostgen import (
    SCENARIOS,
    FunctionIds,
    SysfsTree,
    build_scenario,
    example_files,
    large,
    scratch_dir,
)
from cyborg_smartnic.safetar import UnsafeArchive


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


def _links(root: Path) -> Iterator[Path]:
    """Symlinks of the tree, except /proc's: those are the kernel's magic links (fd targets
    such as ``socket:[1001]``, ``ns/pid`` -> ``pid:[4026531836]``), names rather than paths."""
    for directory, dirs, files in os.walk(root):
        if Path(directory).is_relative_to(root / "proc"):
            continue
        for name in dirs + files:
            path = Path(directory, name)
            if path.is_symlink():
                yield path


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_links_are_relative_and_resolve_inside(root: Path, name: str) -> None:
    build_scenario(root, name)
    links = list(_links(root))
    assert links
    for link in links:
        target = os.readlink(link)
        assert not target.startswith("/"), link
        resolved = link.resolve()
        assert resolved.exists(), f"dangling {link} -> {target}"
        assert resolved.is_relative_to(root.resolve())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ids_agree_across_files(root: Path, name: str) -> None:
    build_scenario(root, name)
    devices = root / "sys/bus/pci/devices"
    for entry in devices.iterdir():
        def read(attr: str, entry: Path = entry) -> str:
            return (entry / attr).read_text().strip()
        vendor, device = int(read("vendor"), 16), int(read("device"), 16)
        klass = int(read("class"), 16)
        uevent = dict(line.split("=", 1) for line in read("uevent").splitlines())
        assert uevent["PCI_ID"] == f"{vendor:04X}:{device:04X}"
        assert uevent["PCI_CLASS"] == f"{klass:X}"
        assert uevent["PCI_SLOT_NAME"] == entry.name
        assert uevent["MODALIAS"] == read("modalias")
        assert read("modalias").startswith(f"pci:v0000{vendor:04X}d0000{device:04X}sv")
        driver = entry / "driver"
        assert uevent.get("DRIVER") == (os.readlink(driver).rsplit("/", 1)[-1]
                                        if driver.is_symlink() else None)
        assert read("vendor").startswith("0x") and len(read("vendor")) == 6
        numa = int(read("numa_node"))
        assert numa >= -1


def test_pf_and_vf_links(root: Path) -> None:
    tree = build_scenario(root, "cx6dx_switchdev")
    pf = root / "sys/bus/pci/devices/0000:3b:00.0"
    assert (pf / "sriov_numvfs").read_text() == "4\n"
    assert (pf / "sriov_offset").read_text() == "2\n"
    assert os.readlink(pf / "virtfn0") == "../0000:3b:00.2"
    assert os.readlink(pf / "driver") == "../../../../bus/pci/drivers/mlx5_core"
    assert os.readlink(root / "sys/bus/pci/devices/0000:3b:00.2/physfn") == "../0000:3b:00.0"
    assert (pf / "net/ens1f0/compat/devlink/mode").read_text() == "switchdev\n"
    assert (pf / "net/ens1f0_3/phys_port_name").read_text() == "pf0vf3\n"
    assert (pf / "net/ens1f0_3/phys_switch_id").read_text() == \
        (pf / "net/ens1f0/phys_switch_id").read_text()
    assert (root / "sys/class/net/ens1f0/device").resolve() == pf.resolve()
    assert not (root / "sys/bus/pci/devices/0000:3b:00.2/net").exists()  # vfio-pci
    group = os.readlink(root / "sys/bus/pci/devices/0000:3b:00.2/iommu_group")
    assert (root / "sys/kernel/iommu_groups" / group.rsplit("/", 1)[-1] / "devices/0000:3b:00.2"
            ).resolve() == (root / "sys/bus/pci/devices/0000:3b:00.2").resolve()
    assert tree.physnet_mappings() == ["physnet1:ens1f0", "physnet2:ens1f1"]


def test_set_num_vfs_and_eswitch(root: Path) -> None:
    tree = build_scenario(root, "cx6dx_switchdev")
    tree.set_num_vfs("0000:3b:00.0", 2)
    pf = root / "sys/bus/pci/devices/0000:3b:00.0"
    assert sorted(p.name for p in pf.glob("virtfn*")) == ["virtfn0", "virtfn1"]
    assert not (root / "sys/bus/pci/devices/0000:3b:00.4").exists()
    assert not (root / "sys/class/net/ens1f0_2").exists()
    tree.set_eswitch("0000:3b:00.0", "legacy")
    assert sorted(p.name for p in (pf / "net").iterdir()) == ["ens1f0"]
    assert not (pf / "net/ens1f0/phys_switch_id").exists()
    host = scan(root, ScanOptions(hostname="h"))
    pf0 = host.physical_functions[0]
    assert (pf0.eswitch_mode, pf0.num_vfs, len(pf0.virtual_functions)) == ("legacy", 2, 2)
    tree.set_num_vfs("0000:3b:00.0", 0)
    assert (pf / "sriov_numvfs").read_text() == "0\n"
    assert not any(pf.glob("virtfn*"))


def test_builder_refuses_collisions(root: Path) -> None:
    tree = SysfsTree(root)
    tree.add_function("0000:3b:00.0", FunctionIds(vendor="8086", device="1521"))
    with pytest.raises(ValueError, match="already exists"):
        tree.add_function("0000:3b:00.0", FunctionIds(vendor="8086", device="1521"))
    with pytest.raises(ValueError, match="cannot be the root port of bus 3c"):
        tree.add_function("0000:3c:00.0", FunctionIds(vendor="8086", device="1521"))


def test_large_host_shape(root: Path) -> None:
    large(root, pfs=3, vfs=4, noise=10)
    host = scan(root, ScanOptions(hostname="h"))
    assert [(pf.model, len(pf.virtual_functions)) for pf in host.physical_functions] == [
        ("ConnectX-6 Dx", 4), ("E810", 4), ("X710", 4)]
    assert host.skipped == ()
    assert len(os.listdir(root / "sys/bus/pci/devices")) == 3 + 12 + 10 + 3 + 1  # + ports


# ---------------------------------------------------------------------- bundled example
def _members(data: bytes) -> dict[str, tuple[int, str, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            content = archive.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            out[member.name] = (member.type[0] if member.type else 0, member.linkname, content)
    return out


def test_shipped_example_host_equals_the_builder() -> None:
    """If this fails: python -m cyborg_smartnic.hostgen --write-example cyborg_smartnic/data"""
    fresh_tar, fresh_conf = example_files()
    shipped_tar = gzip.decompress(data_file(TARBALL_NAME).read_bytes())
    assert _members(shipped_tar) == _members(fresh_tar)
    assert data_file(CONF_NAME).read_text() == fresh_conf


def test_unpack_keeps_symlinks_and_scans(root: Path) -> None:
    host_root = unpack_example_host(root)
    assert host_root == root / "example-host"
    link = host_root / "sys/bus/pci/devices/0000:3b:00.0"
    assert link.is_symlink() and link.resolve().is_dir()
    assert os.readlink(host_root / "sys/bus/pci/devices/0000:3b:00.0/virtfn0") == \
        "../0000:3b:00.2"
    host = scan(host_root, ScanOptions(hostname="h"))
    assert len(host.physical_functions) == 6
    assert sum(len(pf.virtual_functions) for pf in host.physical_functions) == 24


def test_unpack_checks_every_member(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tarball with a link escaping the destination is refused, nothing lands outside."""
    evil = root / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        info = tarfile.TarInfo("example-host/escape")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../../etc/passwd"
        archive.addfile(info)
    monkeypatch.setattr("cyborg_smartnic.discovery.example.data_file", lambda name: evil)
    with pytest.raises(UnsafeArchive, match="escape"):
        unpack_example_host(root / "dest")
    assert not (root / "dest/example-host/escape").is_symlink()
