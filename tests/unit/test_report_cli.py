"""``cyborg-smartnic report`` on generated trees and the bundled example host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import build_scenario


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_example_host_json_follows_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "report", "--example-host", "-f", "json")
    assert code == 0
    data = json.loads(out)
    assert [d["controlpath_id"]["cpid_info"] for d in data] == [
        "0000:18:00.0", "0000:18:00.1", "0000:3b:00.0", "0000:3b:00.1", "0000:5e:00.0",
        "0000:5e:00.1"]
    names = [dep["name"] for d in data for dep in d["deployable_list"]]
    assert names == [f"compute-0.example.org_{a}" for a in (
        "0000:18:00.0", "0000:3b:00.0", "0000:3b:00.1", "0000:5e:00.0", "0000:5e:00.1")]
    e810 = data[4]["deployable_list"][0]
    assert e810["num_accelerators"] == len(e810["attach_handle_list"]) == 8
    assert {"key": "trait_CUSTOM_SMARTNIC_FW_COMMS",
            "value": "CUSTOM_SMARTNIC_FW_COMMS"} in e810["attribute_list"]
    assert json.loads(e810["attach_handle_list"][0]["attach_info"])["physical_network"] == \
        "physnet3"


def test_table_has_one_row_per_deployable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "report", "--example-host")
    assert code == 0
    assert out.startswith("Provider compute-0.example.org (from [smartnic] hostname)\n"
                          "6 devices, 5 deployables, 24 VFs\n")
    assert "| 0000:18:00.1 |" in out and "(no VFs to report)" in out
    assert out.count("(default)") == 5


def test_pools_from_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_scenario(tmp_path / "host", "cx6dx_switchdev")
    conf = tmp_path / "cyborg.conf"
    conf.write_text("[smartnic]\nhostname = cn7\npools = dpdk\n"
                    "physical_device_mappings = physnet1:ens1f0\n"
                    "[smartnic_pool:dpdk]\ndevices = ens1f0#0-1\n"
                    "resource_class = CUSTOM_DPDK_VF\n")
    code, out, _ = _run(capsys, "report", "--sysfs-root", str(tmp_path / "host"),
                        "--config-file", str(conf), "-f", "json")
    assert code == 0
    deployables = {dep["name"]: dep for d in json.loads(out) for dep in d["deployable_list"]}
    assert sorted(deployables) == ["cn7_0000:3b:00.0", "cn7_0000:3b:00.0_dpdk",
                                   "cn7_0000:3b:00.1"]
    dpdk = deployables["cn7_0000:3b:00.0_dpdk"]
    assert dpdk["num_accelerators"] == 2
    assert {"key": "rc", "value": "CUSTOM_DPDK_VF"} in dpdk["attribute_list"]
    assert {"key": "trait_CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI",
            "value": "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"} in dpdk["attribute_list"]


@pytest.mark.parametrize(("text", "message"), [
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = ens1f0\nresource_class = FOO\n",
     "cyborg-smartnic: error: [smartnic_pool:dpdk] resource_class: 'FOO' is not a CUSTOM_* "
     "name"),
    ("[smartnic]\npools = a,b\n[smartnic_pool:a]\ndevices = ens1f0#0-1\n"
     "[smartnic_pool:b]\ndevices = 15b3:101d#1\n",
     "cyborg-smartnic: error: [smartnic_pool:b] devices: VF 1 of 0000:3b:00.0 (ens1f0) is "
     "already in pool 'a'"),
])
def test_bad_config_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           text: str, message: str) -> None:
    build_scenario(tmp_path / "host", "cx6dx_switchdev")
    conf = tmp_path / "cyborg.conf"
    conf.write_text(text)
    code, out, err = _run(capsys, "report", "--sysfs-root", str(tmp_path / "host"),
                          "--config-file", str(conf))
    assert code == 1
    assert out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_example_host_and_sysfs_root_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["report", "--example-host", "--sysfs-root", "/tmp"])
    assert caught.value.code == 2
