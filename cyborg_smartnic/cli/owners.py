"""``host doctor --nova-conf/--cyborg-conf`` and ``host conf -f/--service``: VF ownership glue."""

from __future__ import annotations

import argparse
import os
import sys

from cyborg_smartnic.cli import common
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.errors import ConfigError
from cyborg_smartnic.host import ownership
from cyborg_smartnic.host.config import HostConfig
from cyborg_smartnic.host.doctor import FAIL, OK, WARN, Check

NOVA_CONF = "/etc/nova/nova.conf"
CYBORG_CONF = "/etc/cyborg/cyborg.conf"
CONF_FORMATS = ("ini", "json", "yaml")


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("VF owners (Cyborg or Nova's PCI tracker)")
    group.add_argument("--nova-conf", metavar="FILE",
                       help=f"nova-compute's nova.conf, whose [pci] device_spec is Nova's claim "
                            f"(default {NOVA_CONF} when reading this host)")
    group.add_argument("--cyborg-conf", metavar="FILE",
                       help=f"cyborg-agent's cyborg.conf, whose [smartnic] options are "
                            f"Cyborg's claim (default {CYBORG_CONF} when reading this host)")


def add_conf_arguments(parser: argparse.ArgumentParser) -> None:
    common.add_format_argument(parser, choices=CONF_FORMATS, default="ini")
    parser.add_argument("--service", choices=("cyborg", "nova"),
                        help="print only this service's lines (default both)")


def _paths(args: argparse.Namespace, root: str) -> tuple[str | None, str | None, list[str]]:
    """(nova.conf, cyborg.conf, defaults that are missing); defaults only for the live host."""
    live = root.rstrip("/") == ""
    found: list[str | None] = []
    missing: list[str] = []
    for given, default, flag in ((args.nova_conf, NOVA_CONF, "--nova-conf"),
                                 (args.cyborg_conf, CYBORG_CONF, "--cyborg-conf")):
        if given is not None:
            if not os.path.isfile(given):
                raise ConfigError(option=flag, reason=f"{given}: no such file")
            found.append(given)
        elif live and os.path.isfile(default):
            found.append(default)
        else:
            found.append(None)
            if live:
                missing.append(default)
    return found[0], found[1], missing


def doctor_checks(args: argparse.Namespace, root: str, config: HostConfig | None,
                  host: Host) -> list[Check]:
    """One check per ownership problem; none when neither file is given and this is not the
    live host (a recorded tree's owners are in files the recording does not hold)."""
    nova_conf, cyborg_conf, missing = _paths(args, root)
    if nova_conf is None or cyborg_conf is None:
        if not missing and nova_conf is None and cyborg_conf is None:
            return []
        why = (f"{' and '.join(missing)} not found" if missing else
               f"--{'nova' if nova_conf is None else 'cyborg'}-conf not given")
        return [Check(ownership.NAME, WARN, f"not checked: {why}",
                      "pass --nova-conf FILE and --cyborg-conf FILE")]
    specs = ownership.nova_specs(nova_conf, host)
    cyborg = ownership.cyborg_claims(cyborg_conf, root, host.hostname)
    vfs = ownership.claims(host, cyborg, specs, config)
    status = {"ok": OK, "warn": WARN, "fail": FAIL}
    return [Check(ownership.NAME, status[f.status], f.detail, f.remedy)
            for f in ownership.findings(vfs, cyborg_conf, nova_conf, config)]


def routing(root: str, host: Host) -> dict[str, tuple[int, int]]:
    """Each PF's (sriov_offset, sriov_stride) as the kernel shows them, where readable."""
    from cyborg_smartnic.discovery.sysfs import SysfsReader  # noqa: PLC0415

    reader = SysfsReader(root)
    found: dict[str, tuple[int, int]] = {}
    for pf in host.physical_functions:
        base = reader.path(f"sys/bus/pci/devices/{pf.address}")
        offset, stride = reader.read(f"{base}/sriov_offset"), reader.read(f"{base}/sriov_stride")
        if offset and stride and offset.strip().isdigit() and stride.strip().isdigit():
            found[str(pf.address)] = (int(offset), int(stride))
    return found


def print_conf(args: argparse.Namespace, config: HostConfig, host: Host, root: str) -> None:
    from cyborg_smartnic.host import snippet  # noqa: PLC0415

    generated = snippet.generate(config, host, routing=routing(root, host))
    services = (args.service,) if args.service else snippet.SERVICES
    if args.format == "ini":
        sys.stdout.write(snippet.ini_text(generated, services))
        return
    data = generated.to_dict()
    if args.service == "cyborg":
        data.pop("nova.conf")
    elif args.service == "nova":
        data.pop("cyborg.conf")
    common.show(args, data, lambda: "")
