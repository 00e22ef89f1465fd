"""The sysfs reader and parsers, devlink/mstconfig interpretation (recorded and live), pci.ids."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyborg_smartnic.discovery import devlink as dl
from cyborg_smartnic.discovery.pciids import PciIds, find_pci_ids
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.discovery.sysfs import (
    MalformedAttribute,
    RecordingReader,
    SysfsReader,
    UnreadableAttribute,
    parse_bare_hex_id,
    parse_class,
    parse_hex_id,
    parse_int,
    parse_mac,
    parse_numa_node,
    parse_switch_id,
    parse_vpd_serial,
)
from cyborg_smartnic.host.devlink_params import read_param
from cyborg_smartnic.host.firmware import read_facts
from cyborg_smartnic.hostgen import PfOptions, build_scenario, scratch_dir, vpd
from cyborg_smartnic.hostgen.firmware import write_nv_query


@pytest.fixture
def root() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


# ---------------------------------------------------------------------- parsers
@pytest.mark.parametrize(("text", "value"), [("0x15b3", "15b3"), ("0x15B3", "15b3")])
def test_hex_id(text: str, value: str) -> None:
    assert parse_hex_id(text, "vendor") == value


@pytest.mark.parametrize("text", ["15b3", "0x15b", "0x15b3a", "0xZZZZ", "", " 0x15b3", None])
def test_bad_hex_id(text: str | None) -> None:
    with pytest.raises(MalformedAttribute) as caught:
        parse_hex_id(text, "vendor")
    assert str(caught.value).startswith(f"vendor {text or ''!r}: ")


def test_other_parsers() -> None:
    assert parse_bare_hex_id("101E", "sriov_vf_device") == "101e"
    assert parse_class("0x020000") == 0x020000
    assert parse_int("8", "sriov_totalvfs", 0, 10) == 8
    assert parse_numa_node("-1") is None and parse_numa_node(None) is None
    assert parse_numa_node("1") == 1
    assert parse_mac("B8:CE:F6:00:3B:00") == "b8:ce:f6:00:3b:00" and parse_mac(None) is None
    assert parse_switch_id("") is None and parse_switch_id("b8cef603") == "b8cef603"
    assert parse_switch_id("not hex") is None


@pytest.mark.parametrize(("call", "message"), [
    (lambda: parse_bare_hex_id("0x101e", "sriov_vf_device"), "expected 4 hexadecimal digits"),
    (lambda: parse_class("0x0200"), "expected 0x and 6 hexadecimal digits"),
    (lambda: parse_int("", "x", 0, 1), "expected a decimal integer"),
    (lambda: parse_int("1e3", "x", 0, 5000), "expected a decimal integer"),
    (lambda: parse_int("11", "x", 0, 10), "out of range 0..10"),
    (lambda: parse_int("99999999999", "x", 0, 10), "expected a decimal integer"),
    (lambda: parse_numa_node("-2"), "out of range -1..4095"),
    (lambda: parse_mac("b8:ce:f6:00:3b"), "expected six colon-separated hex octets"),
])
def test_parser_errors(call: object, message: str) -> None:
    with pytest.raises(MalformedAttribute) as caught:
        call()  # type: ignore[operator]
    assert message in str(caught.value)


def test_vpd_serial() -> None:
    image = vpd("ConnectX-6 Dx", "MCX623106AN-CDAT", "MT2034X12345")
    assert parse_vpd_serial(image) == "MT2034X12345"
    assert parse_vpd_serial(b"") is None and parse_vpd_serial(None) is None
    assert parse_vpd_serial(b"\x78") is None
    assert parse_vpd_serial(image[:5]) is None  # truncated: no SN, no exception


# ---------------------------------------------------------------------- reader
def test_reader_tolerates_absence_and_names_real_failures(root: Path) -> None:
    (root / "sys").mkdir()
    (root / "sys/file").write_text("value\n")
    (root / "sys/dir").mkdir()
    (root / "sys/link").symlink_to("../x/mlx5_core")
    (root / "sys/bin").write_bytes(b"\xff\xfe")
    reader = SysfsReader(root)
    assert reader.read(reader.sys + "/file") == "value"
    assert reader.read(reader.sys + "/missing") is None
    assert reader.read(reader.sys + "/file/below-a-file") is None  # ENOTDIR
    assert reader.link_name(reader.sys + "/link") == "mlx5_core"  # dangling is fine
    assert reader.link_name(reader.sys + "/file") is None  # EINVAL: not a link
    assert reader.listdir(reader.sys + "/missing") == []
    assert reader.read_bytes(reader.sys + "/missing") is None
    with pytest.raises(UnreadableAttribute) as caught:
        reader.read(reader.sys + "/dir")
    assert str(caught.value) == "cannot read /sys/dir: Is a directory"
    with pytest.raises(UnreadableAttribute, match="not UTF-8"):
        reader.read(reader.sys + "/bin")
    assert not reader.is_live and SysfsReader("/").is_live
    assert SysfsReader("/").sys == "/sys"


def test_reader_permission_denied(root: Path) -> None:
    """EACCES is a real failure, not absence. Root ignores mode bits on ordinary files, but
    not on the kernel's write-only attributes: read-only use of the host's /sys."""
    if os.geteuid() == 0:
        path = "/sys/bus/pci/rescan"  # mode 0200: kernfs refuses reads even to root
        reader = SysfsReader("/")
        expected = "cannot read /sys/bus/pci/rescan: Permission denied"
    else:  # pragma: no cover - CI runs as root
        (root / "secret").write_text("x")
        (root / "secret").chmod(0)
        path, reader = str(root / "secret"), SysfsReader(root)
        expected = "cannot read /secret: Permission denied"
    with pytest.raises(UnreadableAttribute) as caught:
        reader.read(path)
    assert str(caught.value) == expected


def test_reader_symlink_loop_is_unreadable(root: Path) -> None:
    (root / "loop").symlink_to("loop")
    with pytest.raises(UnreadableAttribute, match="Too many levels of symbolic links"):
        SysfsReader(root).read(str(root / "loop"))


def test_recording_reader_sees_every_operation(root: Path) -> None:
    build_scenario(root, "x710_legacy")
    reader = RecordingReader(root)
    host = scan(root, ScanOptions(hostname="h"), reader=reader)
    ops = {op for op, _ in reader.ops}
    assert ops == {"read", "readlink", "listdir"}
    assert all(path.startswith(str(root)) for _, path in reader.ops)
    assert ("readlink", f"{root}/sys/bus/pci/devices/0000:18:01.0/driver") in reader.ops
    # a VF is never classified again after its PF claimed it
    assert ("read", f"{root}/sys/bus/pci/devices/0000:18:01.0/class") not in reader.ops
    assert len(host.physical_functions) == 2


def test_scan_never_reads_outside_its_root(root: Path) -> None:
    build_scenario(root, "example")
    reader = RecordingReader(root)
    scan(root, ScanOptions(hostname="h"), reader=reader)
    assert reader.ops and all(p.startswith(f"{root}/") for _, p in reader.ops)


# ---------------------------------------------------------------------- devlink
def test_parse_eswitch() -> None:
    text = json.dumps({"dev": {"pci/0000:3b:00.0": {"mode": "switchdev"}}})
    assert dl.parse_eswitch(text, "0000:3b:00.0") == "switchdev"
    assert dl.parse_eswitch(text, "0000:3b:00.1") is None
    assert dl.parse_eswitch("not json", "0000:3b:00.0") is None
    odd = json.dumps({"dev": {"pci/0000:3b:00.0": {"mode": "switchdev_inactive"}}})
    assert dl.parse_eswitch(odd, "0000:3b:00.0") is None


def test_parse_info_and_versions() -> None:
    text = json.dumps({"info": {
        "pci/0000:5e:00.0": {"driver": "ice", "serial_number": "00-01",
                             "versions": {"fixed": {"board.id": "K91258-000"},
                                          "running": {"fw.mgmt": "7.3.4", "fw.psid.api": "4.40",
                                                      "fw.app.name": "ICE COMMS Package"}}},
        "pci/0000:3b:00.0": {"driver": "mlx5_core", "versions": {
            "running": {"fw.version": "22.36.1010", "fw": "22.36.1010"}}},
        "pci/0000:18:00.0": {"driver": "i40e", "versions": {"running": {"fw.mgmt": "9.1"}}},
        "auxiliary/mlx5_core.eth.0": {"driver": "mlx5_core.eth"},
        "pci/0000:00:00.0": "junk"}})
    infos = dl.parse_info_all(text)
    assert sorted(infos) == ["0000:18:00.0", "0000:3b:00.0", "0000:5e:00.0"]
    ice = infos["0000:5e:00.0"]
    assert (ice.driver, ice.serial, ice.fixed["board.id"]) == ("ice", "00-01", "K91258-000")
    assert dl.firmware_version(ice) == "4.40" and dl.ddp_mode(ice) == "comms"
    assert dl.firmware_version(infos["0000:3b:00.0"]) == "22.36.1010"
    assert dl.firmware_version(infos["0000:18:00.0"]) == "9.1"
    assert dl.ddp_mode(infos["0000:3b:00.0"]) is None
    assert dl.firmware_version(None) is None and dl.ddp_mode(None) is None
    assert dl.parse_info_all("[]") == {} and dl.parse_info_all("{") == {}


@pytest.mark.parametrize(("name", "mode"), [
    ("ICE COMMS Package", "comms"), ("ICE OS Default Package", "os_default"),
    ("ICE Wireless Edge Package", "wireless_edge"), ("ICE Custom-X Package", "custom_x"),
])
def test_ddp_modes(name: str, mode: str) -> None:
    assert dl.ddp_mode(dl.DevlinkInfo(running={"fw.app.name": name})) == mode


@pytest.mark.parametrize(("text", "mode"), [
    ("INTERNAL_CPU_MODEL   EMBEDDED_CPU(1)\nINTERNAL_CPU_PAGE_SUPPLIER   ECPF(0)\n", "dpu"),
    ("INTERNAL_CPU_MODEL   EMBEDDED_CPU(1)\nINTERNAL_CPU_PAGE_SUPPLIER   EXT_HOST_PF(1)\n", "nic"),
    ("INTERNAL_CPU_MODEL   SEPARATED_HOST(0)\n", "separated_host"),
    ("INTERNAL_CPU_MODEL   EMBEDDED_CPU(1)\n", None),
    ("-E- Failed to open device\n", None),
])
def test_parse_mstconfig(text: str, mode: str | None) -> None:
    assert dl.parse_mstconfig(text) == mode


def test_eswitch_from_sysfs() -> None:
    assert dl.eswitch_from_sysfs("switchdev", None, 0) == "switchdev"
    assert dl.eswitch_from_sysfs("legacy", "abcd", 4) == "legacy"  # compat wins
    assert dl.eswitch_from_sysfs(None, "abcd", 4) == "switchdev"
    assert dl.eswitch_from_sysfs(None, "abcd", 0) == "legacy"
    assert dl.eswitch_from_sysfs(None, None, 0) == "legacy"
    assert dl.is_representor_port("pf0vf3") and dl.is_representor_port("c1pf0vf3")
    assert dl.is_representor_port("pf0sf1") and dl.is_uplink_port("p0")
    assert not dl.is_uplink_port("pf0vf3") and not dl.is_representor_port(None)


def test_switchdev_inferred_without_compat_or_devlink(root: Path) -> None:
    """ice/bnxt have no compat/devlink/mode: switch id + representors say switchdev."""
    from cyborg_smartnic.hostgen import SysfsTree

    tree = SysfsTree(root)
    tree.add_pf("0000:5e:00.0", PfOptions(
        vendor="8086", device="1592", driver="ice", netdev="ens2f0", total_vfs=8, num_vfs=2,
        eswitch="switchdev", fw_mode="comms"))
    with_devlink = scan(root, ScanOptions(hostname="h")).physical_functions[0]
    without = scan(root, ScanOptions(hostname="h", use_devlink=False)).physical_functions[0]
    assert with_devlink.eswitch_mode == without.eswitch_mode == "switchdev"
    assert without.representors == ("ens2f0_0", "ens2f0_1")


def test_tool_source_choice(root: Path) -> None:
    assert isinstance(dl.tool_source(SysfsReader(root), False), dl.NoTools)
    assert isinstance(dl.tool_source(SysfsReader(root), True), dl.RecordedTools)
    assert isinstance(dl.tool_source(SysfsReader("/"), True), dl.LiveTools)
    assert isinstance(dl.tool_source(SysfsReader("/"), False), dl.NoTools)
    none = dl.NoTools()
    assert (none.info("x"), none.eswitch_mode("x"), none.cpu_mode("x")) == (None, None, None)


def test_recorded_junk_is_ignored(root: Path) -> None:
    (root / "devlink").mkdir()
    (root / "devlink/dev-info-0000:3b:00.0.json").write_text("{truncated")
    (root / "devlink/dev-eswitch-0000:3b:00.0.json").write_bytes(b"\xff")
    (root / "mstconfig").mkdir()
    (root / "mstconfig/query-0000:3b:00.0.txt").mkdir()  # unreadable: a directory
    tools = dl.RecordedTools(SysfsReader(root))
    assert tools.info("0000:3b:00.0") is None and tools.eswitch_mode("0000:3b:00.0") is None
    assert tools.cpu_mode("0000:3b:00.0") is None


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_live_tools_run_commands_without_a_shell(root: Path) -> None:
    """A stand-in ``devlink`` executable (the device side is what we fake, as with sysfs)."""
    log = root / "calls"
    info = json.dumps({"info": {"pci/0000:3b:00.0": {
        "driver": "mlx5_core", "serial_number": "MT1",
        "versions": {"running": {"fw": "22.1"}}}}})
    esw = json.dumps({"dev": {"pci/0000:3b:00.0": {"mode": "switchdev"}}})
    devlink = _script(root / "devlink", f"""echo "$@" >> {log}
