"""How the host commands read the host: which PFs to scan, and the executor's narrow re-reads.

Kept out of the CLI so the rescan policy (widen the scan once host.yaml names a NIC the
catalogue does not know, and keep it wide for every later rescan) has one home that the
CLI, the bench and the tests all use.
"""

from __future__ import annotations

import dataclasses
import os

from oslo_config import cfg

from cyborg_smartnic.discovery.model import Host, HugepagePool
from cyborg_smartnic.discovery.scan import (
    ScanOptions,
    scan,
    scan_function,
    scan_hugepages,
    scan_options_from_conf,
)
from cyborg_smartnic.discovery.selection import parse_selector
from cyborg_smartnic.discovery.sysfs import check_root
from cyborg_smartnic.host import lock as host_lock
from cyborg_smartnic.host.config import HostConfig
from cyborg_smartnic.host.devlink_params import with_flow_steering
from cyborg_smartnic.host.plan import selects


def apply_state_dir(conf: cfg.ConfigOpts) -> str:
    """Where ``host apply`` keeps its records: ``[smartnic] apply_state_dir``, else a
    directory under the sysfs root (so a generated host keeps its own)."""
    return str(conf.smartnic.apply_state_dir
               or os.path.join(str(conf.smartnic.sysfs_root), "var/lib/cyborg-smartnic"))


class HostReader:
    """Scans for the host commands: every catalogued PF, plus PFs host.yaml names explicitly.

    A default scan leaves out NICs the catalogue does not know; when host.yaml names one, the
    scan is repeated with selectors for every catalogued model plus host.yaml's entries, and
    every later rescan (during apply) keeps those selectors. ``read_pf`` and
    ``read_hugepages`` are the executor's per-step re-reads: one PF (all its VFs) or the
    hugepage pools, without walking the rest of the host.
    """

    def __init__(self, conf: cfg.ConfigOpts, config: HostConfig | None = None) -> None:
        """``conf``: a ConfigOpts with ``[smartnic]`` registered (``cli.common.load_config``)."""
        self.root = str(conf.smartnic.sysfs_root)
        check_root(self.root)  # a mistyped root is one error line, not "no PF on this host"
        self.options = dataclasses.replace(scan_options_from_conf(conf), selectors=())
        self.config = config
        self.hostname = self.options.hostname or ""
        self.lock_path = host_lock.lock_path(conf.smartnic.apply_lock_file, self.root)
        self.state_dir = apply_state_dir(conf)
        self.call_timeout = float(conf.smartnic.privileged_call_timeout)

    def read(self) -> Host:
        host = self._scan(self.options)
        self.hostname = host.hostname
        if self.config is None or self.options.selectors:
            return host
        if all(any(selects(d, pf) for pf in host.physical_functions)
               for d in self.config.devices):
            return host
        named = {d.selector_text for d in self.config.devices}
        known = {f"{m.vendor_id}:{m.device_id}" for m in self.options.catalog.models}
        self.options = dataclasses.replace(
            self.options, selectors=tuple(parse_selector(text) for text in sorted(named | known)))
        return self._scan(self.options)

    def read_pf(self, address: str) -> Host:
        """A ``Host`` holding only the PF at ``address`` (none when it is gone), every VF."""
        found = scan_function(self.root, address, dataclasses.replace(
            self.options, selectors=(parse_selector(address),)))
        host = Host(hostname=self.hostname,
                    physical_functions=() if found.pf is None else (found.pf,),
                    skipped=found.skipped)
        return with_flow_steering(host, self.root)

    def read_hugepages(self) -> tuple[HugepagePool, ...]:
        return scan_hugepages(self.root)

    def _scan(self, options: ScanOptions) -> Host:
        return with_flow_steering(scan(self.root, options), self.root)
