"""``cyborg-smartnic discover``: JSON contract, table, exit codes, the bundled example host."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_pathology, build_scenario, scratch_dir

PF_KEYS = {"address", "vendor_id", "device_id", "model", "driver", "numa_node", "netdev",
           "eswitch_mode", "firmware", "physnet", "sriov", "virtual_functions"}
VF_KEYS = {"address", "index", "device_id", "driver", "netdev", "iommu_group"}


@pytest.fixture(scope="module")
def example() -> Iterator[Path]:
    with scratch_dir() as path:
        build_scenario(path, "example")
        yield path


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "cyborg.conf"
    path.write_text("[smartnic]\nhostname = node-1\n"
                    "physical_device_mappings = physnet1:ens1f0,physnet3:0000:5e:00.0\n")
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["discover", *argv, "-f", "json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_json_contract(example: Path, conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "--sysfs-root", str(example), "--config-file", str(conf))
    assert {"hostname", "physical_functions", "skipped"} <= set(data)
    assert data["hostname"] == "node-1"
    pfs = data["physical_functions"]
    assert isinstance(pfs, list) and len(pfs) == 6
    for pf in pfs:
        assert set(pf) >= PF_KEYS
        assert set(pf["firmware"]) == {"version", "mode"}
        assert set(pf["sriov"]) == {"total_vfs", "num_vfs"}
        for vf in pf["virtual_functions"]:
            assert set(vf) >= VF_KEYS
    cx6 = next(pf for pf in pfs if pf["address"] == "0000:3b:00.0")
    assert {k: cx6[k] for k in sorted(PF_KEYS - {"virtual_functions"})} == {
        "address": "0000:3b:00.0", "device_id": "101d", "driver": "mlx5_core",
        "eswitch_mode": "switchdev", "firmware": {"version": "22.36.1010", "mode": None},
        "model": "ConnectX-6 Dx", "netdev": "ens1f0", "numa_node": 0, "physnet": "physnet1",
        "sriov": {"total_vfs": 8, "num_vfs": 4}, "vendor_id": "15b3"}
    assert {k: cx6["virtual_functions"][0][k] for k in sorted(VF_KEYS)} == {
        "address": "0000:3b:00.2", "device_id": "101e", "driver": "vfio-pci",
        "index": 0, "iommu_group": 29, "netdev": None}
    e810 = next(pf for pf in pfs if pf["address"] == "0000:5e:00.0")
    assert (e810["physnet"], e810["firmware"]) == ("physnet3", {"version": "4.40",
                                                                "mode": "comms"})
    assert data["skipped"] == [{"address": "0000:01:00.0", "reason": (
        "8086:1521 is not a catalogued SmartNIC model: select it in [smartnic] devices or add "
        "it to [smartnic] extra_models")}]


def test_yaml_equals_json(example: Path, conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    as_json = _json(capsys, "--sysfs-root", str(example), "--config-file", str(conf))
    assert main(["discover", "--sysfs-root", str(example), "--config-file", str(conf),
                 "-f", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == as_json


def test_table(example: Path, conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--sysfs-root", str(example), "--config-file", str(conf)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Host node-1: 6 SmartNIC PFs, 24 VFs, IOMMU on\n")
    row = next(line for line in out.splitlines() if "0000:5e:00.0" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["0000:5e:00.0", "ens2f0", "E810", "ice", "legacy", "4.40 (comms)",
                     "8/128 (4 vfio)", "physnet3", "1"]
    assert "0000:3b:00.2" not in out  # VF rows only with -v
    assert "Skipped:\n  0000:01:00.0: 8086:1521 is not a catalogued" in out


def test_table_verbose_lists_vfs(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--sysfs-root", str(example), "-v"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "| 0000:3b:00.2" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        "0000:3b:00.0", "0", "0000:3b:00.2", "101e", "vfio-pci", "", "29"]


def test_selector_config(example: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sel.conf"
    path.write_text("[smartnic]\nhostname = h\ndevices = ens1f0#0-1,3\n")
    data = _json(capsys, "--sysfs-root", str(example), "--config-file", str(path))
    (pf,) = data["physical_functions"]  # type: ignore[misc]
    assert [vf["index"] for vf in pf["virtual_functions"]] == [0, 1, 3]
    assert {"address": "0000:3b:00.4", "reason": "VF index 2 not in selector ens1f0#0-1,3"} \
        in data["skipped"]  # type: ignore[operator]


@pytest.mark.parametrize(("body", "message"), [
    ("devices = 15b3:10", "[smartnic] devices: unknown selector '15b3:10'"),
    ("physical_device_mappings = physnet1", "[smartnic] physical_device_mappings: "),
    ("extra_models = nonsense", "[smartnic] extra_models: 'nonsense' is not"),
    ("use_devlink = perhaps", "[smartnic] use_devlink: Unexpected boolean value 'perhaps'"),
])
def test_bad_config_is_one_line_exit_1(example: Path, tmp_path: Path, body: str, message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(f"[smartnic]\n{body}\n")
    assert main(["discover", "--sysfs-root", str(example), "--config-file", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cyborg-smartnic: error: ")
    assert message in lines[0]


def test_missing_config_file_exit_1(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--sysfs-root", str(example), "--config-file",
                 "/nonexistent/cyborg.conf"]) == 1
    assert "cyborg-smartnic: error: --config-file: " in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["discover", "-f", "xml"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["discover", "--example-host", "--sysfs-root", "/tmp"])
    assert caught.value.code == 2
    assert "not allowed with argument --example-host" in capsys.readouterr().err


def test_broken_host_still_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with scratch_dir() as root:
        build_pathology(root, "vanished_vf")
        data = _json(capsys, "--sysfs-root", str(root))
    assert [s["address"] for s in data["skipped"]] == ["0000:3b:00.4"]  # type: ignore[index]


def test_example_host_out_of_the_box(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "--example-host")
    assert data["hostname"] == "compute-0.example.org"
    physnets = {pf["address"]: pf["physnet"]
                for pf in data["physical_functions"]}  # type: ignore[union-attr]
    assert physnets == {"0000:18:00.0": "physnet5", "0000:18:00.1": None,
                        "0000:3b:00.0": "physnet1", "0000:3b:00.1": "physnet2",
                        "0000:5e:00.0": "physnet3", "0000:5e:00.1": "physnet4"}


def test_example_host_with_own_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--config-file is layered on the example's options: one option changes, the physnet
    mappings stay; an option set empty there is cleared."""
    path = tmp_path / "own.conf"
    path.write_text("[smartnic]\nhostname = mine\n")
    data = _json(capsys, "--example-host", "--config-file", str(path))
    assert data["hostname"] == "mine"
    physnets = {pf["physnet"] for pf in data["physical_functions"]}  # type: ignore[union-attr]
    assert physnets == {"physnet1", "physnet2", "physnet3", "physnet4", "physnet5", None}
    cleared = tmp_path / "cleared.conf"
    cleared.write_text("[smartnic]\nphysical_device_mappings =\n")
    data = _json(capsys, "--example-host", "--config-file", str(path), "--config-file",
                 str(cleared))
    assert data["hostname"] == "mine"
    assert {pf["physnet"] for pf in data["physical_functions"]} == {None}  # type: ignore[union-attr]
