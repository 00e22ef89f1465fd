"""deploy/cyborg.conf.example stays complete and valid as the options evolve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic import conf as smartnic_conf

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "cyborg.conf.example"


def sections(text: str) -> dict[str, set[str]]:
    """Section -> option names set or shown commented out (``#name = value``)."""
    found: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        header = re.fullmatch(r"#?\[([^\]]+)\]", line.strip())
        if header:
            current = header.group(1)
            found.setdefault(current, set())
            continue
        option = re.fullmatch(r"#?([a-z_]+) =.*", line.strip())
        if option and current:
            found[current].add(option.group(1))
    return found


# cyborg.conf holds what cyborg-agent reads; the privsep groups are `host apply`'s
# (docs/host.md).
AGENT_OPTS = [(g, o) for g, o in smartnic_conf.list_opts()
              if g not in (smartnic_conf.PRIVSEP_GROUP, smartnic_conf.FIRMWARE_PRIVSEP_GROUP)]


@pytest.mark.parametrize(("group", "opts"), AGENT_OPTS)
def test_every_option_is_explained(group: str, opts: list[cfg.Opt]) -> None:
    shown = sections(EXAMPLE.read_text())
    section = "smartnic_pool:dpdk" if group.startswith(smartnic_conf.POOL_GROUP_PREFIX) else group
    assert {o.dest for o in opts} <= shown[section]


def test_uncommented_example_parses_with_the_real_options(tmp_path: Path) -> None:
    """Every value shown, commented or not, is valid for its option type."""
    text = EXAMPLE.read_text()
    live = re.sub(r"(?m)^#(\[smartnic_pool:[^\]]+\]|[a-z_]+ = )", r"\1", text)
    path = tmp_path / "cyborg.conf"
    path.write_text(live)
    conf = cfg.ConfigOpts()
    smartnic_conf.register_opts(conf)
    conf.register_opts([cfg.ListOpt("enabled_drivers"), cfg.StrOpt("resource_provider_name")],
                       group="agent")
    conf(args=[], default_config_files=[str(path)], use_env=False)
    smartnic_conf.register_pool_opts(conf, list(conf.smartnic.pools))
    assert conf.agent.enabled_drivers == ["smartnic_driver"]
    assert conf.smartnic.pools == ["dpdk"]
    for group, opts in AGENT_OPTS:
        name = "smartnic_pool:dpdk" if group.startswith("smartnic_pool:") else group
        for opt in opts:
            _ = conf[name][opt.dest]  # raises when the value does not parse
    assert conf["smartnic_pool:dpdk"].devices == ["ens1f0#0-3"]
    assert conf.smartnic.physical_device_mappings == ["physnet1:ens1f0", "physnet2:0000:3b:00.1"]
