"""Bad numbers and bad bytes through the real command line: exit 1, one FILE:LINE:COL line
naming the field (plus the "nothing was done" summary), never a traceback.

Each case runs ``cyborg-smartnic`` in a subprocess, as an operator would, so an exception
that escapes ``main()`` shows up as the traceback it would print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cyborg_smartnic.host.config import InvalidHostConfig, load_host_config
from cyborg_smartnic.hostgen import build_scenario, example_conf, scratch_dir
from cyborg_smartnic.profiles import spec
from cyborg_smartnic.profiles.loader import check_profiles
from cyborg_smartnic.yamlsource import Document, is_integer, validate_with_schema

REPO = Path(__file__).resolve().parents[2]
HOST_YAML = (REPO / "deploy" / "host.example.yaml").read_text()
PROFILE = (REPO / "profiles" / "dpdk.yaml").read_text()
SUMMARY = re.compile(r"^cyborg-smartnic: error: \d+ error\(s\) in .*; nothing was done$")
PREFIX = "cyborg-smartnic: error: "


@dataclass(frozen=True)
class Case:
    kind: str  # "host", "profile" or "conf"
    old: str
    new: str
    where: str  # "LINE:COL: field: " the one error line must start with (after FILE:)
    reason: str  # a part of the message


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


HUGE_HEX = "0x" + "f" * 5000
HUGE_BASE60 = "59:" * 20 + "59"  # short enough to parse, 124 bits
HUGE_DECIMAL = "9" * 5000  # past Python's 4300-digit int conversion limit

CASES = {
    "host-vf-count-float": Case("host", "vf_count: 8\n", "vf_count: 6.0\n",
                                "14:5: devices[0].vf_count: ",
                                "expected an integer, got the number 6.0 (write 6"),
    "host-reserved-float": Case("host", 'reserved_vfs: "3"', "reserved_vfs: 7.0",
                                "23:5: devices[1].reserved_vfs: ",
                                "got the number 7.0 (write 7"),
    "host-node-float": Case("host", "  - node: 0\n", "  - node: 0.0\n",
                            "48:5: hugepages[0].node: ", "got the number 0.0 (write 0"),
    "host-count-float": Case("host", "count: 16", "count: 16.0",
                             "50:5: hugepages[0].count: ", "got the number 16.0"),
    "host-size-float": Case("host", "size: 1G", "size: 1048576.0",
                            "49:5: hugepages[0].size: ", "got the number 1048576.0"),
    "host-vf-count-bool": Case("host", "vf_count: 8\n", "vf_count: yes\n",
                               "14:5: devices[0].vf_count: ",
                               "expected an integer, got a boolean"),
    "host-huge-hex": Case("host", "vf_count: 8\n", f"vf_count: {HUGE_HEX}\n",
                          "14:15: devices[0].vf_count: ", "is too large (more than 63 bits)"),
    "host-huge-base60": Case("host", "vf_count: 8\n", f"vf_count: {HUGE_BASE60}\n",
                             "14:15: devices[0].vf_count: ", "is too large"),
    "host-huge-decimal": Case("host", "vf_count: 8\n", f"vf_count: {HUGE_DECIMAL}\n",
                              "14:15: devices[0].vf_count: ", "is too large"),
    "host-driver-underscore": Case("host", '"0-3": vfio-pci\n      "4-7": default\n'
                                           "    eswitch_mode",
                                   '"0-3": vfio_pci\n      "4-7": default\n    eswitch_mode',
                                   '16:7: devices[0].vf_drivers.0-3: ',
                                   "not 'vfio_pci'; did you mean 'vfio-pci'?"),
    "profile-vcpus-float": Case("profile", "vcpus: 8", "vcpus: 8.0",
                                "17:5: flavors[0].vcpus: ", "got the number 8.0 (write 8"),
    "profile-ram-float": Case("profile", "ram: 8192", "ram: 8192.0",
                              "18:5: flavors[0].ram: ", "got the number 8192.0"),
    "profile-numa-float": Case("profile", "numa_nodes: 1", "numa_nodes: 1.0",
                               "11:3: instance.numa_nodes: ", "got the number 1.0"),
    "profile-hugepages-float": Case("profile", "hugepages: 1G", "hugepages: 1048576.0",
                                    "9:3: instance.hugepages: ", "got the number 1048576.0"),
    "profile-vf-count-float": Case("profile", "vf_count: 2", "vf_count: 2.0",
                                   "6:5: groups[0].vf_count: ", "got the number 2.0"),
    "profile-huge-hex": Case("profile", "vf_count: 2", f"vf_count: {HUGE_HEX}",
                             "6:15: groups[0].vf_count: ", "is too large"),
    "profile-huge-decimal": Case("profile", "ram: 8192", f"ram: {HUGE_DECIMAL}",
                                 "18:10: flavors[0].ram: ", "is too large"),
    "profile-driver-underscore": Case("profile", "vf_driver: vfio-pci", "vf_driver: vfio_pci",
                                      "7:5: groups[0].vf_driver: ",
                                      "not 'vfio_pci'; did you mean 'vfio-pci'?"),
    "conf-not-utf8": Case("conf", "", "", "6:23: (file): ", "not valid UTF-8 (byte 0xff)"),
}


@pytest.fixture(scope="module")
def tree() -> Iterator[tuple[Path, str]]:
    with scratch_dir("input-errors-") as work:
        built = build_scenario(work / "tree", "example")
        yield built.root, example_conf(built)


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "cyborg_smartnic.cli.main", *argv],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_1(name: str, tree: tuple[Path, str],
                                      tmp_path: Path) -> None:
    case = CASES[name]
    root, conf = tree
    if case.kind == "host":
        path = tmp_path / "host.yaml"
        path.write_text(_edit(HOST_YAML, case.old, case.new))
        done = _run("host", "plan", "--sysfs-root", str(root), str(path))
    elif case.kind == "profile":
        path = tmp_path / "profile.yaml"
        path.write_text(_edit(PROFILE, case.old, case.new))
        done = _run("profile", "render", "-f", "shell", str(path))
    else:
        path = tmp_path / "cyborg.conf"
        path.write_bytes(conf.encode() + b"extra_traits = CUSTOM_\xff\n")
        done = _run("discover", "--sysfs-root", str(root), "--config-file", str(path))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = [line.removeprefix(PREFIX) for line in done.stderr.splitlines()]
    located = [line for line in lines if line.startswith(f"{path}:")]
    assert len(located) == 1, done.stderr
    assert located[0].startswith(f"{path}:{case.where}"), located[0]
    assert case.reason in located[0]
    assert all(line in located or SUMMARY.match(PREFIX + line) for line in lines), lines


def test_integers_in_output_are_integers(tmp_path: Path) -> None:
    """The example profile renders 8, 8192 and 1: never 8.0 (Nova refuses --vcpus 8.0)."""
    path = tmp_path / "dpdk.yaml"
    path.write_text(PROFILE)
    done = _run("profile", "render", "-f", "shell", str(path))
    assert done.returncode == 0, done.stderr
    assert "--vcpus 8 --ram 8192 --disk 20" in done.stdout
    assert "hw:numa_nodes=1 " in done.stdout
    assert not re.search(r"\d\.0\b", done.stdout)


@pytest.mark.parametrize("value", [6.0, 6.5, True, False, None, "6"])
def test_schema_integer_means_integer(value: object) -> None:
    """jsonschema's own "integer" accepts 6.0; ours (one check for every schema) does not."""
    doc = Document(file="f.yaml", data={"n": value}, positions={(): (1, 1), ("n",): (1, 1)})
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    errors = validate_with_schema(doc, schema)
    assert [e.kwargs["field"] for e in errors] == ["n"]
    assert not is_integer(value)
    assert validate_with_schema(Document(file="f.yaml", data={"n": 6}), schema) == []
    assert is_integer(6)


