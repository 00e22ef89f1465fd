"""Every read-only question to devlink, mstconfig and mlxfwreset, live or recorded.

The one home of those commands and of the files that record their answers: each question is
a ``Query`` (the command, and the file under a tree root holding the same output), and a
``ToolSource`` answers it. On the running host (root ``/``) the command is run without a
shell (``devlink -j dev info`` once for every device, ``dev eswitch show`` per PF,
``mstconfig -d <addr> q`` only for DPU-capable models); for generated trees and snapshots the
recorded file is read (``cyborg-smartnic snapshot`` records ``recorded_queries``, the host
builder writes the same files). Discovery, ``host.devlink_params`` and ``host.firmware`` all
ask through ``tool_source``. Everything that interprets the output is a pure function here,
so both paths share it. A tool that fails, times out or prints junk yields ``None`` (logged),
never an exception out of the scan.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cyborg_smartnic.catalog import MLX5_DRIVER
from cyborg_smartnic.discovery.model import ESWITCH_LEGACY, ESWITCH_SWITCHDEV
from cyborg_smartnic.discovery.sysfs import SysfsReader, UnreadableAttribute

LOG = logging.getLogger(__name__)

TOOL_TIMEOUT = 10.0
DEVLINK = "devlink"
NV_TOOL = "mstconfig"  # mstflint's; NVIDIA MFT's mlxconfig takes the same arguments
NV_TOOL_NAMES = ("mstconfig", "mlxconfig")
FW_RESET = "mlxfwreset"
FLOW_STEERING_PARAM = "flow_steering_mode"  # mlx5's devlink parameter
FLOW_STEERING_MODES = ("smfs", "dmfs")  # its values: software or device-managed steering
FW_DPU = "dpu"
FW_NIC = "nic"
FW_SEPARATED_HOST = "separated_host"
# BlueField modes as read from mstconfig (INTERNAL_CPU_MODEL/PAGE_SUPPLIER).
DPU_FIRMWARE_MODES = (FW_DPU, FW_NIC, FW_SEPARATED_HOST)
ICE_DDP_MODES = {
    "ICE COMMS Package": "comms",
    "ICE OS Default Package": "os_default",
    "ICE Wireless Edge Package": "wireless_edge",
}
# Running-version keys, most specific first: mlx5/bnxt report "fw"/"fw.version"; ice and i40e
# report the NVM version as "fw.psid.api" (what ethtool -i shows first) and the management
# firmware as "fw.mgmt".
_VERSION_KEYS = ("fw", "fw.version", "fw.psid.api", "fw.mgmt")
# ``KEY VALUE`` (``q``), or ``[*] KEY DEFAULT CURRENT NEXT_BOOT`` (``-e q``): the current one
_MSTCONFIG_LINE = re.compile(r"^\s*\*?\s*(?P<key>[A-Z0-9_]+)\s+(?:\S+\s+)?(?P<value>\S+)"
                             r"(?:\s+\S+)?\s*$")
_PORT_UPLINK = re.compile(r"p\d+")
_PORT_REPRESENTOR = re.compile(r"(?:c\d+)?pf\d+(?:vf\d+|sf\d+)?")


@dataclass(frozen=True, slots=True)
class DevlinkInfo:
    """The parts of ``devlink dev info`` discovery uses."""

    driver: str | None = None
    serial: str | None = None
    running: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Query:
    """One read-only question to a tool about one PF, and where its answer is recorded."""

    tool: str  # DEVLINK, NV_TOOL or FW_RESET
    args: tuple[str, ...]
    recorded: str  # the file, relative to a tree root, holding the same output


def eswitch_query(address: str) -> Query:
    return Query(DEVLINK, ("-j", "dev", "eswitch", "show", f"pci/{address}"),
                 f"devlink/dev-eswitch-{address}.json")


def info_query(address: str) -> Query:
    """One PF's ``devlink dev info`` (live discovery asks for every device at once)."""
    return Query(DEVLINK, ("-j", "dev", "info", f"pci/{address}"),
                 f"devlink/dev-info-{address}.json")


def param_query(address: str, name: str = FLOW_STEERING_PARAM) -> Query:
    return Query(DEVLINK, ("-j", "dev", "param", "show", f"pci/{address}", "name", name),
                 f"devlink/dev-param-{address}.json")


def cpu_mode_query(address: str) -> Query:
    """A DPU's mode keys; recorded in the same file as ``nv_query`` (which includes them)."""
    return Query(NV_TOOL, ("-d", address, "q", "INTERNAL_CPU_MODEL",
                           "INTERNAL_CPU_PAGE_SUPPLIER"), f"mstconfig/query-{address}.txt")


def nv_query(address: str) -> Query:
    """Every NV config key: default, current and next-boot values."""
    return Query(NV_TOOL, ("-e", "-d", address, "q"), f"mstconfig/query-{address}.txt")


def reset_query(address: str) -> Query:
    """The firmware reset levels the PF supports."""
    return Query(FW_RESET, ("-d", address, "q"), f"mstconfig/reset-{address}.txt")


