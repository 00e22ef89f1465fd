"""``cyborg-smartnic snapshot``: the command, and every other command on an unpacked snapshot."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic import conf as smartnic_conf
from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery import snapshot as snap
from cyborg_smartnic.discovery.snapshot import unpack
from cyborg_smartnic.hostgen import build_scenario, example_conf, scratch_dir

HOST_YAML = Path(__file__).resolve().parents[2] / "deploy" / "host.example.yaml"


@pytest.fixture
def work() -> Iterator[Path]:
    with scratch_dir("snapshot-cli-") as path:
        yield path


@pytest.fixture
def example(work: Path) -> tuple[Path, Path]:
    """The example host and its [smartnic] options (hostname compute-0.example.org)."""
    tree = build_scenario(work / "tree", "example")
    conf = work / "cyborg.conf"
    conf.write_text(example_conf(tree))
    return tree.root, conf


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main([*argv, "-f", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_snapshot_then_every_command_on_it(work: Path, example: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root, conf = example
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1715938200")
    archive = work / "compute-0.tar.gz"
    assert main(["snapshot", "-o", str(archive), "--sysfs-root", str(root),
                 "--config-file", str(conf)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"wrote {archive} (")
    assert "compute-0.example.org, 6 PFs, 24 VFs" in out
    assert out.endswith("unpacks to snapshot-compute-0.example.org/")
    assert archive.stat().st_mode & 0o777 == 0o600
    unpacked = unpack(archive, work / "unpacked")
    physnets = conf.read_text().split("physical_device_mappings = ")[1].strip()
    mappings = work / "physnets.conf"  # the same physnets, but no hostname option
    mappings.write_text(f"[smartnic]\nphysical_device_mappings = {physnets}\n")
    results = {}
    for command in (["discover"], ["report"]):
        live = _json(capsys, *command, "--sysfs-root", str(root), "--config-file", str(conf))
        recorded = _json(capsys, *command, "--sysfs-root", str(unpacked), "--config-file",
                         str(mappings))
        assert recorded == live, command
        results[command[0]] = live
    # A snapshot records no processes: the same plan, but nothing says a VF is free, so the
    # steps that destroy VFs are refused on it.
    plan = ["host", "plan", str(HOST_YAML), "-f", "json"]
    results["host"] = _json(capsys, *plan[:3], "--sysfs-root", str(root), "--config-file",
                            str(conf))
    assert main([*plan, "--sysfs-root", str(unpacked), "--config-file", str(mappings)]) == 1
    recorded_plan = json.loads(capsys.readouterr().out)
    assert isinstance(results["host"], dict)
    live_steps, recorded_steps = results["host"]["steps"], recorded_plan["steps"]
    assert [{**s, "refused": None} for s in recorded_steps] == live_steps
    assert all(("records no view of the host's processes" in (s["refused"] or ""))
               == bool(s["destroys_vfs"]) for s in recorded_steps)
    manifest = json.loads((unpacked / "snapshot.json").read_text())
    assert manifest["created"] == "2024-05-17T09:30:00Z"
    assert {"format": 1, **manifest["discover"]} == results["discover"]
    report = results["report"]
    assert isinstance(report, list) and len(report) == 6
    assert results["host"]  # a real plan: the example host.yaml changes VF counts


def test_unchanged_host_gives_identical_archives(work: Path, example: tuple[Path, Path],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root, conf = example
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1715938200")
    paths = [work / "a.tar.gz", work / "b.tar.gz"]
    for path in paths:
        assert main(["snapshot", "-o", str(path), "--sysfs-root", str(root),
                     "--config-file", str(conf)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    capsys.readouterr()


def test_unwritable_output_is_one_line_exit_1(work: Path, example: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = example
    target = work / "no-such-dir" / "x.tar.gz"
    assert main(["snapshot", "-o", str(target), "--sysfs-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err == f"cyborg-smartnic: error: {target}: No such file or directory\n"
    assert not (work / "no-such-dir").exists()


def test_output_is_required_and_help_warns_about_identifiers(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["snapshot"])
    assert exc.value.code == 2
    assert "-o/--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["snapshot", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "MAC addresses, board serial numbers" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "contains MAC addresses and serial numbers" in " ".join(
        capsys.readouterr().out.split())


def test_tar_can_unpack_it_and_discover_reads_it(work: Path, example: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """What a user does with a bug report: ``tar -xzf`` and ``--sysfs-root``."""
    root, conf = example
    archive = work / "r.tar.gz"
    assert main(["snapshot", "-o", str(archive), "--sysfs-root", str(root),
                 "--config-file", str(conf)]) == 0
    capsys.readouterr()
    dest = work / "by-tar"
    dest.mkdir()
    tar = subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=False,
                         capture_output=True, text=True)
    assert tar.returncode == 0, tar.stderr
    data = _json(capsys, "discover", "--sysfs-root", str(dest / "snapshot-compute-0.example.org"))
    assert isinstance(data, dict) and data["hostname"] == "compute-0.example.org"
    assert len(data["physical_functions"]) == 6
    with tarfile.open(archive) as opened:
        assert all(not m.issym() or not m.linkname.startswith("/") for m in opened)


def test_console_script_snapshot_of_this_machine(work: Path) -> None:
    """The installed command on the real ``/`` (read only) succeeds and stays small."""
    target = work / "here.tar.gz"
    done = subprocess.run([sys.executable, "-m", "cyborg_smartnic.cli.main", "snapshot",
                           "-o", str(target)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"wrote {target} (")
    assert "Traceback" not in done.stderr
    assert 0 < target.stat().st_size < 256 * 1024


def test_snapshot_records_the_smartnic_options_for_its_replay(
        work: Path, example: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A replay without --config-file keeps the physnets and pools; --config-file is layered
    on the recorded options; host paths are not recorded."""
    root, conf = example
    options = work / "pools.conf"
    options.write_text(conf.read_text() + "pools = dpdk\nstate_file = /var/lib/x.json\n"
                       "extra_traits = CUSTOM_A\n"
                       "[smartnic_pool:dpdk]\ndevices = ens1f0#0-1\nphysnet = physdpdk\n")
    archive = work / "c.tar.gz"
    assert main(["snapshot", "-o", str(archive), "--sysfs-root", str(root),
                 "--config-file", str(options)]) == 0
    capsys.readouterr()
    unpacked = unpack(archive, work / "unpacked")
    recorded = (unpacked / "etc/smartnic.conf").read_text()
    assert "physical_device_mappings = physnet1:ens1f0," in recorded
    assert "[smartnic_pool:dpdk]" in recorded and "physnet = physdpdk" in recorded
    assert "state_file" not in recorded and "sysfs_root" not in recorded
    assert json.loads((unpacked / "snapshot.json").read_text())["config"] == "etc/smartnic.conf"
    live = _json(capsys, "report", "--sysfs-root", str(root), "--config-file", str(options))
    assert _json(capsys, "report", "--sysfs-root", str(unpacked)) == live
    assert "CUSTOM_PHYSNET_PHYSDPDK" in json.dumps(live)
    layered = work / "layer.conf"
    layered.write_text("[smartnic]\nextra_traits = CUSTOM_B\n")
    replay = json.dumps(_json(capsys, "report", "--sysfs-root", str(unpacked),
                              "--config-file", str(layered)))
    assert "CUSTOM_B" in replay and "CUSTOM_A" not in replay
    assert "CUSTOM_PHYSNET_PHYSNET2" in replay and "CUSTOM_PHYSNET_PHYSDPDK" in replay


def test_recorded_options_read_back_as_written(work: Path) -> None:
    """Values are written so oslo.config reads them back unchanged ('$' is not a reference)."""
    source = work / "in.conf"
    source.write_text("[smartnic]\nhostname = a$$b\nuse_devlink = false\n"
                      "devices = 15b3:101d,ens2f0#0-3\n")
    first = cfg.ConfigOpts()
    smartnic_conf.register_opts(first)
    first(args=[], default_config_files=[str(source)], use_env=False)
    text = snap.recorded_options(first)
    assert "resource_class" not in text  # defaults are left out
    again = work / "again.conf"
    again.write_text(text)
    second = cfg.ConfigOpts()
    smartnic_conf.register_opts(second)
    second(args=[], default_config_files=[str(again)], use_env=False)
    for name in ("hostname", "use_devlink", "devices"):
        assert second.smartnic[name] == first.smartnic[name]
    assert second.smartnic.hostname == "a$b"
