"""``host apply --os-cloud``: the re-check before each destroying step asks the real Cyborg.

The plan is made while no accelerator request is bound; during the first step (a hugepage
write) Nova's part is played: an ARQ is bound to one of the VFs the next step would destroy.
The executor's re-check must see it through the Cyborg API (openstacksdk, clouds.yaml), stop,
and roll back, exactly as the plan would have refused it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.hostgen import PfOptions, SysfsTree
from cyborg_smartnic.hostgen.kernel import emulated_kernel
from tests.functional.harness import InProcessCloud

X710 = "0000:18:00.0"
RC = "CUSTOM_SMARTNIC_VF"
SDK_CYBORG_URL = "http://cyborg-sdk.test/accelerator"  # as in test_host_cyborg.py


def test_recheck_refuses_a_vf_cyborg_bound_after_the_plan(
        make_inproc: Callable[..., InProcessCloud], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    inproc = make_inproc(smartnic={"physical_device_mappings": "physnet1:ens3f0"})
    tree = SysfsTree(inproc.sysfs_root)
    tree.add_pf(X710, PfOptions(
        vendor="8086", device="1572", driver="i40e", netdev="ens3f0", numa_node=0, total_vfs=8,
        num_vfs=2, eswitch="legacy", fw_version="9.20"))
    tree.add_hugepages(node=0, size_kb=2048, total=0, free=0)
    inproc.run_agent_cycle()
    profile = inproc.create_device_profile("x710", [{f"resources:{RC}": "1"}])
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
    bound: list[str] = []

    def bind_one() -> None:  # what Nova does when an instance with this profile starts
        (request,) = inproc.allocation_candidates(profile["groups"])["allocation_requests"]
        instance = str(uuid.uuid4())
        inproc.claim(instance, request)
        (device_rp,) = request["allocations"]
        (arq,) = inproc.create_arqs("x710")
        inproc.bind_arq(arq["uuid"], device_rp, instance)
        bound.append(arq["uuid"])

    conf = tmp_path / "cyborg.conf"
    conf.write_text(f"[smartnic]\nhostname = {inproc.hostname}\n")
    config = tmp_path / "host.yaml"
    config.write_text(f'hugepages:\n  - {{node: 0, size: 2M, count: 64}}\n'
                      f'devices:\n  - address: "{X710}"\n    vf_count: 4\n')
    with emulated_kernel(tree) as kernel:
        write = kernel.write

        def write_then_bind(path: str, value: str) -> None:
            write(path, value)
            if path.endswith("nr_hugepages") and not bound:
                bind_one()

        kernel.write = write_then_bind  # type: ignore[method-assign]
        code = main(["host", "apply", "--yes", "--os-cloud", "test", "--config-file",
                     str(conf), "--sysfs-root", str(inproc.sysfs_root), str(config)])
        out, err = capsys.readouterr()
        assert code == 1, out + err
        assert bound, "the ARQ was not bound during the apply"
        assert f"{X710}: not touching it now: VF " in err
        assert f"is in use (Cyborg accelerator request {bound[0]} is bound to it" in err
        assert kernel.num_vfs(X710) == 2
        assert kernel.hugepages(0, 2048) == 0  # rolled back
