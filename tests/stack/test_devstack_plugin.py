"""deploy/devstack: run the plugin's phases under a stand-in of devstack's functions.

Devstack itself cannot run here, so its helpers (iniset, iniget, setup_develop,
restart_service, ...) are small shell functions; iniset/iniget edit a real ini file, which
is then read back with oslo.config and the project's own option definitions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic import conf as smartnic_conf

REPO = Path(__file__).resolve().parents[2]
DEVSTACK = REPO / "deploy" / "devstack"

# Just enough of devstack's functions (functions-common, inc/ini-config, inc/python).
FAKE_DEVSTACK = r"""
set -eu
ENABLED_SERVICES=" cyborg cyborg-api cyborg-cond cyborg-agent "
function trueorfalse {
    local default=$1 name=$2 value
    value=${!name:-$default}
    case "${value,,}" in 1|yes|true|on) echo True ;; *) echo False ;; esac
}
function define_plugin { echo "define_plugin $*" >> "$CALLS"; }
function plugin_requires { echo "plugin_requires $*" >> "$CALLS"; }
function enable_service { ENABLED_SERVICES+=" $* "; }
function is_service_enabled {
    local s
    for s in "$@"; do [[ "$ENABLED_SERVICES" == *" $s "* ]] && return 0; done
    return 1
}
function echo_summary { :; }
function die { shift; echo "die: $*" >&2; exit 3; }
function setup_develop { echo "setup_develop $*" >> "$CALLS"; }
function restart_service { echo "restart_service $*" >> "$CALLS"; }
function pip_uninstall { echo "pip_uninstall $*" >> "$CALLS"; }
function iniset { "$PY" "$INI_TOOL" set "$@"; echo "iniset $2 $3" >> "$CALLS"; }
function iniget { "$PY" "$INI_TOOL" get "$@"; }
source "$PLUGIN_DIR/settings"
for phase in "stack install" "stack post-config" "stack extra"; do
    source "$PLUGIN_DIR/plugin.sh" $phase
done
"""

INI_TOOL = r"""
import configparser, sys
action, path, section, key = sys.argv[1:5]
parser = configparser.RawConfigParser()
parser.optionxform = str
parser.read(path)
if action == "get":
    print(parser.get(section, key, fallback=""))
else:
    if not parser.has_section(section):
        parser.add_section(section)
    parser.set(section, key, sys.argv[5])
    with open(path, "w") as handle:
        parser.write(handle)
"""


def run_plugin(tmp_path: Path, **variables: str) -> tuple[subprocess.CompletedProcess[str],
                                                           Path, list[str]]:
    conf = tmp_path / "cyborg.conf"
    if not conf.exists():
        conf.write_text("[agent]\nenabled_drivers = fake_driver\n")
    calls = tmp_path / "calls"
    calls.write_text("")
    tool = tmp_path / "ini_tool.py"
    tool.write_text(INI_TOOL)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CALLS": str(calls),
           "PY": sys.executable, "INI_TOOL": str(tool), "PLUGIN_DIR": str(DEVSTACK),
           "CYBORG_CONF_FILE": str(conf), "DEST": str(tmp_path), **variables}
    done = subprocess.run(["bash", "-c", FAKE_DEVSTACK], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    return done, conf, calls.read_text().splitlines()


def read_conf(path: Path) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    smartnic_conf.register_opts(conf)
    conf.register_opts([cfg.ListOpt("enabled_drivers")], group="agent")
    conf(args=[], default_config_files=[str(path)], use_env=False)
    smartnic_conf.register_pool_opts(conf, list(conf.smartnic.pools))
    return conf


def test_phases_install_configure_and_restart(tmp_path: Path) -> None:
    done, path, calls = run_plugin(
        tmp_path, SMARTNIC_PHYSICAL_DEVICE_MAPPINGS="physnet1:ens1f0,physnet2:0000:3b:00.1",
        SMARTNIC_DEVICES="15b3:101d,8086:*", SMARTNIC_USE_DEVLINK="false",
        SMARTNIC_POOLS="dpdk", SMARTNIC_POOL_DPDK_DEVICES="ens1f0#0-3",
        SMARTNIC_POOL_DPDK_RESOURCE_CLASS="CUSTOM_SMARTNIC_VF_DPDK",
        SMARTNIC_POOL_DPDK_TRAITS="CUSTOM_DPDK")
    assert done.returncode == 0, done.stderr
    assert calls[0] == "define_plugin cyborg-smartnic"
    assert f"setup_develop {REPO}" in calls
    assert calls[-1] == "restart_service devstack@cyborg-agent"
    conf = read_conf(path)
    assert conf.agent.enabled_drivers == ["smartnic_driver"]
    assert conf.smartnic.physical_device_mappings == ["physnet1:ens1f0", "physnet2:0000:3b:00.1"]
    assert conf.smartnic.devices == ["15b3:101d", "8086:*"]
    assert conf.smartnic.use_devlink is False
    pool = conf["smartnic_pool:dpdk"]
    assert pool.devices == ["ens1f0#0-3"]
    assert pool.resource_class == "CUSTOM_SMARTNIC_VF_DPDK"
    assert pool.traits == ["CUSTOM_DPDK"]
    assert pool.physnet is None
    # Empty variables leave options at their defaults (nothing written).
    assert "iniset smartnic sysfs_root" not in calls
    assert conf.smartnic.sysfs_root == "/"


def test_append_keeps_other_drivers_once(tmp_path: Path) -> None:
    for _ in range(2):  # re-stacking must not append twice
        done, path, _calls = run_plugin(tmp_path, SMARTNIC_ONLY_DRIVER="False")
        assert done.returncode == 0, done.stderr
    assert read_conf(path).agent.enabled_drivers == ["fake_driver", "smartnic_driver"]


def test_pool_without_devices_stops_the_stack(tmp_path: Path) -> None:
    done, _path, calls = run_plugin(tmp_path, SMARTNIC_POOLS="kernel-net")
    assert done.returncode == 3
    assert "SMARTNIC_POOL_KERNEL_NET_DEVICES is empty" in done.stderr
    assert "restart_service devstack@cyborg-agent" not in calls


@pytest.mark.parametrize("option", [o.dest for o in smartnic_conf.SMARTNIC_OPTS])
def test_every_smartnic_option_has_a_variable(option: str) -> None:
    settings = (DEVSTACK / "settings").read_text()
    plugin = (DEVSTACK / "plugin.sh").read_text()
    variable = f"SMARTNIC_{option.upper()}"
    assert f"{variable}=" in settings
    assert f'_smartnic_set smartnic {option} "${variable}"' in plugin
