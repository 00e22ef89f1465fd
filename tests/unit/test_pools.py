"""cyborg_smartnic.pools: [smartnic] and [smartnic_pool:NAME] into validated frozen values."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from cyborg_smartnic.discovery.model import Firmware, Link, PhysicalFunction, VirtualFunction
from cyborg_smartnic.discovery.selection import parse_selectors
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.pools import PoolSpec, ReportConfig, load_report_config, resolve_hostname


def _conf(tmp_path: Path, text: str, *, agent_rp_name: str | None = None) -> cfg.ConfigOpts:
    path = tmp_path / "cyborg.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    if agent_rp_name is not None:
        conf.register_opts([cfg.StrOpt("resource_provider_name", default=agent_rp_name)],
                           group="agent")
    conf(args=[], default_config_files=[str(path)], use_env=False)
    return conf


def _load(tmp_path: Path, text: str) -> ReportConfig:
    conf = _conf(tmp_path, text)
    from cyborg_smartnic import conf as smartnic_conf

    smartnic_conf.register_opts(conf)
    return load_report_config(conf, "fallback.example.org")


def _pf(address: str = "0000:3b:00.0", netdev: str | None = "ens1f0",
        vendor_id: str = "15b3", device_id: str = "101d", vfs: int = 8) -> PhysicalFunction:
    base = PciAddress.parse(address)
    return PhysicalFunction(
        address=base, vendor_id=vendor_id, device_id=device_id, subsystem_vendor_id=None,
        subsystem_device_id=None, vendor="nvidia", model="ConnectX-6 Dx",
        model_key="CONNECTX_6_DX", driver="mlx5_core", numa_node=0, netdev=netdev,
        link=Link(), iommu_group=None, eswitch_mode=None, firmware=Firmware(), physnet=None,
        total_vfs=vfs, num_vfs=vfs, vf_device_id="101e",
        virtual_functions=tuple(
            VirtualFunction(address=PciAddress(0, base.bus, 1, i), index=i, vendor_id=vendor_id,
                            device_id="101e", driver="mlx5_core", netdev=None, link=Link(),
                            iommu_group=None, numa_node=0)
            for i in range(vfs)))


def test_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "[smartnic]\nhostname = cn1\n")
    assert config == ReportConfig(hostname="cn1")
    assert config.resource_class == "CUSTOM_SMARTNIC_VF"


def test_pools_are_read_sorted_and_validated(tmp_path: Path) -> None:
    config = _load(tmp_path, """
[smartnic]
hostname = cn1
resource_class = CUSTOM_NIC_VF
extra_traits = CUSTOM_RACK_B, CUSTOM_ZONE_1, CUSTOM_RACK_B
pools = kernel, dpdk
[smartnic_pool:dpdk]
devices = ens1f0#0-3,8, 0000:3b:00.1#0
resource_class = CUSTOM_DPDK_VF
traits = CUSTOM_DPDK
physnet = fast-net
[smartnic_pool:kernel]
devices = 8086:1592
""")
    assert config.resource_class == "CUSTOM_NIC_VF"
    assert config.extra_traits == ("CUSTOM_RACK_B", "CUSTOM_ZONE_1")
    assert [p.name for p in config.pools] == ["dpdk", "kernel"]
    dpdk, kernel = config.pools
    assert [s.text for s in dpdk.selectors] == ["ens1f0#0-3,8", "0000:3b:00.1#0"]
    assert dpdk.resource_class == "CUSTOM_DPDK_VF"
    assert dpdk.traits == ("CUSTOM_DPDK",)
    assert dpdk.physnet == "fast-net"
    assert kernel.resource_class is None and kernel.physnet is None
    assert dpdk.claims(_pf()) == frozenset({0, 1, 2, 3})  # 8 is not a VF of this PF
    assert dpdk.claims(_pf("0000:3b:00.1", netdev="ens1f1")) == frozenset({0})
    assert kernel.claims(_pf()) == frozenset()
    assert kernel.claims(_pf(vendor_id="8086", device_id="1592", vfs=3)) == {0, 1, 2}


@pytest.mark.parametrize(("text", "message"), [
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = ens1f0\n"
     "resource_class = FOO\n",
     "[smartnic_pool:dpdk] resource_class: 'FOO' is not a CUSTOM_* name"),
    ("[smartnic]\npools = dpdk\n",
     "[smartnic_pool:dpdk] devices: required"),
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = ens1f0#3-1\n",
     "[smartnic_pool:dpdk] devices: 'ens1f0#3-1': VF range '3-1' runs backwards"),
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = a/b\n",
     "[smartnic_pool:dpdk] devices: unknown selector 'a/b'"),
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = 8086:*\n",
     "[smartnic_pool:dpdk] devices: 'VVVV:*' without VF ranges"),
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = ens1f0\n"
     "traits = CUSTOM_OK, HW_CPU_X86_AVX\n",
     "[smartnic_pool:dpdk] traits: 'HW_CPU_X86_AVX' is not a CUSTOM_* trait"),
    ("[smartnic]\npools = dpdk\n[smartnic_pool:dpdk]\ndevices = ens1f0\nphysnet = a b\n",
     "[smartnic_pool:dpdk] physnet: 'a b' must be"),
    ("[smartnic]\npools = a.b\n", "[smartnic] pools: pool name 'a.b' must be"),
    ("[smartnic]\npools = x, x\n[smartnic_pool:x]\ndevices = ens1f0\n",
     "[smartnic] pools: pool 'x' is listed twice"),
    ("[smartnic]\nresource_class = custom_vf\n",
     "[smartnic] resource_class: 'custom_vf' is not a CUSTOM_* name"),
    ("[smartnic]\nextra_traits = CUSTOM_\n",
     "[smartnic] extra_traits: 'CUSTOM_' is not a CUSTOM_* trait"),
])
def test_bad_values_name_the_option(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_hostname_precedence(tmp_path: Path) -> None:
    from cyborg_smartnic import conf as smartnic_conf

    conf = _conf(tmp_path, "[smartnic]\n", agent_rp_name="rp-name.example.org")
    smartnic_conf.register_opts(conf)
    assert resolve_hostname(conf, "fqdn") == "rp-name.example.org"
    conf.set_override("hostname", "explicit", group="smartnic")
    assert resolve_hostname(conf, "fqdn") == "explicit"
    bare = _conf(tmp_path, "[smartnic]\n")
    smartnic_conf.register_opts(bare)
    assert resolve_hostname(bare, "fqdn") == "fqdn"
    with pytest.raises(ConfigError, match=r"^\[smartnic\] hostname: not set"):
        resolve_hostname(bare)


def test_a_pool_selector_picks_by_id_address_or_netdev() -> None:
    pf = _pf("0000:5e:00.0", netdev="ens2f0", vendor_id="8086", device_id="1592", vfs=6)
    for text, expected in (("8086:1592#4-5", {4, 5}), ("8086:*#0", {0}),
                           ("0000:5e:00.0#1-2", {1, 2}), ("ens2f0", set(range(6))),
                           ("ens2f1", set()), ("15b3:101d", set())):
        pool = PoolSpec(name="p", selectors=parse_selectors([text]))
        assert pool.claims(pf) == frozenset(expected), text
