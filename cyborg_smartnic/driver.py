"""``smartnic_driver``: the Cyborg accelerator driver cyborg-agent loads (glue only).

cyborg-agent instantiates the class with no arguments through stevedore and calls
``discover()`` every 60 seconds; the conductor then makes Cyborg's DB and Placement match the
returned list. Scanning is ``cyborg_smartnic.discovery``, the mapping is
``cyborg_smartnic.report``; this module reads configuration, remembers the last report and
asks Placement whether a pool that lost VFs is in use before letting them go.
"""

from __future__ import annotations

import logging as std_logging
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cyborg.accelerator.drivers.driver import GenericDriver
from cyborg.common.placement_client import PlacementClient
from cyborg.conf import CONF
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg
from oslo_log import log as logging

from cyborg_smartnic.conductor_guards import (
    Found,
    Hold,
    hold_in_use,
    next_ledger,
    plan_recovery,
    unsafe_removals,
    vanished_handles,
    without_deployables,
)
from cyborg_smartnic.conf import config_files, unknown_options
from cyborg_smartnic.discovery.scan import scan, scan_options_from_conf
from cyborg_smartnic.errors import ConfigError, SmartNicError
from cyborg_smartnic.host.lock import apply_in_progress, as_last_reported, lock_path
from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.pools import load_report_config
from cyborg_smartnic.report import (
    DeployableSpec,
    DeviceSpec,
    name_prefix,
    pf_of_name,
    plan_report,
    to_driver_devices,
)
from cyborg_smartnic.statefile import (  # noqa: F401  (State, load_state: public here too)
    STATE_VERSION,
    State,
    StateLock,
    load_state,
    save_state,
)

LOG = logging.getLogger(__name__)

PCI_DEVICES = "sys/bus/pci/devices"
TRAITS_VERSION = "1.6"  # Placement microversion that added traits
TREE_VERSION = "1.14"  # Placement microversion that added nested providers (in_tree)

UsageReader = Callable[[Iterable[str]], Mapping[str, int | None]]
# The loggers a scan writes to (skipped devices, malformed attributes, devlink trouble).
SCAN_LOGGERS = ("cyborg_smartnic.discovery.scan", "cyborg_smartnic.discovery.devlink",
                "cyborg_smartnic.discovery.pciids")


