"""What Nova refuses for servers with accelerators, as `profile render`/`check` warn it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cyborg_smartnic.cli.main import main
from cyborg_smartnic.profiles import nova_rules
from cyborg_smartnic.profiles.compiler import compile_all
from cyborg_smartnic.profiles.loader import load_profiles

EXAMPLES = Path(__file__).parent.parent.parent / "profiles"


def _compiled() -> dict[str, object]:
    return {p.name: p for p in compile_all(load_profiles([EXAMPLES]))}


def test_flavor_and_port_profiles_get_the_rules_of_their_kind() -> None:
    profiles = _compiled()
    flavor = profiles["dpdk-vfio"]
    port = profiles["sriov-port"]
    assert nova_rules.refused_operations(flavor) == ("resize", "cold migration",
                                                     "live migration", "suspend")
    # a port with an accelerator adds shelve, evacuate and interface attach/detach
    assert set(nova_rules.refused_operations(port)) - set(nova_rules.FLAVOR_REFUSED) == {
        "shelve", "shelve-offload", "evacuate", "attaching or detaching the port"}
    assert nova_rules.warning(flavor) == (
        "dpdk-vfio: Nova 34 (2026.2) refuses resize, cold migration, live migration, suspend "
        "for servers of its flavor(s); see docs/profiles.md")
    assert "for servers with a port of this profile (accelerator-direct)" in \
        nova_rules.warning(port)


def test_render_warns_on_stderr_and_keeps_stdout_data(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert main(["profile", "render", "-f", "json", str(EXAMPLES / "xdp.yaml")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["profiles"][0]["name"] == "xdp-netdev"
    assert err == ("warning: xdp-netdev: Nova 34 (2026.2) refuses resize, cold migration, "
                   "live migration, suspend for servers of its flavor(s); see "
                   "docs/profiles.md\n")


def test_check_warns_only_for_profiles_the_host_can_serve(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "check", "--example-host", str(EXAMPLES)]) == 0
    err = capsys.readouterr().err
    warned = {line.split(":")[1].strip() for line in err.splitlines()
              if line.startswith("warning: ")}
    # ovs-offload's and the DPU's ports are not accelerator ports: Nova's rules do not apply
    assert warned == {"dpdk-vfio", "e810-comms-gtp", "sriov-port", "upf-5g", "xdp-netdev"}
    assert nova_rules.refused_operations(_compiled()["ovs-offload"]) == ()
