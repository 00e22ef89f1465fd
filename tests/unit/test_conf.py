from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from oslo_config import cfg

from cyborg_smartnic import conf


def test_list_opts_names_every_group() -> None:
    groups = dict(conf.list_opts())
    assert set(groups) == {"smartnic", "smartnic_pool:dpdk", "cyborg_smartnic_privileged",
                           "cyborg_smartnic_firmware_privileged"}
    assert {opt.name for opt in groups["cyborg_smartnic_privileged"]} >= {"helper_command"}
    assert {opt.name for opt in groups["cyborg_smartnic_firmware_privileged"]} >= {
        "helper_command", "capabilities"}
    names = {opt.name for opt in groups["smartnic"]}
    assert {"sysfs_root", "devices", "physical_device_mappings", "pools",
            "resource_class"} <= names


def test_pool_groups_read_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cyborg.conf"
    path.write_text(
        "[smartnic]\npools = dpdk\nphysical_device_mappings = physnet1:ens1f0\n"
        "[smartnic_pool:dpdk]\ndevices = ens1f0#0-3\nresource_class = CUSTOM_DPDK_VF\n")
    opts = cfg.ConfigOpts()
    conf.register_opts(opts)
    opts(args=[], default_config_files=[str(path)], use_env=False)
    conf.register_pool_opts(opts, list(opts.smartnic.pools))
    assert opts.smartnic.physical_device_mappings == ["physnet1:ens1f0"]
    assert opts["smartnic_pool:dpdk"].devices == ["ens1f0#0-3"]
    assert opts["smartnic_pool:dpdk"].resource_class == "CUSTOM_DPDK_VF"


def test_config_generator_writes_a_sample() -> None:
    generator = Path(sys.executable).with_name("oslo-config-generator")
    result = subprocess.run([str(generator), "--namespace", "cyborg_smartnic"],
                            capture_output=True, text=True, check=True)
    assert "[smartnic]" in result.stdout
    assert "#physical_device_mappings =" in result.stdout
    assert "[cyborg_smartnic_privileged]" in result.stdout
    assert "[cyborg_smartnic_firmware_privileged]" in result.stdout


def test_the_committed_config_sample_is_current() -> None:
    """If this fails: make docs (oslo-config-generator --namespace cyborg_smartnic >
    docs/cyborg-smartnic.conf.sample)."""
    generator = Path(sys.executable).with_name("oslo-config-generator")
    result = subprocess.run([str(generator), "--namespace", "cyborg_smartnic"],
                            capture_output=True, text=True, check=True)
    sample = Path(__file__).resolve().parents[2] / "docs/cyborg-smartnic.conf.sample"
    assert sample.read_text() == result.stdout


def test_the_samples_pool_group_is_one_the_code_reads(tmp_path: Path) -> None:
    """The sample's [smartnic_pool:...] section, with pools naming it, configures a pool."""
    from cyborg_smartnic.pools import load_report_config

    sample = (Path(__file__).resolve().parents[2] / "docs/cyborg-smartnic.conf.sample")
    sections = [line for line in sample.read_text().splitlines() if line.startswith("[")]
    (pool_section,) = [s for s in sections if s.startswith(f"[{conf.POOL_GROUP_PREFIX}")]
    name = pool_section[len(conf.POOL_GROUP_PREFIX) + 1:-1]
    path = tmp_path / "cyborg.conf"
    path.write_text(f"[smartnic]\nhostname = h\npools = {name}\n{pool_section}\n"
                    "devices = ens1f0#0-1\nphysnet = physnet1\n")
    opts = cfg.ConfigOpts()
    opts(args=[], default_config_files=[str(path)])
    (pool,) = load_report_config(opts).pools
    assert (pool.name, pool.physnet) == (name, "physnet1")
