"""Every oslo.config option of cyborg-smartnic, in one place.

Options live in ``[smartnic]`` of cyborg.conf (the driver registers them on cyborg-agent's
CONF when it is loaded, never at import time). Pools are cinder-style dynamic groups: ``[smartnic]
pools = dpdk,kernel`` names groups ``[smartnic_pool:dpdk]`` and ``[smartnic_pool:kernel]``.
``list_opts`` feeds ``oslo-config-generator --namespace cyborg_smartnic``.
"""

from __future__ import annotations

import copy
import difflib
import os

from oslo_config import cfg

from cyborg_smartnic.traits import DEFAULT_RESOURCE_CLASS

GROUP = "smartnic"
POOL_GROUP_PREFIX = "smartnic_pool:"
SAMPLE_POOL = "dpdk"  # the pool name the generated sample shows (oslo lowercases group names)
PRIVSEP_GROUP = "cyborg_smartnic_privileged"  # oslo.privsep's options for `host apply`
# the firmware steps' own privsep context (host.firmware_privileged), its own options
FIRMWARE_PRIVSEP_GROUP = "cyborg_smartnic_firmware_privileged"

SMARTNIC_OPTS = [
    cfg.StrOpt(
        "sysfs_root", default="/",
        help="Directory that holds sys/ (and proc/) to read. '/' on a real host; an "
             "unpacked `cyborg-smartnic snapshot` or a generated tree in tests."),
    cfg.StrOpt(
        "hostname",
        help="Host name used as the prefix of deployable (resource provider) names. "
             "Defaults to the cyborg-agent's resource provider name, else the FQDN."),
    cfg.ListOpt(
        "devices", default=[],
        help="Which PCI functions count. Each selector is a vendor:device id pair ('15b3:101d', "
             "'8086:*'), a PF netdev name ('ens1f0') or a PF address ('0000:3b:00.0'), "
             "optionally followed by '#' and VF index ranges ('ens1f0#0-3,8'). Empty selects "
             "every PF of a catalogued model. Unknown selector shapes are refused."),
    cfg.ListOpt(
        "physical_device_mappings", default=[],
        help="Physical network of each PF, like the Neutron SR-IOV agent's option: "
             "'physnet1:ens1f0,physnet2:0000:3b:00.1' (PF netdev name or PF address)."),
    cfg.StrOpt(
        "resource_class", default=DEFAULT_RESOURCE_CLASS,
        help="Placement resource class of the default pools (a CUSTOM_* name)."),
    cfg.ListOpt(
        "extra_traits", default=[],
        help="CUSTOM_* traits added to every pool this host reports."),
    cfg.ListOpt(
        "pools", default=[],
        help="Names of explicit VF pools; each has a [smartnic_pool:NAME] group (e.g. pools = "
             "dpdk and [smartnic_pool:dpdk]). VFs not in any explicit pool stay in their PF's "
             "default pool."),
    cfg.ListOpt(
        "extra_models", default=[],
        help="Extra NIC models, 'VVVV:DDDD[:VFDEV]=Model name' (PF vendor and device id, "
             "optional VF device id); overrides a built-in row with the same ids."),
    cfg.BoolOpt(
        "use_devlink", default=True,
        help="Ask `devlink -j` for eswitch mode and firmware when the command exists; "
             "otherwise these are inferred from sysfs."),
    cfg.StrOpt(
        "pci_ids_path",
        help="pci.ids file for names of models the catalogue lacks. Default: the usual "
             "pciutils locations, when installed."),
    cfg.StrOpt(
        "state_file", default="$state_path/smartnic-last-report.json",
        help="File where the driver keeps its last report and the order of Cyborg's "
             "attach-handle rows, so that after an agent restart it still protects VFs in use "
             "that vanished or changed physnet (docs/driver.md). '$state_path' is cyborg's "
             "[DEFAULT] state_path. Empty: remembered in memory only (not safe across "
             "restarts)."),
    cfg.IntOpt(
        "audit_interval", default=10, min=0,
        help="Every this many report cycles the driver sends one unchanged PF (in turn) in "
             "full, so that Cyborg's conductor recreates attach handles or deployables its "
             "database lost; Placement-side drift is found every cycle without it. Costs "
             "about 1 s of conductor CPU per 128 VFs of the PF. 0: never (docs/driver.md)."),
    cfg.StrOpt(
        "apply_lock_file",
        help="Lock file that `cyborg-smartnic host apply` holds (flock) while it plans and "
             "changes this host; the driver reads it to keep reporting the PFs being changed "
             "as it last did. Default: run/cyborg-smartnic/host-apply.lock under sysfs_root "
             "(/run/cyborg-smartnic/host-apply.lock on a real host). The agent and the host "
             "tool must see the same file (bind-mount /run/cyborg-smartnic into a "
             "containerised agent)."),
    cfg.StrOpt(
        "apply_state_dir",
        help="Directory where `cyborg-smartnic host apply` records the plan left when a "
             "firmware change needs a reboot (host-apply-resume.json), for `host apply "
             "--resume` at boot. Default: var/lib/cyborg-smartnic under sysfs_root "
             "(/var/lib/cyborg-smartnic on a real host)."),
    cfg.FloatOpt(
        "privileged_call_timeout", default=90.0, min=1.0,
        help="Seconds `host apply` waits for one call to its privsep daemon (a sysfs write, "
             "or a devlink command, which gets 60 s inside the daemon) before failing the "
             "step and rolling back."),
]