class OncePerChange(std_logging.Filter):
    """Lets a line through only if the previous cycle did not log it too.

    The scan logs what it finds wrong (a skipped device, a malformed attribute) every time it
    runs; in cyborg-agent that is every 60 seconds. Through this filter a line is logged when
    it first appears, and again only after a cycle without it."""

    def __init__(self) -> None:
        super().__init__()
        self._previous: set[tuple[str, int, str]] = set()
        self._current: set[tuple[str, int, str]] = set()

    def filter(self, record: std_logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        self._current.add(key)
        return key not in self._previous

    @contextmanager
    def cycle(self, names: Iterable[str]) -> Iterator[None]:
        """Filter ``names``' loggers for one cycle."""
        loggers = [std_logging.getLogger(name) for name in names]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(self)
            self._previous, self._current = self._current, set()


class ScanFailed(SmartNicError):
    """The whole scan failed: the cycle's report is skipped, Cyborg keeps the last one."""

    msg_fmt = "scan of %(root)s failed, not reporting this cycle: %(reason)s"


class RecoveryFailed(SmartNicError):
    """The driver does not know what Cyborg holds and Placement could not tell it: no report
    this cycle (Cyborg keeps the last one), retried the next."""

    msg_fmt = ("smartnic driver does not know this host's last report and could not re-read "
               "it from Placement, not reporting this cycle: %(reason)s")


def rp_uuid(deployable_name: str) -> str:
    """The UUID Cyborg's conductor gives a deployable's resource provider."""
    return str(uuid.uuid3(uuid.NAMESPACE_DNS, deployable_name))


@dataclass(frozen=True)
class Provider:
    """One provider of the compute node's tree, as ``GET /resource_providers?in_tree=``
    lists it: its generation moves with every change of its inventory, traits or
    allocations."""

    uuid: str
    generation: int


@dataclass(frozen=True)
class Tree:
    """The compute node's provider tree: ``{name: Provider}`` of every provider under it."""

    root: str
    providers: Mapping[str, Provider]


class PlacementReader:
    """Reads Placement with cyborg's own client ([placement] options, as the conductor does).

    Called with deployable names it returns their providers' total usage (0 when the provider
    does not exist, None when Placement could not say); ``agrees`` tells whether a pool's
    provider shows what the last report asked for; ``tree`` lists the compute node's
    providers with their generations in one request (the compute node's UUID is looked up
    once and kept).
    """

    def __init__(self) -> None:
        self._client: Any = None
        self._root: str | None = None

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

    def tree(self, roots: Iterable[str]) -> Tree:
        """Every provider in the tree of the compute node: one ``GET /resource_providers?
        in_tree=<uuid>`` once its UUID is known. The UUID is looked up by the first of
        ``roots`` (compute node provider names) that Placement knows, and again when the
        tree no longer contains it (the compute node provider was deleted and recreated).
        Raises ``RecoveryFailed`` when Placement cannot say (an empty answer is never
        taken for "no pools")."""
        try:
            if self._root is not None:
                tree = self._in_tree(self._root)
                if tree is not None:
                    return tree
                self._root = None
            for root in roots:
                found = self._get(f"/resource_providers?name={urllib.parse.quote(root)}")
                if found.status_code != 200:
                    raise RecoveryFailed(reason=f"GET /resource_providers?name={root}: HTTP "
                                                f"{found.status_code}")
                providers = found.json()["resource_providers"]
                if providers:
                    tree = self._in_tree(providers[0]["uuid"])
                    if tree is None:
                        raise RecoveryFailed(reason=f"compute node provider {root} vanished "
                                                    "while it was read")
                    self._root = tree.root
                    return tree
        except RecoveryFailed:
            raise
        except Exception as exc:
            raise RecoveryFailed(reason=str(exc) or type(exc).__name__) from exc
        raise RecoveryFailed(reason=f"no compute node provider named {', '.join(roots)}")

    def _in_tree(self, root: str) -> Tree | None:
        """The tree under provider ``root``; None when Placement does not have ``root``."""
        try:
            response = self._get(f"/resource_providers?in_tree={root}", version=TREE_VERSION)
        except ks_exc.NotFound:
            return None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RecoveryFailed(reason=f"GET /resource_providers?in_tree=: HTTP "
                                        f"{response.status_code}")
        providers = response.json()["resource_providers"]
        if not any(rp["uuid"] == root for rp in providers):
            return None
        return Tree(root, {rp["name"]: Provider(rp["uuid"], int(rp["generation"]))
                           for rp in providers if rp["uuid"] != root})

    def delete(self, name: str) -> bool:
        """Delete the provider of deployable ``name`` (Placement refuses while it has
        allocations); True when it is gone."""
        try:
            if self._client is None:
                self._client = PlacementClient()
            response = self._client.delete(f"/resource_providers/{rp_uuid(name)}")
        except ks_exc.NotFound:
            return True
        except Exception as exc:
            LOG.warning("Could not delete provider %s from Placement: %s", name, exc)
            return False
        if response.status_code in (204, 404):
            return True
        LOG.warning("Could not delete provider %s from Placement: HTTP %s", name,
                    response.status_code)
        return False

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


def changes(previous: Iterable[DeviceSpec], sent: Iterable[DeviceSpec]
            ) -> tuple[frozenset[str], dict[str, str]]:
    """(PFs whose devices ``sent`` changes, ``{pool name: PF}`` of the pools it drops)."""
    before = {dev.address: dev for dev in previous}
    now = {dev.address: dev for dev in sent}
    changed = {address for address in before.keys() | now.keys()
               if before.get(address) != now.get(address)}
    kept = {dep.name for dev in now.values() for dep in dev.deployables}
    dropped = {dep.name: dev.address for dev in before.values() for dep in dev.deployables
               if dep.name not in kept}
    return frozenset(changed), dropped


def kept_generations(last: State, sent: Iterable[DeviceSpec]) -> dict[str, int]:
    """The generations of ``last`` still valid once ``sent`` is applied: those of the pools
    it sends exactly as ``last`` had them (the conductor writes nothing for them)."""
    before = {dep.name: dep for dev in last.report for dep in dev.deployables}
    return {dep.name: last.generations[dep.name] for dev in sent for dep in dev.deployables
            if dep.name in last.generations and before.get(dep.name) == dep}


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
        self._state_file: str | None = conf.smartnic.state_file or None
        self._lock = StateLock(self._state_file)  # a second agent on this file stops here
        self._last: State | None = load_state(self._state_file, self.report_config.hostname)
        self._last_skipped: frozenset[tuple[str, str]] = frozenset()
        self._scan_log = OncePerChange()
        self._no_physnet: tuple[str, ...] = ()
        self.holds: tuple[Hold, ...] = ()
        self.rebuilds: tuple[str, ...] = ()
        self.unchanged: tuple[str, ...] = ()
        self.stubs: tuple[str, ...] = ()
        self._recovered_rebuilds: tuple[str, ...] = ()
        self._save_failure: str | None = None
        # PFs the last report changed (checked against Placement and sent in full once
        # more), the pools it dropped (name -> PF address), the pools whose provider
        # Placement lacks this cycle, the tree Placement showed this cycle.
        self._confirm: frozenset[str] = frozenset()
        self._dropped: dict[str, str] = {}
        self._missing: frozenset[str] = frozenset()
        self._tree: Tree | None = None
        # The audit: one unchanged PF sent in full every [smartnic] audit_interval cycles.
        self._cycles = 0
        self.audited: str | None = None  # the PF audited this cycle
        self.audited_last: str | None = None  # the last PF audited (the turn goes on from it)
        self.checked: tuple[str, ...] = ()  # pools compared with Placement this cycle
        LOG.info("smartnic driver: host %s, %d explicit pool(s), sysfs root %s",
                 self.report_config.hostname, len(self.report_config.pools),
                 conf.smartnic.sysfs_root)

    def close(self) -> None:
        """Let go of the state file (another driver may then use it)."""
        self._lock.release()

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
            with self._scan_log.cycle(SCAN_LOGGERS):
                host = scan(self.sysfs_root, self.scan_options)
        except Exception as exc:
            LOG.exception("smartnic scan of %s failed", self.sysfs_root)
            raise ScanFailed(root=self.sysfs_root, reason=str(exc) or type(exc).__name__) \
                from exc
        self._log_skipped(host.skipped)
        current = plan_report(host, self.report_config)
        self._log_no_physnet(current)
        converging = apply_in_progress(lock_path(self._conf.smartnic.apply_lock_file,
                                                 self.sysfs_root))
        if converging and self._last is not None:  # `host apply` is changing these PFs
            LOG.info("smartnic: host apply is changing %s; reporting them as last reported",
                     ", ".join(sorted(converging)))
            current = as_last_reported(current, self._last.report, converging)
        self.holds, self.rebuilds = (), ()
        # One request when nothing changed: every provider's generation (RecoveryFailed,
        # no report this cycle, when Placement cannot be read: the conductor could not
        # apply one either).
        self._tree = self._placement.tree(self._compute_node_names())
        full: frozenset[str] = frozenset()
        saved = self._last
        if self._last is not None:
            self._last, full = self._check(self._last, self._tree)
        if self._last is None or self._last.unknown:
            # Not known what Cyborg holds for (some) PFs: Placement decides (RecoveryFailed
            # when it cannot, and nothing is reported this cycle).
            last, current = self._recover(self._last, current)
        else:
            last, self.stubs = self._last, ()
        current = self._guard(last, current)
        ledger = next_ledger(last.ledger, last.report, current)
        before = {dev.address: dev for dev in last.report}
        same = [dev.address for dev in current
                if before.get(dev.address) == dev and dev.address not in full]
        self.audited = self._audit(same)
        self.unchanged = tuple(a for a in same if a != self.audited)
        state = State(current, ledger, frozenset(self.stubs), kept_generations(last, current))
        self._confirm, dropped = changes(last.report, current)
        sent = {dep.name for dev in current for dep in dev.deployables}
        # a dropped pool is watched until Placement shows it gone
        self._dropped = {name: address for name, address in {**self._dropped, **dropped}.items()
                         if name not in sent}
        if state != saved:
            failure = save_state(self._state_file, state, self.report_config.hostname,
                                 log=False)
            if failure and failure != self._save_failure:  # once per change, not each cycle
                LOG.warning("%s", failure)
            elif self._save_failure and not failure:
                LOG.info("smartnic state file %s saved again", self._state_file)
            self._save_failure = failure
        self._last = state
        return to_driver_devices(self._with_stubs(current), (*self.unchanged, *self.stubs))

    def _recover(self, last: State | None, current: tuple[DeviceSpec, ...]
                 ) -> tuple[State, tuple[DeviceSpec, ...]]:
        """Rebuild what Cyborg holds from Placement for the PFs ``last`` does not cover
        (all when there is no ``last``): ``(the state to guard against, current minus the PFs
        sent as stubs)``. See ``conductor_guards.plan_recovery`` and docs/driver.md."""
        scope = None if last is None else last.unknown
        hostname = self.report_config.hostname
        owner = {dep.name: dev.address for dev in current for dep in dev.deployables}
        tree = self._tree or self._placement.tree(self._compute_node_names())
        pools = {name: rp.uuid for name, rp in tree.providers.items()}
        ours = {name: owner.get(name) or pf_of_name(hostname, name) for name in pools
                if name in owner or name.startswith(name_prefix(hostname))}
        if scope is not None:
            ours = {name: pf for name, pf in ours.items() if pf in scope}
        usage = self._usage(sorted(ours))
        specs = {dep.name: dep for dev in current for dep in dev.deployables}
        found = {name: Found(pf=pf, usage=usage.get(name),
                             agrees=name in specs and self._placement.agrees(specs[name]))
                 for name, pf in ours.items()}
        in_scope = tuple(dev for dev in current if scope is None or dev.address in scope)
        plan = plan_recovery(in_scope, found)
        if plan.blocked:
            raise RecoveryFailed(reason=f"provider(s) {', '.join(plan.blocked)} have "
                                        "allocations and no PF address in their name")
        if plan.stubs != self.stubs:
            if plan.stubs:
                LOG.warning("smartnic: PF(s) %s have pools with allocations that the driver "
                            "cannot match with the scan; they are reported unchanged (stub) "
                            "until Placement shows them free", ", ".join(plan.stubs))
            else:
                LOG.info("smartnic: every PF is reported as scanned again")
        self.stubs = plan.stubs
        # A pool the last report had whose provider is gone: Cyborg may still hold it, and
        # the conductor would not recreate the provider of a deployable it has; left out
        # once (the conductor deletes the deployable), the next report creates both whole.
        gone = {name for name in self._missing if name in owner and name not in pools
                and owner[name] not in plan.stubs}
        self._recovered_rebuilds = tuple(sorted({*plan.rebuilds, *gone}))
        self._delete_orphans(found, owner)
        # PFs outside the scope keep what ``last`` knows (``last`` holds nothing of the others)
        believed = State(tuple(sorted((*(last.report if last else ()), *plan.trusted),
                                      key=lambda d: PciAddress.parse(d.address))),
                         dict(last.ledger) if last else {},
                         generations=dict(last.generations) if last else {})
        return believed, tuple(dev for dev in current if dev.address not in plan.stubs)

    def _check(self, last: State, tree: Tree) -> tuple[State, frozenset[str]]:
        """``(last minus the PFs whose last report Placement does not show as applied,
        the PFs to send in full)``, reading only the pools whose provider moved.

        A pool is compared with Placement (``agrees``: inventory total and traits) when its
        provider's generation is not the one remembered when it last agreed (Placement
        changed it: an allocation, the conductor, or someone else), when none is remembered
        (a new pool, a state file without generations), or when the last report changed its
        PF (the driver cannot see whether the conductor applied a report: the RPC can fail,
        the conductor can stop half way). Such PFs are sent in full once more, which lets
        the conductor finish a report that stopped after Placement. A pool whose provider
        is gone, or that does not agree, makes its PF doubtful: unknown, re-read from
        Placement by ``_recover`` (a pool Placement lacks is rebuilt there). A pool the last
        report dropped must be gone from the tree."""
        generations = dict(last.generations)
        doubtful: set[str] = set()
        full: set[str] = set()
        missing: set[str] = set()
        checked: list[str] = []
        for dev in last.report:
            changed = dev.address in self._confirm
            if changed or any(dep.name not in generations for dep in dev.deployables):
                full.add(dev.address)
            for dep in dev.deployables:
                seen = tree.providers.get(dep.name)
                if seen is None:
                    missing.add(dep.name)
                    doubtful.add(dev.address)
                elif changed or generations.get(dep.name) != seen.generation:
                    checked.append(dep.name)
                    if self._placement.agrees(dep):
                        generations[dep.name] = seen.generation
                    else:
                        doubtful.add(dev.address)
        for name, address in list(self._dropped.items()):
            if name in tree.providers:
                doubtful.add(address)
            else:
                del self._dropped[name]  # gone, as asked
        self.checked, self._missing = tuple(checked), frozenset(missing)
        if not doubtful:
            return replace(last, generations=generations), frozenset(full)
        LOG.warning("smartnic: Placement does not show the last report of PF(s) %s as "
                    "applied (%s); re-reading it before reporting them again",
                    ", ".join(sorted(doubtful)),
                    f"provider(s) {', '.join(sorted(missing))} gone" if missing
                    else "inventory or traits differ")
        names = {dep.name for dev in last.report if dev.address in doubtful
                 for dep in dev.deployables}
        return (State(tuple(dev for dev in last.report if dev.address not in doubtful),
                      {name: rows for name, rows in last.ledger.items() if name not in names},
                      last.unknown | doubtful,
                      {name: g for name, g in generations.items() if name not in names}),
                frozenset(full | doubtful))

    def _delete_orphans(self, found: Mapping[str, Found], owner: Mapping[str, str]) -> None:
        """Delete providers the last report dropped that are still in Placement, unused.

        Cyborg's conductor deletes a dropped deployable from its database first and then
        its provider; when the Placement call fails, nothing will ever delete the provider
        (Cyborg no longer knows it). If Cyborg does still have the deployable, this cycle's
        report deletes it anyway. Placement refuses the delete if an allocation arrived."""
        for name, pool in sorted(found.items()):
            if (name in self._dropped and name not in owner and pool.usage == 0
                    and pool.pf not in self.stubs):
                LOG.warning("smartnic: deleting provider %s from Placement: the last report "
                            "dropped it and it is still there, unused (the conductor's "
                            "delete did not complete)", name)
                if self._placement.delete(name):
                    self._dropped.pop(name, None)

    def _compute_node_names(self) -> list[str]:
        """Names cyborg-agent may have given the compute node's provider (it tries
        ``[agent] resource_provider_name``, then ``[DEFAULT] host``), then ours."""
        names = []
        if "agent" in self._conf and "resource_provider_name" in self._conf.agent:
            names.append(self._conf.agent.resource_provider_name)
        if "host" in self._conf:
            names.append(self._conf.host)
        names.append(self.report_config.hostname)
        return list(dict.fromkeys(n for n in names if n))

    def _with_stubs(self, current: tuple[DeviceSpec, ...]) -> tuple[DeviceSpec, ...]:
        """``current`` plus a placeholder for each stubbed PF (the conductor reads only a
        stub's address, and leaves that device exactly as it is)."""
        placeholders = tuple(DeviceSpec(address=address, vendor="", model="",
                                        std_board_info="", deployables=())
                             for address in self.stubs)
        return (*current, *placeholders)

    def _audit(self, unchanged: list[str]) -> str | None:
        """The PF of ``unchanged`` to send in full this cycle, if this is an audit cycle.

        Placement's generations show every change on Placement's side, but nothing shows
        what Cyborg's database lost (an attach handle or deployable row deleted by hand, a
        report the conductor applied only in part): the conductor diffs a full device
        against its database and recreates what is missing. Every ``[smartnic]
        audit_interval``-th cycle one unchanged PF, in turn, is sent in full (about 1 s of
        conductor CPU per 128 VFs; bench/README.md "Report cycle")."""
        self._cycles += 1
        every = int(self._conf.smartnic.audit_interval)
        if every <= 0 or self._cycles % every or not unchanged:
            return None
        ordered = sorted(unchanged, key=PciAddress.parse)
        previous = None if self.audited_last is None else PciAddress.parse(self.audited_last)
        after = [a for a in ordered if previous is not None and PciAddress.parse(a) > previous]
        self.audited_last = (after or ordered)[0]
        return self.audited_last

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
        recovered, self._recovered_rebuilds = self._recovered_rebuilds, ()
        self.rebuilds = tuple(sorted({*unsafe_removals(last.report, current, last.ledger),
                                      *recovered}))
        if self.rebuilds:
            LOG.warning(
                "Pool(s) %s lose attach handles that Cyborg's conductor would remove wrongly "
                "(it deletes the newest handle rows, whatever their attach_info); they are "
                "unused, so they are left out of this report and recreated by the next one",
                ", ".join(self.rebuilds))
            current = without_deployables(current, self.rebuilds)
        return current

    def _log_skipped(self, skipped: Iterable[Any]) -> None:
        """The scan logs each skip (once per change, ``OncePerChange``); this notes when a
        device is readable again."""
        now = frozenset((s.address, s.reason) for s in skipped)
        for address in sorted({a for a, _ in self._last_skipped} - {a for a, _ in now}):
            LOG.info("smartnic: %s is no longer skipped", address)
        self._last_skipped = now

    def _log_no_physnet(self, current: Iterable[DeviceSpec]) -> None:
        """Warn, once per change, about pools without a physical network: their attach
        handles lack ``physical_network``, which Nova's accelerator-direct ports need."""
        names = tuple(dep.name for dev in current for dep in dev.deployables
                      if not dep.physnet)
        if names and names != self._no_physnet:
            LOG.warning("smartnic: pool(s) %s have no physical network ([smartnic] "
                        "physical_device_mappings or [smartnic_pool:NAME] physnet): their "
                        "attach handles carry no physical_network, so Neutron ports of "
                        "vnic type accelerator-direct cannot use them", ", ".join(names))
        self._no_physnet = names

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