case "$4" in
  show) echo '{esw}' ;;
  *) echo '{info}' ;;
esac
""")
    mst = _script(root / "mstconfig", 'echo "INTERNAL_CPU_MODEL EMBEDDED_CPU(1)"\n'
                                      'echo "INTERNAL_CPU_PAGE_SUPPLIER ECPF(0)"\n')
    tools = dl.LiveTools(devlink, mst)
    assert tools.info("0000:3b:00.0") == dl.DevlinkInfo("mlx5_core", "MT1", {"fw": "22.1"}, {})
    assert tools.info("0000:3b:00.1") is None
    assert tools.eswitch_mode("0000:3b:00.0") == "switchdev"
    assert tools.cpu_mode("0000:af:00.0") == "dpu"
    assert log.read_text().splitlines() == ["-j dev info",  # once, cached
                                            "-j dev eswitch show pci/0000:3b:00.0"]
    failing = dl.LiveTools(_script(root / "bad", "echo oops >&2; exit 1\n"), None)
    assert failing.info("0000:3b:00.0") is None and failing.eswitch_mode("x") is None
    assert failing.cpu_mode("x") is None
    missing = dl.LiveTools(str(root / "does-not-exist"), None)
    assert missing.info("0000:3b:00.0") is None
    assert dl.LiveTools(None, None).info("x") is None
    assert dl.LiveTools(None, None).eswitch_mode("x") is None



def test_each_question_has_one_command_and_one_recorded_file(root: Path) -> None:
    """``devlink.Query`` is the one home: the live source runs its command, the recorded
    source reads its file, and the host tool's readers ask the same questions."""
    address = "0000:3b:00.0"
    queries = [*dl.recorded_queries(address, "mlx5_core", True, nv_config=True),
               dl.cpu_mode_query(address)]
    assert {q.recorded for q in queries} == {
        f"devlink/dev-info-{address}.json", f"devlink/dev-eswitch-{address}.json",
        f"devlink/dev-param-{address}.json", f"mstconfig/query-{address}.txt",
        f"mstconfig/reset-{address}.txt"}
    ran: list[list[str]] = []
    live = dl.LiveTools("/x/devlink", "/x/mlxconfig", "/x/mlxfwreset",
                        run=lambda argv: ran.append(argv) or f"answer {len(ran)}")
    recorded = dl.RecordedTools(SysfsReader(root))
    for query in queries:
        (root / query.recorded).parent.mkdir(parents=True, exist_ok=True)
        (root / query.recorded).write_text(f"recorded {query.tool}\n")
        assert recorded.answer(query) == f"recorded {query.tool}"
        assert live.answer(query) is not None
        assert ran[-1][1:] == list(query.args)
    assert [argv[0] for argv in ran] == ["/x/devlink", "/x/devlink", "/x/devlink",
                                         "/x/mlxconfig", "/x/mlxfwreset", "/x/mlxconfig"]
    assert (live.origin(dl.NV_TOOL), recorded.origin(dl.NV_TOOL)) == ("mlxconfig", "recorded")
    assert dl.LiveTools(None, None).answer(dl.reset_query(address)) is None
    param = {"param": {f"pci/{address}": [{"name": "flow_steering_mode", "values": [
        {"cmode": "runtime", "value": "dmfs"}]}]}}
    (root / dl.param_query(address).recorded).write_text(json.dumps(param))
    assert read_param(str(root), address) == "dmfs"
    write_nv_query(root, address, {"INTERNAL_CPU_MODEL": (1, 0)})
    facts = read_facts(str(root), address)
    assert facts.tool == "recorded" and facts.nv["INTERNAL_CPU_MODEL"].pending