POOL_OPTS = [
    cfg.ListOpt(
        "devices", default=[],
        help="Selectors (same syntax as [smartnic] devices) of the VFs in this pool, "
             "e.g. 'ens1f0#0-3'. Required."),
    cfg.StrOpt(
        "resource_class",
        help="Resource class of this pool; default [smartnic] resource_class."),
    cfg.ListOpt("traits", default=[], help="Extra CUSTOM_* traits of this pool."),
    cfg.StrOpt(
        "physnet",
        help="Physical network of this pool; default the PF's physical_device_mappings."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the [smartnic] options and one group per configured pool name."""
    conf.register_opts(SMARTNIC_OPTS, group=GROUP)


def register_pool_opts(conf: cfg.ConfigOpts, names: list[str]) -> None:
    for name in names:
        conf.register_opts(POOL_OPTS, group=POOL_GROUP_PREFIX + name)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    # Imported here: oslo.privsep pulls in eventlet, which only `host apply` needs.
    from oslo_privsep import priv_context  # noqa: PLC0415

    # The sample shows one pool group under an example name: oslo.config lowercases group
    # names, so a placeholder such as NAME would read as a pool called "name".
    return [(GROUP, SMARTNIC_OPTS), (POOL_GROUP_PREFIX + SAMPLE_POOL, POOL_OPTS),
            (PRIVSEP_GROUP, copy.deepcopy(priv_context.OPTS)),
            (FIRMWARE_PRIVSEP_GROUP, copy.deepcopy(priv_context.OPTS))]


class _LineParser(cfg.ConfigParser):
    """oslo.config's own ini parser, remembering the line of each assignment."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename, {})
        self.found: list[tuple[str, str, int]] = []  # (section, key, line)
        self.section_lines: dict[str, int] = {}
        self._key_line = 0

    def new_section(self, section: str) -> None:
        super().new_section(section)
        self.section_lines.setdefault(section, self.lineno)

    def _split_key_value(self, line: str) -> tuple[str, list[str]]:
        self._key_line = self.lineno  # assignment() runs later, after continuation lines
        return super()._split_key_value(line)

    def assignment(self, key: str, value: list[str]) -> None:
        super().assignment(key, value)
        self.found.append((self.section or "", key, self._key_line))


def _known(opts: list[cfg.Opt]) -> set[str]:
    names = set()
    for opt in opts:
        names.update({opt.name, opt.dest})
        names.update(d.name for d in opt.deprecated_opts if d.name)
    return names


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_options(files: list[str], pools: list[str]) -> list[str]:
    """``FILE:LINE: [group] key: ...`` for each option of ours oslo.config would ignore.

    oslo.config ignores options nobody registered, so a typo such as
    ``physical_device_mapings`` silently leaves the default in force. This looks at the
    ``[smartnic]`` and ``[smartnic_pool:NAME]`` sections of ``files`` (and at sections whose
    name is close to ours), nothing else: other groups belong to Cyborg and oslo libraries.
    """
    opts = {GROUP: sorted(_known(SMARTNIC_OPTS)), POOL_GROUP_PREFIX: sorted(_known(POOL_OPTS))}
    ours = [GROUP, POOL_GROUP_PREFIX + "NAME"]
    problems = []
    for path in files:
        parser = _LineParser(path)
        try:
            parser.parse()
        except (OSError, cfg.ParseError):
            continue  # oslo.config itself reports unreadable files
        reported: set[str] = set()
        for section, key, key_line in parser.found:
            head = f"{path}:{parser.section_lines.get(section, key_line)}: [{section}]"
            group = section.lower()  # oslo.config matches group names case-insensitively
            if group == GROUP or group.startswith(POOL_GROUP_PREFIX):
                known = opts[GROUP if group == GROUP else POOL_GROUP_PREFIX]
                name = section[len(POOL_GROUP_PREFIX):]
                if group != GROUP and name.lower() not in {p.lower() for p in pools}:
                    if section not in reported:
                        reported.add(section)
                        problems.append(f"{head}: pool {name!r} is not in [{GROUP}] pools, "
                                        "so this group is ignored")
                elif key not in known:
                    problems.append(f"{path}:{key_line}: [{section}] {key}: unknown option, "
                                    "ignored" + _suggest(key, known))
            elif section not in reported and section.lower() != "default" and \
                    difflib.get_close_matches(section.split(":")[0], [GROUP, POOL_GROUP_PREFIX
                                                                     .rstrip(":")], 1, 0.8):
                reported.add(section)
                problems.append(f"{head}: unknown section, ignored" + _suggest(section, ours))
    return problems


def config_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files ``conf`` was read from (``--config-file``, then ``--config-dir``'s *.conf)."""
    files = [str(f) for f in (getattr(conf, "config_file", None) or [])]
    directory = getattr(conf, "config_dir", None)
    if isinstance(directory, str) and os.path.isdir(directory):
        files.extend(sorted(os.path.join(directory, name) for name in os.listdir(directory)
                            if name.endswith(".conf")))
    return files
