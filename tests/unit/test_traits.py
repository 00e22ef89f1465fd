from __future__ import annotations

import pytest

from cyborg_smartnic import traits


@pytest.mark.parametrize(("parts", "expected"), [
    (("PHYSNET", "physnet1"), "CUSTOM_PHYSNET_PHYSNET1"),
    (("PHYSNET", "prov-net.A"), "CUSTOM_PHYSNET_PROV_NET_A"),
    (("SMARTNIC_VF_DRIVER", "vfio-pci"), "CUSTOM_SMARTNIC_VF_DRIVER_VFIO_PCI"),
    (("CUSTOM_FOO",), "CUSTOM_FOO"),
    (("  weird__ name  ",), "CUSTOM_WEIRD_NAME"),
    (("smartnic_model", "ConnectX-6 Dx"), "CUSTOM_SMARTNIC_MODEL_CONNECTX_6_DX"),
])
def test_custom_name(parts: tuple[str, ...], expected: str) -> None:
    assert traits.custom_name(*parts) == expected
    assert traits.is_custom_name(expected)


def test_custom_name_is_capped_at_placement_limit() -> None:
    name = traits.custom_name("X" * 400)
    assert len(name) == traits.MAX_NAME_LENGTH
    assert traits.is_custom_name(name)


def test_helpers_agree_with_design_names() -> None:
    assert traits.vendor_trait("nvidia") == "CUSTOM_SMARTNIC_VENDOR_NVIDIA"
    assert traits.model_trait("E810") == "CUSTOM_SMARTNIC_MODEL_E810"
    assert traits.physnet_trait("physnet2") == "CUSTOM_PHYSNET_PHYSNET2"
    assert traits.eswitch_trait("switchdev") == "CUSTOM_SMARTNIC_ESWITCH_SWITCHDEV"
    assert traits.firmware_trait("comms") == "CUSTOM_SMARTNIC_FW_COMMS"


@pytest.mark.parametrize("name", ["custom_x", "CUSTOM_", "CUSTOM_A-B", "SRIOV_NET_VF", ""])
def test_is_custom_name_rejects(name: str) -> None:
    assert not traits.is_custom_name(name)