# ---------------------------------------------------------------------- pci.ids
PCI_IDS = """# sample
8086  Intel Corporation
\t1521  I350 Gigabit Network Connection
\t\t8086 0001  Ethernet Server Adapter I350-T4
\t1572  Ethernet Controller X710 for 10GbE SFP+
15b3  Mellanox Technologies
\t101d  MT2892 Family [ConnectX-6 Dx]
C 02  Network controller
"""


def test_pci_ids_lookups(root: Path) -> None:
    path = root / "pci.ids"
    path.write_text(PCI_IDS)
    ids = PciIds(path)
    assert ids.names("8086", "1521") == ("Intel Corporation", "I350 Gigabit Network Connection")
    assert ids.names("15b3", "101d") == ("Mellanox Technologies", "MT2892 Family [ConnectX-6 Dx]")
    assert ids.names("8086", "0001") == ("Intel Corporation", None)  # subsystem line ignored
    assert ids.names("abcd", "0001") == (None, None)
    assert PciIds(None).names("8086", "1521") == (None, None)
    assert PciIds(root / "missing").names("8086", "1521") == (None, None)
    assert find_pci_ids(str(path)) == path


def test_uncatalogued_pf_named_from_pci_ids(root: Path) -> None:
    from cyborg_smartnic.discovery.selection import parse_selectors

    (root / "pci.ids").write_text(PCI_IDS.replace("8086  Intel", "1234  Acme Networks Inc.\n"
                                                  "\t5678  Acme NIC\n8086  Intel"))
    tree_root = root / "host"
    from cyborg_smartnic.hostgen import SysfsTree

    tree = SysfsTree(tree_root)
    tree.add_pf("0000:41:00.0", PfOptions(
        vendor="1234", device="5678", driver="acme", netdev="eth7", total_vfs=4, num_vfs=1,
        vf_device="5679", vf_driver="acmevf"))
    options = ScanOptions(selectors=parse_selectors(["1234:5678"]), hostname="h",
                          pci_ids_path=str(root / "pci.ids"))
    (pf,) = scan(tree_root, options).physical_functions
    assert (pf.vendor, pf.model, pf.model_key) == ("acme", "Acme NIC", "ACME_NIC")
    assert [(vf.device_id, vf.driver) for vf in pf.virtual_functions] == [("5679", "acmevf")]
