"""Who owns each VF: host.yaml's vf_owners, `host conf` for both services, the doctor's check.

Nova's side is checked against Nova itself: nova 34 is installed in this virtualenv, but it
cannot be imported next to Cyborg's options, so a subprocess of the same interpreter runs
Nova's own ``PciDeviceSpec``/``Whitelist`` (and its oslo.config reading of ``device_spec``)
on the same specs and devices. Nova reads two facts from /sys (is an address a PF, which
function a netdev is); the subprocess answers them from the generated tree, as the kernel
would on the host the tree stands for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.scan import scan
from cyborg_smartnic.host import novaspec, ownership, snippet
from cyborg_smartnic.host.config import InvalidHostConfig, load_host_config
from cyborg_smartnic.hostgen import build_scenario
from cyborg_smartnic.pci import PciAddress

EXAMPLE_CONFIG = Path(__file__).parents[2] / "deploy" / "host.example.yaml"
CX = "0000:3b:00.0"

NOVA_SCRIPT = textwrap.dedent('''
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    request = json.load(sys.stdin)
    root = request["root"]
    from nova.pci import devspec, utils, whitelist

    def is_physical_function(domain, bus, slot, function):  # nova's, under the tree's root
        path = f"{root}/sys/bus/pci/devices/{domain}:{bus}:{slot}.{function}/sriov_totalvfs"
        try:
            return int(open(path).read()) > 0
        except (OSError, ValueError):
            return False

    def get_function_by_ifname(ifname):
        dev = f"{root}/sys/class/net/{ifname}/device"
        if not os.path.isdir(dev):
            return None, False
        address = os.path.basename(os.path.realpath(dev))
        try:
            return address, int(open(dev + "/sriov_totalvfs").read()) > 0
        except (OSError, ValueError):
            return address, False

    utils.is_physical_function = is_physical_function
    utils.get_function_by_ifname = get_function_by_ifname
    if "nova_conf" in request:
        import nova.conf
        nova.conf.CONF(["--config-file", request["nova_conf"]], project="nova")
        specs = whitelist.Whitelist(nova.conf.CONF.pci.device_spec).specs
    else:
        specs = [devspec.PciDeviceSpec(dict(s)) for s in request["specs"]]
    answer = [[i for i, dev in enumerate(request["devices"]) if spec.match(dev)]
              for spec in specs]
    json.dump(answer, sys.stdout)
''')


def nova_matches(root: Path, devices: list[dict[str, Any]], *,
                 specs: list[dict[str, Any]] | None = None,
                 nova_conf: Path | None = None) -> list[list[int]]:
    """Per spec, the indexes of ``devices`` Nova's own matcher accepts."""
    request: dict[str, Any] = {"root": str(root), "devices": devices}
    if nova_conf is not None:
        request["nova_conf"] = str(nova_conf)
    else:
        request["specs"] = specs
    done = subprocess.run([sys.executable, "-c", NOVA_SCRIPT], input=json.dumps(request),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result: list[list[int]] = json.loads(done.stdout)
    return result


def functions(host: Host) -> list[novaspec.PciFunction]:
    found = []
    for pf in host.physical_functions:
        found.append(novaspec.PciFunction(pf.vendor_id, pf.device_id, str(pf.address),
                                          None, pf.serial))
        found += [novaspec.PciFunction(vf.vendor_id, vf.device_id, str(vf.address),
                                       str(pf.address), pf.serial)
                  for vf in pf.virtual_functions]
    return found


def as_nova(dev: novaspec.PciFunction) -> dict[str, Any]:
    return {"vendor_id": dev.vendor_id, "product_id": dev.product_id, "address": dev.address,
            "parent_addr": dev.parent_addr,
            "capabilities": {"vpd": {"card_serial_number": dev.card_serial_number}}}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("owners") / "host"
    build_scenario(root, "example")
    return root


@pytest.fixture(scope="module")
def host(tree: Path) -> Host:
    return scan(tree)


# Specs in every shape Nova accepts; each is matched against every PF and VF of the host.
SPECS: list[dict[str, Any]] = [
    {"address": "0000:3b:00.2"},                                   # one VF
    {"address": CX, "physical_network": "physnet1"},               # a PF: all its VFs
    {"address": "*:3b:00.*"},                                      # glob
    {"address": ":3b:00."},                                        # partial glob
    {"address": "3b:00.3"},                                        # domain left out
    {"address": {"domain": ".*", "bus": "3b", "slot": "00", "function": "[2-3]"}},  # regex
    {"address": {"bus": "5e", "function": "1"}},                   # regex prefix match
    {"vendor_id": "15b3"},                                         # every Mellanox function
    {"vendor_id": "8086", "product_id": "1889"},                   # E810 VFs (device id)
    {"vendor_id": "15b3", "product_id": "101e", "address": "0000:3b:00.1"},
    {"devname": "ens1f0", "physical_network": "physnet1"},         # a PF netdev
    {"devname": "ens3f0"},
    {"devname": "no-such-netdev"},
    {"address": "0000:3b:00.0", "vendor_id": "8086"},             # ids and address disagree
    {"address": "0000:18:00.*", "trusted": "true"},
]


def test_our_matcher_agrees_with_novas_on_every_function(tree: Path, host: Host) -> None:
    devices = functions(host)
    ours = [[i for i, dev in enumerate(devices)
             if novaspec.parse_spec(spec, host).matches(dev)] for spec in SPECS]
    theirs = nova_matches(tree, [as_nova(d) for d in devices], specs=SPECS)
    for spec, mine, nova in zip(SPECS, ours, theirs, strict=True):
        assert mine == nova, (spec, [devices[i].address for i in mine],
                              [devices[i].address for i in nova])
    # the table is not vacuous: single VFs, whole PFs, vendors and nothing all occur
    assert sorted({len(m) for m in theirs}) [0] == 0 and max(len(m) for m in theirs) > 8
    assert any(len(m) == 1 for m in theirs)


@pytest.mark.parametrize(("value", "reason"), [
    ("{not json", "invalid JSON"),
    ('"a string"', "expecting a JSON object or list"),
    ('[1]', "expecting a JSON object"),
    ('{"address": "0000:3b:00.9"}', "property func (9) is greater than the maximum"),
    ('{"vendor_id": "1g"}', "property vendor_id ('1g') does not parse as a hex number"),
    ('{"address": "0000:3b:00.2", "devname": "ens1f0"}', "either address or devname"),
    ('{"address": {"bus": "("}}', "address"),
])
def test_device_specs_nova_refuses_are_refused(host: Host, value: str, reason: str) -> None:
    with pytest.raises(novaspec.InvalidDeviceSpec) as caught:
        novaspec.parse_values([value], host, "nova.conf")
    assert reason in str(caught.value) and "nova.conf: [pci] device_spec 1:" in str(caught.value)


# ------------------------------------------------------------------------ host.yaml

def _config(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "host.yaml"
    path.write_text("devices:\n  - address: \"0000:3b:00.0\"\n" + textwrap.indent(
        textwrap.dedent(entry), "    "))
    return path


@pytest.mark.parametrize(("entry", "expected"), [
    ("vf_count: 8\nphysnet: physnet1\nvf_owners:\n  '0-3': cyborg\n  '4-7': nova\n",
     {i: "cyborg" for i in range(4)} | {i: "nova" for i in range(4, 8)}),
    ("vf_count: 4\nphysnet: physnet1\nvf_owners:\n  '2': nova\nreserved_vfs: '3'\n",
     {0: "cyborg", 1: "cyborg", 2: "nova", 3: "reserved"}),
    ("vf_count: 2\n", {0: "cyborg", 1: "cyborg"}),  # the default owner
])
def test_owner_of_each_vf(tmp_path: Path, entry: str, expected: dict[int, str]) -> None:
    (device,) = load_host_config(_config(tmp_path, entry)).devices
    assert {i: device.owner_of(i) for i in expected} == expected


@pytest.mark.parametrize(("entry", "error"), [
    ("vf_count: 8\nvf_owners:\n  '4-7': nova\n",
     ":5:7: devices[0].vf_owners.4-7: Nova's PCI tracker gives a VF only to a port whose "
     "network's physical_network equals the device_spec's: set physnet on this entry"),
    ("vf_count: 8\nphysnet: p\nvf_owners:\n  '0-4': nova\n  '4-7': cyborg\n",
     ":7:7: devices[0].vf_owners.4-7: overlaps the range '0-4'"),
    ("vf_count: 4\nphysnet: p\nvf_owners:\n  '2-5': nova\n",
     ":6:7: devices[0].vf_owners.2-5: VF 5 does not exist with vf_count 4"),
    ("vf_count: 4\nphysnet: p\nreserved_vfs: '3'\nvf_owners:\n  '3': nova\n",
     ":7:7: devices[0].vf_owners.3: VF 3 is in reserved_vfs"),
    ("vf_count: 4\nremote_managed: true\n",
     ":4:5: devices[0].remote_managed: remote_managed tags Nova's [pci] device_spec"),
    ("vf_count: 4\nvf_owners:\n  '0': neutron\n",
     ":5:7: devices[0].vf_owners.0: who schedules these VFs: cyborg (the default) or nova"),
])
def test_impossible_owners_are_refused(tmp_path: Path, entry: str, error: str) -> None:
    with pytest.raises(InvalidHostConfig) as caught:
        load_host_config(_config(tmp_path, entry))
    assert any(error in str(e) for e in caught.value.errors), caught.value.errors


# ------------------------------------------------------------------------ host conf

SPLIT = """\
devices:
  - address: "0000:3b:00.0"
    physnet: physnet1
    vf_owners:
      "2-3": nova
  - netdev: ens1f1
    reserved_vfs: "3"
    physnet: physnet2
  - netdev: ens2f0
    physnet: physnet3
    vf_owners:
      "0-7": nova
    remote_managed: true
"""


def _split_config(tmp_path: Path) -> Path:
    path = tmp_path / "split.yaml"
    path.write_text(SPLIT)
    return path


def test_every_vf_has_exactly_one_owner(tmp_path: Path, host: Host, tree: Path) -> None:
    conf = snippet.generate(load_host_config(_split_config(tmp_path)), host)
    owners = {(v.pf, v.index): v.owner for v in conf.vfs}
    assert owners[(CX, 1)] == "cyborg" and owners[(CX, 2)] == "nova"
    assert owners[("0000:3b:00.1", 3)] == "reserved"
    nova = {s["address"] for s in conf.device_specs}
    assert nova == {v.address for v in conf.vfs if v.owner == "nova"}
    assert len(nova) == 10
    assert all(s["physical_network"] for s in conf.device_specs)
    assert {s["address"] for s in conf.device_specs if s.get("remote_managed") == "true"} == {
        v.address for v in conf.vfs if v.pf == "0000:5e:00.0"}
    smartnic = dict(conf.cyborg[0][1])
    # ens2f0 is all Nova's: absent from Cyborg's devices and mappings
    assert smartnic["devices"] == "0000:3b:00.0#0-1,0000:3b:00.1#0-2"
    assert smartnic["physical_device_mappings"] == "physnet1:0000:3b:00.0,physnet2:0000:3b:00.1"
    # what Cyborg's driver would scan with these lines is exactly the Cyborg-owned VFs
    cyborg_file = tmp_path / "cyborg.conf"
    cyborg_file.write_text(snippet.ini_text(conf, ("cyborg",)))
    claimed = ownership.cyborg_claims(str(cyborg_file), str(tree), "compute-0")
    assert claimed == {v.address for v in conf.vfs if v.owner == "cyborg"}


def test_predicted_vf_addresses_are_where_the_kernel_puts_vfs(host: Host, tree: Path) -> None:
    from cyborg_smartnic.cli.owners import routing

    routes = routing(str(tree), host)
    checked = 0
    for pf in host.physical_functions:
        for vf in pf.virtual_functions:
            offset, stride = routes[str(pf.address)]
            assert snippet.vf_address(pf.address, offset, stride, vf.index) == vf.address
            checked += 1
    assert checked > 10
    assert str(snippet.vf_address(PciAddress.parse("0000:3b:00.0"), 2, 1, 6)) == "0000:3b:01.0"


def test_nova_reads_host_conf_lines_as_the_nova_owned_vfs(tmp_path: Path, tree: Path,
                                                          host: Host,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    code = main(["host", "conf", "--service", "nova", "--sysfs-root", str(tree),
                 str(_split_config(tmp_path))])
    out = capsys.readouterr().out
    assert code == 0
    nova_conf = tmp_path / "nova.conf"
    nova_conf.write_text(out)
    devices = functions(host)
    by_nova = nova_matches(tree, [as_nova(d) for d in devices], nova_conf=nova_conf)
    matched = {devices[i].address for found in by_nova for i in found}
    conf = snippet.generate(load_host_config(_split_config(tmp_path)), host)
    assert matched == {v.address for v in conf.vfs if v.owner == "nova"}
    assert all(len(found) == 1 for found in by_nova)  # one spec, one VF: never a PF's others
    # and our reading of the same file agrees
    ours = novaspec.parse_values(novaspec.read_device_spec(str(nova_conf)), host)
    assert len(ours) == len(by_nova) == 10


def test_conf_json_has_both_files(tmp_path: Path, tree: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["host", "conf", "-f", "json", "--sysfs-root", str(tree),
                 str(_split_config(tmp_path))])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["cyborg.conf"]["smartnic"]["devices"] == "0000:3b:00.0#0-1,0000:3b:00.1#0-2"
    assert {"address": "0000:3b:00.4", "physical_network": "physnet1"} in \
        data["nova.conf"]["pci"]["device_spec"]
    assert {v["owner"] for v in data["vfs"]} == {"cyborg", "nova", "reserved"}


def test_a_pf_without_cyborg_vfs_is_not_an_empty_devices_line(tmp_path: Path, tree: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    config = tmp_path / "all-nova.yaml"
    config.write_text('devices:\n  - netdev: ens1f0\n    physnet: p1\n    vf_owners:\n'
                      '      "0-3": nova\n')
    assert main(["host", "conf", "--sysfs-root", str(tree), str(config)]) == 0
    out = capsys.readouterr().out
    assert "devices =" not in out  # empty [smartnic] devices would select every PF
    assert "leave smartnic out of cyborg-agent's [agent] enabled_drivers" in out


# ------------------------------------------------------------------------ doctor

def _doctor(capsys: pytest.CaptureFixture[str], tree: Path, nova: Path, cyborg: Path,
            *extra: str) -> tuple[int, list[dict[str, str]]]:
    code = main(["host", "doctor", "-f", "json", "--sysfs-root", str(tree), "--nova-conf",
                 str(nova), "--cyborg-conf", str(cyborg), *extra])
    checks = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["check"] == "vf owners"]
    return code, checks


CYBORG_ALL = "[smartnic]\ndevices = 0000:3b:00.0,0000:3b:00.1\n"
SAYS_NOVA = ('devices:\n  - netdev: ens1f0\n    physnet: physnet1\n    vf_owners:\n'
             '      "{}": nova\n  - netdev: ens1f1\n')


@pytest.mark.parametrize("case", [
    # the partition host conf writes: clean
    ("2-3", "[smartnic]\ndevices = 0000:3b:00.0#0-1,0000:3b:00.1\n",
     '[pci]\ndevice_spec = {"address": "0000:3b:00.4", "physical_network": "physnet1"}\n'
     'device_spec = {"address": "0000:3b:00.5", "physical_network": "physnet1"}\n',
     ["ok"], "8 VF(s): 6 Cyborg's, 2 Nova's, 0 held back"),
    # Nova's whitelist left on the PF Cyborg serves: every VF twice
    (None, CYBORG_ALL, '[pci]\ndevice_spec = {"address": "0000:3b:00.0", '
                 '"physical_network": "physnet1"}\n',
     ["fail"], "0000:3b:00.0: VF(s) 0-3 (0000:3b:00.2, 0000:3b:00.3, 0000:3b:00.4 and 1 more)"
               " are claimed by Cyborg"),
    # the deprecated option name still counts (Nova reads it)
    (None, CYBORG_ALL, '[pci]\npassthrough_whitelist = {"vendor_id": "15b3", "product_id": "101e",'
                 ' "devname": "ens1f1"}\n', ["fail"], "0000:3b:00.1: VF(s) 0-3"),
    # a VF nobody claims
    (None, "[smartnic]\ndevices = 0000:3b:00.0#0-2,0000:3b:00.1\n", "[pci]\n", ["fail"],
     "0000:3b:00.0: VF(s) 3 (0000:3b:00.5) are claimed by nobody"),
    # a Nova VF without physical_network: Nova gives it to no port
    ("3", "[smartnic]\ndevices = 0000:3b:00.0#0-2,0000:3b:00.1\n",
     '[pci]\ndevice_spec = {"address": "0000:3b:00.5"}\n', ["warn"], "no physical_network"),
    # the files agree with each other but not with host.yaml
    ("0-1", "[smartnic]\ndevices = 0000:3b:00.0#0-1,0000:3b:00.1\n",
     '[pci]\ndevice_spec = {"address": "0000:3b:00.4", "physical_network": "physnet1"}\n'
     'device_spec = {"address": "0000:3b:00.5", "physical_network": "physnet1"}\n',
     ["fail", "fail"], "0000:3b:00.0: VF(s) 0-1 are scheduled by cyborg, host.yaml says nova"),
])
def test_doctor_checks_the_real_config_files(tmp_path: Path, tree: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             case: tuple[str | None, str, str, list[str], str]
                                             ) -> None:
    owners, cyborg, nova, status, detail = case
    config = tmp_path / "host.yaml"  # only the two ConnectX ports, as the files above
    config.write_text(SAYS_NOVA.format(owners) if owners else
                      'devices:\n  - netdev: ens1f0\n  - netdev: ens1f1\n')
    (tmp_path / "cyborg.conf").write_text(cyborg)
    (tmp_path / "nova.conf").write_text(nova)
    code, checks = _doctor(capsys, tree, tmp_path / "nova.conf", tmp_path / "cyborg.conf",
                           str(config))
    assert [c["status"] for c in checks] == status, checks
    assert detail in checks[0]["detail"]
    if status == ["fail"]:
        assert code == 1 and checks[0]["remedy"]


def test_doctor_without_host_yaml_judges_every_vf(tmp_path: Path, tree: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cyborg.conf").write_text(CYBORG_ALL)
    (tmp_path / "nova.conf").write_text('[pci]\ndevice_spec = {"vendor_id": "8086", '
                                        '"physical_network": "physnet3"}\n')
    _, checks = _doctor(capsys, tree, tmp_path / "nova.conf", tmp_path / "cyborg.conf")
    # the E810 and X710 VFs are Nova's (vendor 8086): nothing unclaimed, nothing twice
    assert [c["status"] for c in checks] == ["ok"], checks


def test_doctor_names_a_missing_file(tmp_path: Path, tree: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cyborg.conf").write_text(CYBORG_ALL)
    code = main(["host", "doctor", "--sysfs-root", str(tree), "--nova-conf",
                 str(tmp_path / "nope.conf"), "--cyborg-conf", str(tmp_path / "cyborg.conf")])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"cyborg-smartnic: error: --nova-conf: {tmp_path / 'nope.conf'}: no such file")


def test_doctor_reserved_vfs_are_nobodys_on_purpose(tmp_path: Path, tree: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "host.yaml"
    config.write_text('devices:\n  - netdev: ens1f0\n    reserved_vfs: "3"\n'
                      '  - netdev: ens1f1\n')
    (tmp_path / "cyborg.conf").write_text("[smartnic]\ndevices = 0000:3b:00.0#0-2,0000:3b:00.1\n")
    (tmp_path / "nova.conf").write_text("[pci]\n")
    _, checks = _doctor(capsys, tree, tmp_path / "nova.conf", tmp_path / "cyborg.conf",
                        str(config))
    problems = [c for c in checks if c["status"] != "ok"]
    assert not any("0000:3b:00.0" in c["detail"] for c in problems), problems
