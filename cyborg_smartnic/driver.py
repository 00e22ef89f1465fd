"""``smartnic_driver``: the Cyborg accelerator driver cyborg-agent loads (glue only).

cyborg-agent instantiates the class with no arguments through stevedore and calls
``discover()`` every 60 seconds; the conductor then makes Cyborg's DB and Placement match the
returned list. Scanning is ``cyborg_smartnic.discovery``, the mapping is
``cyborg_smartnic.report``; this module reads configuration, remembers the last report and
asks Placement whether a pool that lost VFs is in use before letting them go.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyborg.accelerator.drivers.driver import GenericDriver
from cyborg.common.placement_client import PlacementClient
from cyborg.conf import CONF
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg
from oslo_log import log as logging

from cyborg_smartnic.conf import config_files, unknown_options
from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf
from cyborg_smartnic.errors import ConfigError, SmartNicError
from cyborg_smartnic.host.lock import apply_in_progress, as_last_reported, lock_path
from cyborg_smartnic.pools import load_report_config
from cyborg_smartnic.report import (
    DeployableSpec,
    DeviceSpec,
    Hold,
    dicts_to_specs,
    hold_in_use,
    next_ledger,
    plan_report,
    specs_to_dicts,
    to_driver_devices,
    unsafe_removals,
    vanished_handles,
    without_deployables,
)

LOG = logging.getLogger(__name__)

PCI_DEVICES = "sys/bus/pci/devices"
STATE_VERSION = 1
# Unchanged devices go as stubs (the conductor skips them); every FULL_REPORT_EVERY-th
# cycle, and the first after a start, everything is sent in full to heal a lost report.
FULL_REPORT_EVERY = 10
TRAITS_VERSION = "1.6"  # Placement microversion that added traits

UsageReader = Callable[[Iterable[str]], Mapping[str, int | None]]


class ScanFailed(SmartNicError):
    """The whole scan failed: the cycle's report is skipped, Cyborg keeps the last one."""

    msg_fmt = "scan of %(root)s failed, not reporting this cycle: %(reason)s"


def rp_uuid(deployable_name: str) -> str:
    """The UUID Cyborg's conductor gives a deployable's resource provider."""
    return str(uuid.uuid3(uuid.NAMESPACE_DNS, deployable_name))


class PlacementReader:
    """Reads Placement with cyborg's own client ([placement] options, as the conductor does).

    Called with deployable names it returns their providers' total usage (0 when the provider
    does not exist, None when Placement could not say); ``agrees`` tells whether a pool's
    provider shows what the last report asked for.
    """

    def __init__(self) -> None:
        self._client: Any = None

    def _get(self, path: str, version: str | None = None) -> Any:
        if self._client is None:
            self._client = PlacementClient()
        return self._client.get(path, version=version)

    def __call__(self, names: Iterable[str]) -> dict[str, int | None]:
        result: dict[str, int | None] = {}
        for name in names:
            try:
                response = self._get(f"/resource_providers/{rp_uuid(name)}/usages")
            except ks_exc.NotFound:
                result[name] = 0
                continue
            except Exception as exc:  # any failure means "unknown", never "free"
                LOG.warning("Could not read Placement usage of %s: %s", name, exc)
                result[name] = None
                continue
            if response.status_code == 404:
                result[name] = 0
            elif response.status_code == 200:
                result[name] = sum(int(v) for v in response.json()["usages"].values())
            else:
                LOG.warning("Could not read Placement usage of %s: HTTP %s", name,
                            response.status_code)
                result[name] = None
        return result

    def agrees(self, deployable: DeployableSpec) -> bool:
        """Does the pool's provider have exactly its inventory total and traits? (No on any
        doubt: the caller then sends the device in full.)"""
        base = f"/resource_providers/{rp_uuid(deployable.name)}"
        try:
            inventories = self._get(f"{base}/inventories")
            traits = self._get(f"{base}/traits", version=TRAITS_VERSION)
            if inventories.status_code != 200 or traits.status_code != 200:
                return False
            found = inventories.json()["inventories"]
            return (set(found) == {deployable.resource_class}
                    and found[deployable.resource_class]["total"]
                    == deployable.num_accelerators
                    and set(traits.json()["traits"]) == set(deployable.traits))
        except Exception as exc:
            LOG.debug("Could not compare %s with Placement: %s", deployable.name, exc)
            return False