@pytest.mark.parametrize("name", ["vfio_pci", "VFIO-PCI", "Vfio-Pci", "vfiopci", "vfio"])
def test_one_driver_name_check_for_profiles_and_host(name: str, tmp_path: Path) -> None:
    """host.yaml and profiles give the same answer for the same spelling."""
    problem = spec.vf_driver_problem(name, spec.known_vf_drivers())
    assert problem is not None and "vfio-pci" in problem
    host = tmp_path / "host.yaml"
    host.write_text(_edit(HOST_YAML, '"0-3": vfio-pci\n      "4-7": default\n    eswitch_mode',
                          f'"0-3": {name}\n      "4-7": default\n    eswitch_mode'))
    profile = tmp_path / "profile.yaml"
    profile.write_text(_edit(PROFILE, "vf_driver: vfio-pci", f"vf_driver: {name}"))
    with pytest.raises(InvalidHostConfig) as host_errors:
        load_host_config(host)
    _, profile_errors = check_profiles([profile])
    assert [e.kwargs["reason"] for e in host_errors.value.errors] == [problem]
    # (the profile schema also refuses upper case: the same problem comes on top of that)
    assert problem in [e.kwargs["reason"] for e in profile_errors]


def test_exact_driver_names_pass() -> None:
    for name in spec.known_vf_drivers():
        assert spec.vf_driver_problem(name, spec.known_vf_drivers()) is None


def test_config_file_from_a_pipe(tree: tuple[Path, str]) -> None:
    """``--config-file <(...)``: a pipe is read once, by oslo.config; bad bytes in it are
    still one line."""
    root, _ = tree
    command = (f"{sys.executable} -m cyborg_smartnic.cli.main report -f json "
               f"--sysfs-root {root} --config-file <(printf '[smartnic]\\nextra_traits = %s\\n' "
               f"\"$1\")")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    good = subprocess.run(["bash", "-c", command, "bash", "CUSTOM_PIPE"], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert good.returncode == 0, good.stderr
    assert "CUSTOM_PIPE" in good.stdout
    bad = subprocess.run([b"bash", b"-c", command.encode(), b"bash", b"CUSTOM_\xff"],
                         capture_output=True, env=env, timeout=120, check=False)
    assert bad.returncode == 1
    errors = [line for line in bad.stderr.decode().splitlines() if "error" in line]
    assert errors == ["cyborg-smartnic: error: --config-file: not valid UTF-8 (byte 0xff)"]