def recorded_queries(address: str, driver: str | None, dpu: bool, *,
                     nv_config: bool = False) -> list[Query]:
    """What a snapshot records for one PF: what discovery, ``host.devlink_params`` and
    ``host.firmware`` ask. A model with NV config gets ``nv_query`` (it includes a DPU's
    mode keys) and ``reset_query``; an mlx5 PF its flow steering parameter."""
    queries = [info_query(address), eswitch_query(address)]
    if driver == MLX5_DRIVER:
        queries.append(param_query(address))
    if nv_config:
        queries += [nv_query(address), reset_query(address)]
    elif dpu:
        queries.append(cpu_mode_query(address))
    return queries


class ToolSource(Protocol):
    """Where devlink/mstconfig answers come from (live commands or recorded files)."""

    def answer(self, query: Query) -> str | None: ...

    def origin(self, tool: str) -> str | None: ...

    def eswitch_mode(self, address: str) -> str | None: ...

    def info(self, address: str) -> DevlinkInfo | None: ...

    def cpu_mode(self, address: str) -> str | None: ...


# ---------------------------------------------------------------------------- pure parsers
def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        LOG.warning("ignoring %s: not JSON", what)
        return None


def parse_eswitch(text: str, address: str) -> str | None:
    """``{"dev": {"pci/<addr>": {"mode": "switchdev", ...}}}`` -> ``switchdev``."""
    data = _load(text, f"devlink eswitch output for {address}")
    try:
        mode = data["dev"][f"pci/{address}"]["mode"]
    except (KeyError, TypeError):
        return None
    return mode if mode in (ESWITCH_LEGACY, ESWITCH_SWITCHDEV) else None


def _info_entry(entry: Any) -> DevlinkInfo | None:
    if not isinstance(entry, dict):
        return None
    raw_versions = entry.get("versions")
    versions: dict[str, Any] = raw_versions if isinstance(raw_versions, dict) else {}

    def strings(section: Any) -> dict[str, str]:
        if not isinstance(section, dict):
            return {}
        return {str(k): str(v) for k, v in section.items() if isinstance(v, str | int)}

    driver = entry.get("driver")
    serial = entry.get("serial_number") or entry.get("board.serial_number")
    return DevlinkInfo(driver=driver if isinstance(driver, str) else None,
                       serial=serial if isinstance(serial, str) else None,
                       running=strings(versions.get("running")),
                       fixed=strings(versions.get("fixed")))


def parse_info_all(text: str) -> dict[str, DevlinkInfo]:
    """``devlink -j dev info`` (one or every device) -> PCI address -> info."""
    data = _load(text, "devlink dev info output")
    out: dict[str, DevlinkInfo] = {}
    devices = data.get("info") if isinstance(data, dict) else None
    if not isinstance(devices, dict):
        return out
    for handle, entry in devices.items():
        if isinstance(handle, str) and handle.startswith("pci/"):
            info = _info_entry(entry)
            if info is not None:
                out[handle[4:]] = info
    return out


def parse_param(text: str, address: str, name: str = FLOW_STEERING_PARAM) -> str | None:
    """The runtime value of ``name`` from ``devlink -j dev param show`` output."""
    try:
        data: Any = json.loads(text)
        entries = data["param"][f"pci/{address}"]
        for entry in entries:
            if entry.get("name") != name:
                continue
            for value in entry.get("values", ()):
                if value.get("cmode") == "runtime":
                    return str(value["value"])
    except (ValueError, KeyError, TypeError, AttributeError):
        LOG.warning("ignoring unreadable devlink param output for %s", address)
    return None


def firmware_version(info: DevlinkInfo | None) -> str | None:
    if info is None:
        return None
    for key in _VERSION_KEYS:
        if info.running.get(key):
            return info.running[key]
    return None


def ddp_mode(info: DevlinkInfo | None) -> str | None:
    """ice DDP package -> ``comms`` / ``os_default`` / ``wireless_edge`` (others normalised)."""
    if info is None:
        return None
    name = info.running.get("fw.app.name")
    if not name:
        return None
    if name in ICE_DDP_MODES:
        return ICE_DDP_MODES[name]
    core = re.sub(r"^ICE\s+|\s+Package$", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "_", core.lower()).strip("_") or None


