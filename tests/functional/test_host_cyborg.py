"""A VF that the real Cyborg has bound to an instance is never destroyed by ``host plan``.

The in-process cloud (real Placement, Cyborg conductor/agent/API) reports a generated host;
an ARQ is bound the way Nova binds it; then the host tool asks the Cyborg API through
openstacksdk (a clouds.yaml entry, as an operator would configure it) which VFs are bound.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.discovery.scan import ScanOptions, scan
from cyborg_smartnic.host import inuse
from cyborg_smartnic.host.config import load_host_config
from cyborg_smartnic.host.plan import plan
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.pci import PciAddress
from tests.functional.harness import InProcessCloud

X710 = "0000:18:00.0"
RC = "CUSTOM_SMARTNIC_VF"
# Cyborg's version document links to <host>/accelerator/v2 (where a real deployment serves
# it), and openstacksdk follows that link, so the API is mounted there for the SDK.
SDK_CYBORG_URL = "http://cyborg-sdk.test/accelerator"


@pytest.fixture
def bound(make_inproc: Callable[..., InProcessCloud], tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> tuple[InProcessCloud, str, str, str]:
    """A cloud with one ARQ bound to VF of the X710; returns (inproc, VF, arq, instance)."""
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens3f0"})
    SysfsTree(inproc.sysfs_root).add_pf(X710, PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f0", numa_node=0, total_vfs=8,
        num_vfs=2, eswitch="legacy", fw_version="9.20"))
    inproc.run_agent_cycle()
    profile = inproc.create_device_profile("x710", [{f"resources:{RC}": "1"}])
    (request,) = inproc.allocation_candidates(profile["groups"])["allocation_requests"]
    instance = str(uuid.uuid4())
    inproc.claim(instance, request)
    (device_rp,) = request["allocations"]
    (arq,) = inproc.create_arqs("x710")
    inproc.bind_arq(arq["uuid"], device_rp, instance)
    info = inproc.get_arq(arq["uuid"])["attach_handle_info"]
    vf = str(PciAddress.from_attach_info(info))
    from cyborg.api import app as api_app
    from wsgi_intercept import interceptor

    app = api_app.load_app()
    intercept = interceptor.RequestsInterceptor(lambda: app, url=SDK_CYBORG_URL)
    intercept.install_intercept()
    inproc.addCleanup(intercept.uninstall_intercept)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  test:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {SDK_CYBORG_URL}\n      token: admin\n"
        f"    accelerator_endpoint_override: {SDK_CYBORG_URL}/v2\n"
        "    region_name: RegionOne\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    return inproc, vf, arq["uuid"], instance


def test_bound_arq_marks_its_vf_in_use(bound: tuple[InProcessCloud, str, str, str],
                                       tmp_path: Path) -> None:
    inproc, vf, arq, instance = bound
    found = inuse.cyborg_in_use("test", inproc.hostname)
    assert found.users == (inuse.VfUser(vf, f"Cyborg accelerator request {arq} is bound to "
                                            f"it (instance {instance})"),)
    assert inuse.cyborg_in_use("test", "another-host").users == ()

    host = scan(inproc.sysfs_root, ScanOptions(hostname=inproc.hostname))
    config = tmp_path / "host.yaml"
    config.write_text(f'devices:\n  - address: "{X710}"\n    vf_count: 4\n')
    result = plan(load_host_config(config), host, found)
    (refused,) = result.refused
    assert refused.to_value == 0 and f"VF {vf} is in use (Cyborg accelerator request {arq}" \
        in str(refused.refused)


def test_host_plan_asks_cyborg_with_os_cloud(bound: tuple[InProcessCloud, str, str, str],
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    inproc, vf, arq, _ = bound
    conf = tmp_path / "cyborg.conf"
    conf.write_text(f"[smartnic]\nhostname = {inproc.hostname}\n")
    config = tmp_path / "host.yaml"
    config.write_text(f'devices:\n  - address: "{X710}"\n    vf_count: 4\n')
    code = main(["host", "plan", "--os-cloud", "test", "--config-file", str(conf),
                 "--sysfs-root", str(inproc.sysfs_root), str(config)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(f"cyborg-smartnic: error: 1 step(s) refused; first: {X710}: VF {vf} "
                          f"is in use (Cyborg accelerator request {arq} is bound to it")
