"""``host plan|apply --drain`` against the real Nova 34 of the shared stack.

The host is the stack's own (the generated tree its Cyborg agent reads); ``host apply`` runs
in this process with the kernel emulator behind the privileged entry points, and asks the
real Nova, Cyborg and Neutron through openstacksdk and the stack's clouds.yaml. The step
under test rebinds one VF of the X710 pool (0000:18:00.0) to vfio-pci: it disturbs exactly
the VF a server of flavor xdp.medium holds. Each test leaves the stack as it found it: no
servers, nova-compute enabled, every VF back on iavf.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.host import drain
from cyborg_smartnic.hostgen.kernel import Fault, emulated_kernel
from deploy.stacklib import client
from deploy.stacklib.client import Clients, StackInfo
from tests.stack.conftest import SHARED
from tests.stack.test_servers import vf_address

pytestmark = [pytest.mark.stack, SHARED]

XDP_PF = "0000:18:00.0"


def driver_of(tree: Any, address: str) -> str | None:
    link = tree.device_path(address) / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


@dataclass
class Drained:
    """The shared stack, and host apply/plan pointed at its host and clouds."""

    state: dict[str, Any]
    info: StackInfo
    api: Clients
    conf: Path
    work: Path

    def host_yaml(self, index: int, driver: str) -> Path:
        path = self.work / f"host-{index}-{driver}.yaml"
        path.write_text(f'devices:\n  - address: "{XDP_PF}"\n    vf_count: 4\n'
                        f'    vf_drivers:\n      "{index}": {driver}\n')
        return path

    def cli(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        code = main([*args[:2], "--config-file", str(self.conf), "--sysfs-root",
                     str(self.state["tree"].root), "--os-cloud", self.info.cloud, *args[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    def service(self) -> dict[str, Any]:
        found = client.json_of(self.api.nova.get("/os-services?binary=nova-compute"),
                               "services")["services"]
        (mine,) = [s for s in found if s["host"] == self.info.hostname]
        return dict(mine)

    def set_service(self, body: dict[str, Any]) -> None:
        client.json_of(self.api.nova.put(f"/os-services/{self.service()['id']}", json=body),
                       "update service")

    def servers(self) -> list[str]:
        found = client.json_of(self.api.nova.get("/servers"), "servers")["servers"]
        return [str(s["id"]) for s in found]

    def boot_xdp(self, name: str) -> tuple[str, str]:
        """A server of xdp.medium (accel:device_profile): its id and the VF its ARQ holds."""
        flavors = client.json_of(self.api.nova.get("/flavors/detail"), "flavors")["flavors"]
        flavor = next(f for f in flavors if f["name"] == "xdp.medium")
        server = client.boot(self.info, self.api, flavor, name)
        assert client.wait_server(self.api, server)["status"] == "ACTIVE"
        (arq,) = client.arqs_of(self.api, server)
        return server, vf_address(arq["attach_handle_info"])


@pytest.fixture
def drained(shared_stack: dict[str, Any], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Drained]:
    info = StackInfo.from_state(shared_stack)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(info.clouds_yaml))
    conf = tmp_path / "apply.conf"
    conf.write_text(f"[smartnic]\nhostname = {info.hostname}\n")
    stack = Drained(shared_stack, info, Clients(info), conf, tmp_path)
    assert stack.servers() == []
    assert stack.service()["status"] == "enabled"
    tree = shared_stack["tree"]
    vfs = tree.vfs(XDP_PF)
    try:
        yield stack
    finally:
        for server in stack.servers():
            client.delete_server(stack.api, server)
        if stack.service()["status"] != "enabled":
            stack.set_service({"status": "enabled"})
        with emulated_kernel(tree):  # every VF back on iavf, as the stack started
            for index in sorted(vfs):
                if driver_of(tree, vfs[index]) != "iavf":
                    code = main(["host", "apply", "--yes", "--config-file", str(conf),
                                 "--sysfs-root", str(tree.root),
                                 str(stack.host_yaml(index, "default"))])
                    assert code == 0


def test_an_accelerator_server_blocks_the_drain_until_it_is_gone(
        drained: Drained, capsys: pytest.CaptureFixture[str]) -> None:
    tree = drained.state["tree"]
    server, vf = drained.boot_xdp("drain-blocker")
    index = next(i for i, address in tree.vfs(XDP_PF).items() if address == vf)
    config = str(drained.host_yaml(index, "vfio-pci"))

    # Without --drain: today's refusal, naming the ARQ and the option.
    code, out, err = drained.cli(capsys, "host", "plan", config)
    assert code == 1
    assert "is in use (Cyborg accelerator request" in err and "--drain" in err

    # The plan shows the drain first, the server BLOCKED by Nova's accelerator rule.
    code, out, err = drained.cli(capsys, "host", "plan", "--drain", config)
    assert code == 1, out + err
    assert out.index("Drain of") < out.index("bind_driver")
    assert server in out and "BLOCKED" in out and "ForbiddenWithAccelerators" in out
    assert f"drain blocked by 1 instance(s): {server} (drain-blocker)" in err
    assert drained.service()["status"] == "enabled"  # plan changes nothing

    # apply --drain: disables the service, stops before the host, leaves it disabled.
    with emulated_kernel(tree) as kernel:
        code, out, err = drained.cli(capsys, "host", "apply", "--yes", "--drain", config)
        assert kernel.writes == []
    assert code == 1, out + err
    assert f"drain blocked by 1 instance(s): {server} (drain-blocker): accelerator server" in err
    assert "Nothing on the host was changed" in err
    assert f"nova-compute on {drained.info.hostname} stays DISABLED" in err
    service = drained.service()
    assert service["status"] == "disabled"
    assert service["disabled_reason"] == drain.reason("host apply of " + Path(config).name)
    assert driver_of(tree, vf) == "iavf"
    assert client.json_of(drained.api.nova.get(f"/servers/{server}"),
                          "server")["server"]["status"] == "ACTIVE"
    assert [a["state"] for a in client.arqs_of(drained.api, server)] == ["Bound"]

    # Once the server is gone the same command drains nothing, applies, re-enables.
    client.delete_server(drained.api, server)
    with emulated_kernel(tree):
        code, out, err = drained.cli(capsys, "host", "apply", "--yes", "--drain", config)
    assert code == 0, out + err
    assert "is still disabled by an earlier drain" in out
    assert f"drain: re-enabled nova-compute on {drained.info.hostname}" in out
    assert driver_of(tree, vf) == "vfio-pci"
    assert drained.service()["status"] == "enabled"


def test_a_step_failing_mid_way_leaves_the_service_disabled_and_says_so(
        drained: Drained, capsys: pytest.CaptureFixture[str]) -> None:
    tree = drained.state["tree"]
    vf = tree.vfs(XDP_PF)[2]
    config = str(drained.host_yaml(2, "vfio-pci"))
    with emulated_kernel(tree) as kernel:
        kernel.faults.append(Fault("drivers_probe", errno.EIO))
        code, out, err = drained.cli(capsys, "host", "apply", "--yes", "--drain", config)
    assert code == 1, out + err
    assert f"drain: disabled nova-compute on {drained.info.hostname}" in out
    assert f"apply failed at {vf}: EIO" in err
    assert f"nova-compute on {drained.info.hostname} stays DISABLED" in err
    assert "`host apply --drain` again" in err
    assert drained.service()["status"] == "disabled"
    assert driver_of(tree, vf) == "iavf"  # rolled back

    # The next run without the fault finishes the job and puts the host back in service.
    with emulated_kernel(tree):
        code, out, err = drained.cli(capsys, "host", "apply", "--yes", "--drain", config)
    assert code == 0, out + err
    assert drained.service()["status"] == "enabled"


def test_a_service_someone_else_disabled_stays_disabled(
        drained: Drained, capsys: pytest.CaptureFixture[str]) -> None:
    tree = drained.state["tree"]
    drained.set_service({"status": "disabled", "disabled_reason": "hardware ticket 42"})
    config = str(drained.host_yaml(3, "vfio-pci"))
    with emulated_kernel(tree):
        code, out, err = drained.cli(capsys, "host", "apply", "--yes", "--drain", config)
    assert code == 0, out + err
    assert "was already disabled by someone else (hardware ticket 42)" in out
    assert driver_of(tree, tree.vfs(XDP_PF)[3]) == "vfio-pci"
    service = drained.service()
    assert (service["status"], service["disabled_reason"]) == ("disabled", "hardware ticket 42")