@dataclass(frozen=True)
class State:
    """What this driver believes Cyborg has: the last report and its handles' row order."""

    report: tuple[DeviceSpec, ...] = ()
    ledger: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)


def load_state(path: str | None) -> State | None:
    """The state a previous agent run saved; None when there is none (or it is unusable)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        ledger = {str(name): tuple(tuple(str(i) for i in batch) for batch in batches)
                  for name, batches in data["ledger"].items()}
        return State(dicts_to_specs(data["report"]), ledger)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        LOG.warning("Ignoring smartnic state file %s: %s", path, exc)
        return None


def save_state(path: str | None, state: State) -> None:
    """Write the state atomically (temporary file + rename); a failure is only logged."""
    if not path:
        return
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    data = {"version": STATE_VERSION, "report": specs_to_dicts(state.report),
            "ledger": {name: [list(batch) for batch in batches]
                       for name, batches in sorted(state.ledger.items())}}
    try:
        temporary.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        LOG.warning("Could not save smartnic state file %s: %s", path, exc)


class SmartNicDriver(GenericDriver):  # type: ignore[misc]
    """SmartNIC VFs as pooled Cyborg deployables (one Placement RP per VF pool)."""

    def __init__(self, conf: cfg.ConfigOpts | None = None,
                 usage_reader: UsageReader | None = None,
                 placement: PlacementReader | None = None) -> None:
        """Read and validate the configuration; a broken one stops cyborg-agent here.

        stevedore's ``DriverManager`` re-raises what this raises, so the agent dies at start
        with the one-line ``ConfigError`` instead of reporting a wrong pool layout.
        """
        conf = CONF if conf is None else conf
        self._conf = conf
        try:
            self.report_config = load_report_config(conf)
            self.scan_options = scan_options_from_conf(conf)
        except cfg.Error as exc:
            raise ConfigError(option="[smartnic]", reason=str(exc)) from exc
        for problem in unknown_options(config_files(conf), list(conf.smartnic.pools)):
            LOG.warning("smartnic driver: %s", problem)
        self._placement = placement or PlacementReader()
        self._usage: UsageReader = usage_reader or self._placement
        self._state_file: str | None = conf.smartnic.state_file
        self._last: State | None = load_state(self._state_file)
        self._last_skipped: frozenset[tuple[str, str]] = frozenset()
        self.holds: tuple[Hold, ...] = ()
        self.rebuilds: tuple[str, ...] = ()
        self.unchanged: tuple[str, ...] = ()
        self._cycles_since_full: int | None = None
        LOG.info("smartnic driver: host %s, %d explicit pool(s), sysfs root %s",
                 self.report_config.hostname, len(self.report_config.pools),
                 conf.smartnic.sysfs_root)

    @property
    def sysfs_root(self) -> str:
        return str(self._conf.smartnic.sysfs_root)

    def discover(self) -> list[Any]:
        """Scan, map and guard: the ``DriverDevice`` list for this cycle.

        One unreadable device is skipped by the scan and logged. If the scan as a whole fails
        (or there is no ``sys/bus/pci/devices`` to scan: a host never has zero PCI functions,
        so that is a wrong root or an unmounted sysfs), ``ScanFailed`` is raised: the agent
        logs it and sends no report this cycle, so Cyborg keeps the last one. Returning ``[]``
        instead would make the conductor delete every deployable and orphan resource
        providers that hold allocations.
        """
        try:
            if not (Path(self.sysfs_root) / PCI_DEVICES).is_dir():
                raise FileNotFoundError(f"no {PCI_DEVICES} directory: is sysfs mounted there?")
            host = scan(self.sysfs_root, self.scan_options)
        except Exception as exc:
            LOG.exception("smartnic scan of %s failed", self.sysfs_root)
            raise ScanFailed(root=self.sysfs_root, reason=str(exc) or type(exc).__name__) \
                from exc
        self._log_skipped(host.skipped)
        current = plan_report(host, self.report_config)
        converging = apply_in_progress(lock_path(self._conf.smartnic.apply_lock_file,
                                                 self.sysfs_root))
        if converging and self._last is not None:  # `host apply` is changing these PFs
            LOG.info("smartnic: host apply is changing %s; reporting them as last reported",
                     ", ".join(sorted(converging)))
            current = as_last_reported(current, self._last.report, converging)
        self.holds, self.rebuilds = (), ()
        if self._last is None:
            # First report since a start without state: assume Cyborg creates (or created)
            # each deployable whole, in report order. True for new deployables and for old
            # ones that never had handles added; [smartnic] state_file makes it exact.
            ledger = next_ledger({}, (), current)
        else:
            current = self._guard(self._last, current)
            ledger = next_ledger(self._last.ledger, self._last.report, current)
        self.unchanged = self._unchanged(current)
        state = State(current, ledger)
        if state != self._last:
            save_state(self._state_file, state)
        self._last = state
        return to_driver_devices(current, self.unchanged)

    def _unchanged(self, current: tuple[DeviceSpec, ...]) -> tuple[str, ...]:
        """Devices to send as stubs: exactly as last reported, and Placement shows their
        pools as that report asked (so it was applied). None on a full cycle."""
        full = (self._cycles_since_full is None
                or self._cycles_since_full + 1 >= FULL_REPORT_EVERY)
        self._cycles_since_full = 0 if full else (self._cycles_since_full or 0) + 1
        if full or self._last is None:
            return ()
        before = {dev.address: dev for dev in self._last.report}
        return tuple(dev.address for dev in current
                     if before.get(dev.address) == dev
                     and all(self._placement.agrees(dep) for dep in dev.deployables))

    def _guard(self, last: State, current: tuple[DeviceSpec, ...]) -> tuple[DeviceSpec, ...]:
        """Amend ``current`` so the conductor can apply it without harm (see docs/driver.md):
        keep handles an instance may hold, and rebuild a pool whose handles the conductor
        would otherwise remove wrongly."""
        lost = vanished_handles(last.report, current)
        if lost:
            current, self.holds = hold_in_use(last.report, current, self._usage(sorted(lost)))
            for hold in self.holds:
                LOG.warning(
                    "Pool %s: %d attach handle(s) vanished (%s) while the pool has %s "
                    "allocation(s); keeping them and freezing its inventory at %d until the "
                    "allocations are released", hold.deployable, len(hold.vanished),
                    ", ".join(hold.vanished), "unknown" if hold.used is None else hold.used,
                    hold.frozen_total)
        self.rebuilds = unsafe_removals(last.report, current, last.ledger)
        if self.rebuilds:
            LOG.warning(
                "Pool(s) %s lose attach handles that Cyborg's conductor would remove wrongly "
                "(it deletes the newest handle rows, whatever their attach_info); they are "
                "unused, so they are left out of this report and recreated by the next one",
                ", ".join(self.rebuilds))
            current = without_deployables(current, self.rebuilds)
        return current

    def _log_skipped(self, skipped: Iterable[Any]) -> None:
        """The scan logs each skip as it happens; this notes, once, what changed."""
        now = frozenset((s.address, s.reason) for s in skipped)
        for address, reason in sorted(now - self._last_skipped):
            LOG.info("smartnic: skipped %s: %s", address, reason)
        self._last_skipped = now

    def update(self, control_path: Any, image_path: Any) -> bool:
        """Firmware updates are out of scope: NIC firmware is flashed with vendor tools."""
        LOG.warning("smartnic driver does not update firmware (%s, %s)", control_path,
                    image_path)
        return False

    def get_stats(self) -> dict[str, Any]:
        """What the last ``discover()`` reported, per deployable (the agent never asks)."""
        report = self._last.report if self._last else ()
        return {dep.name: {"num_accelerators": dep.num_accelerators,
                           "vf_addresses": list(dep.vf_addresses)}
                for dev in report for dep in dev.deployables}