def parse_mstconfig(text: str) -> str | None:
    """BlueField mode from ``mstconfig q``: the Arm cores own the eswitch (``ECPF``) -> dpu;
    the external host does (``EXT_HOST_PF``) -> nic."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _MSTCONFIG_LINE.match(line)
        if match:
            values[match["key"]] = match["value"]
    supplier = values.get("INTERNAL_CPU_PAGE_SUPPLIER", "")
    model = values.get("INTERNAL_CPU_MODEL", "")
    if not model:
        return None
    if not model.startswith("EMBEDDED_CPU"):  # SEPARATED_HOST(0): Arm and host are peers
        return model.split("(", 1)[0].lower()
    if supplier.startswith("ECPF"):
        return FW_DPU
    if supplier.startswith("EXT_HOST_PF"):
        return FW_NIC
    return None


def is_uplink_port(port_name: str | None) -> bool:
    return bool(port_name) and _PORT_UPLINK.fullmatch(port_name or "") is not None


def is_representor_port(port_name: str | None) -> bool:
    return bool(port_name) and _PORT_REPRESENTOR.fullmatch(port_name or "") is not None


def eswitch_from_sysfs(compat_mode: str | None, uplink_switch_id: str | None,
                       representors: int) -> str:
    """Eswitch mode without devlink: mlx5's ``compat/devlink/mode``, else a switch id on the
    uplink together with representor netdevs means switchdev; anything else is legacy."""
    if compat_mode in (ESWITCH_LEGACY, ESWITCH_SWITCHDEV):
        return compat_mode
    if uplink_switch_id and representors:
        return ESWITCH_SWITCHDEV
    return ESWITCH_LEGACY


# ---------------------------------------------------------------------------- sources
class NoTools:
    """devlink disabled or unavailable: everything comes from sysfs."""

    def answer(self, query: Query) -> str | None:
        return None

    def origin(self, tool: str) -> str | None:
        return None

    def eswitch_mode(self, address: str) -> str | None:
        return None

    def info(self, address: str) -> DevlinkInfo | None:
        return None

    def cpu_mode(self, address: str) -> str | None:
        return None


class RecordedTools:
    """Reads what a snapshot (or the tree builder) recorded under the reader's root."""

    def __init__(self, reader: SysfsReader) -> None:
        self._reader = reader

    def _text(self, relative: str) -> str | None:
        try:
            return self._reader.read(self._reader.path(relative))
        except UnreadableAttribute as exc:
            LOG.warning("ignoring recorded tool output: %s", exc)
            return None

    def answer(self, query: Query) -> str | None:
        return self._text(query.recorded)

    def origin(self, tool: str) -> str | None:
        return "recorded"

    def eswitch_mode(self, address: str) -> str | None:
        text = self.answer(eswitch_query(address))
        return None if text is None else parse_eswitch(text, address)

    def info(self, address: str) -> DevlinkInfo | None:
        text = self.answer(info_query(address))
        return None if text is None else parse_info_all(text).get(address)

    def cpu_mode(self, address: str) -> str | None:
        text = self.answer(cpu_mode_query(address))
        return None if text is None else parse_mstconfig(text)


def run_tool(argv: list[str]) -> str | None:
    """Run a read-only tool without a shell; its stdout, or ``None`` when it failed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        LOG.warning("%s failed: %s", " ".join(argv), exc)
        return None
    if done.returncode != 0:
        LOG.debug("%s exited %d: %s", " ".join(argv), done.returncode, done.stderr.strip())
        return None
    return done.stdout


Runner = Callable[[list[str]], "str | None"]


class LiveTools:
    """Asks the running kernel through the installed binaries (``None``: not installed);
    ``devlink dev info`` is asked once for every device and cached."""

    def __init__(self, devlink: str | None, mstconfig: str | None,
                 mlxfwreset: str | None = None, run: Runner = run_tool) -> None:
        self._binaries = {DEVLINK: devlink, NV_TOOL: mstconfig, FW_RESET: mlxfwreset}
        self._run = run
        self._info: dict[str, DevlinkInfo] | None = None

    def answer(self, query: Query) -> str | None:
        binary = self._binaries[query.tool]
        return None if binary is None else self._run([binary, *query.args])

    def origin(self, tool: str) -> str | None:
        binary = self._binaries[tool]
        return None if binary is None else os.path.basename(binary)

    def eswitch_mode(self, address: str) -> str | None:
        text = self.answer(eswitch_query(address))
        return None if text is None else parse_eswitch(text, address)

    def info(self, address: str) -> DevlinkInfo | None:
        devlink = self._binaries[DEVLINK]
        if devlink is None:
            return None
        if self._info is None:
            text = self._run([devlink, "-j", "dev", "info"])
            self._info = {} if text is None else parse_info_all(text)
        return self._info.get(address)

    def cpu_mode(self, address: str) -> str | None:
        text = self.answer(cpu_mode_query(address))
        return None if text is None else parse_mstconfig(text)


def installed_tools(run: Runner = run_tool) -> LiveTools:
    """The running host's ``devlink``, ``mstconfig`` (else ``mlxconfig``) and ``mlxfwreset``,
    where installed."""
    nv = next((path for name in NV_TOOL_NAMES if (path := shutil.which(name))), None)
    return LiveTools(shutil.which(DEVLINK), nv, shutil.which(FW_RESET), run)


def tool_source(reader: SysfsReader, use_devlink: bool = True) -> ToolSource:
    """Live tools only for the running host's own root; recorded files for any other root."""
    if not use_devlink:
        return NoTools()
    if reader.is_live:
        return installed_tools()
    return RecordedTools(reader)
