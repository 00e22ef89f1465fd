"""Guards against Cyborg 17's conductor losing data, applied to a planned report (pure).

``report.plan_report`` says what the host has; what may be *sent* to Cyborg 17.0.0's
conductor is narrower, because the conductor loses data four ways (docs/driver.md,
tests/functional/test_driver_inuse.py and test_driver_handle_order.py reproduce each):

1. it deletes the wrong attach-handle rows (``attach_handle_get_by_filters`` in
   cyborg/db/sqlalchemy/api.py ignores the ``attach_info`` filter that
   ``AttachHandle.get_ah_by_depid_attachinfo`` passes, so ``drv_ah_make_diff`` deletes a
   deployable's newest rows): the ledger below;
2. it deletes attach handles still bound to an ARQ: ``hold_in_use``;
3. it deletes a deployable's DB row before Placement refuses to delete its provider (409,
   allocations), which orphans the provider: ``hold_in_use``;
4. a PF with allocations that vanishes makes every later report of the host fail with 409:
   ``hold_in_use``;

and when the driver does not know what it last sent, ``plan_recovery`` keeps those guards
sound by asking Placement.

Not filed upstream: a search for a Launchpad or StoryBoard report of any of the four found
none. Each guard below says which upstream fix would make it deletable (with its state in
``statefile.py`` and its I/O in ``driver.py``: the state file and Placement reads).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cyborg_smartnic.pci import PciAddress
from cyborg_smartnic.report import DeployableSpec, DeviceSpec


def _sorted_addresses(infos: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(str(PciAddress.from_attach_info(info)) for info in infos))


# -- Losses 2, 3, 4: never drop what an instance is using -----------------------------------------
# Deletable when the conductor refuses to delete an attach handle that is in use (or an ARQ
# bound to it), and asks Placement before deleting a deployable's row; not filed upstream.
@dataclass(frozen=True, slots=True)
class Hold:
    """A pool kept reporting attach handles of VFs that vanished, because it is in use."""

    deployable: str
    vanished: tuple[str, ...]  # attach_info of each kept handle whose VF is gone
    used: int | None  # Placement usage of the pool's RP; None when it could not be read
    frozen_total: int  # num_accelerators reported while held


def vanished_handles(previous: Iterable[DeviceSpec],
                     current: Iterable[DeviceSpec]) -> dict[str, tuple[str, ...]]:
    """Per deployable of ``previous``: the attach handles ``current`` no longer has."""
    now = {dep.name: set(dep.attach_infos) for dev in current for dep in dev.deployables}
    lost = {}
    for dev in previous:
        for dep in dev.deployables:
            gone = tuple(info for info in dep.attach_infos if info not in now.get(dep.name, ()))
            if gone:
                lost[dep.name] = gone
    return lost


def hold_in_use(previous: Sequence[DeviceSpec], current: Sequence[DeviceSpec],
                usage: Mapping[str, int | None]) -> tuple[tuple[DeviceSpec, ...], tuple[Hold, ...]]:
    """``current``, amended so no attach handle an instance may hold is deleted.

    Cyborg's conductor deletes an attach handle that leaves the report even when it is in use,
    after which every read of the bound ARQ fails (``Attach Handle ... not found``), and it
    deletes a deployable's DB row before Placement refuses to delete a provider that still has
    allocations. So for each pool of ``previous`` that lost handles (``vanished_handles``),
    ``usage[name]`` (its resource provider's Placement usage) decides:

    * ``0``: nothing is allocated; the pool shrinks or goes, as discovered.
    * ``> 0``: the pool keeps the vanished handles and reports ``num_accelerators = usage``,
      which leaves no free capacity, so nothing new lands on it (the conductor binds any free
      handle, possibly a vanished one) until its allocations are released; handles it keeps
      are withheld from any other pool meanwhile.
    * ``None`` (usage unknown): the pool is reported exactly as it was last time.
    """
    lost = vanished_handles(previous, current)
    prev_deps = {dep.name: (dev, dep) for dev in previous for dep in dev.deployables}
    cur_deps = {dep.name: dep for dev in current for dep in dev.deployables}
    replaced: dict[str, DeployableSpec] = {}
    holds = []
    for name, gone in sorted(lost.items()):
        used = usage.get(name)
        if used == 0:
            continue
        prev_dep = prev_deps[name][1]
        if used is None:
            held = prev_dep
        else:
            base = cur_deps.get(name, prev_dep)
            infos = tuple(sorted({*base.attach_infos, *gone}))
            held = dataclasses.replace(
                base, attach_infos=infos, num_accelerators=min(used, len(infos)),
                vf_addresses=tuple(sorted({*base.vf_addresses, *_sorted_addresses(gone)})))
        replaced[name] = held
        holds.append(Hold(deployable=name, vanished=gone, used=used,
                          frozen_total=held.num_accelerators))
    if not replaced:
        return tuple(current), ()
    kept = {info for dep in replaced.values() for info in dep.attach_infos}
    devices = {dev.address: dev for dev in current}
    for name, held in replaced.items():
        prev_dev = prev_deps[name][0]
        dev = devices.get(prev_dev.address, dataclasses.replace(prev_dev, deployables=()))
        others = tuple(d for d in dev.deployables if d.name != name)
        devices[dev.address] = dataclasses.replace(
            dev, deployables=tuple(sorted((*others, held), key=lambda d: d.name)))
    amended = []
    for address in sorted(devices, key=PciAddress.parse):
        dev = devices[address]
        deployables = []
        for dep in dev.deployables:
            trimmed = dep if dep.name in replaced else _without(dep, kept)
            if trimmed is not None:
                deployables.append(trimmed)
        amended.append(dataclasses.replace(dev, deployables=tuple(deployables)))
    return tuple(amended), tuple(holds)


def _without(dep: DeployableSpec, withheld: set[str]) -> DeployableSpec | None:
    """``dep`` minus the attach handles another pool is holding (None when nothing is left)."""
    infos = tuple(info for info in dep.attach_infos if info not in withheld)
    if len(infos) == len(dep.attach_infos):
        return dep
    if not infos:
        return None
    return dataclasses.replace(dep, vf_addresses=_sorted_addresses(infos), attach_infos=infos,
                               num_accelerators=len(infos))


# -- Loss 1: removing attach handles the way the conductor can ----------------------------------
# Cyborg 17.0.0's conductor removes an attach handle with AttachHandle.get_ah_by_depid_attachinfo,
# whose DB filter ignores attach_info: it deletes the deployable's newest handle row instead of
# the one that left the report. So a report may only take away the newest rows. The driver
# keeps a ledger of the order in which the conductor created each deployable's rows: a
# deployable created with its handles (in report order) gives one row at a time; handles added
# to an existing deployable arrive as one batch in set order (unknown within the batch).
# Deletable (with the ledger in the state file) when attach_handle_get_by_filters honours
# attach_info; not filed upstream.
Ledger = Mapping[str, tuple[tuple[str, ...], ...]]  # name -> row batches, oldest first


def removal_is_safe(batches: Sequence[Sequence[str]] | None, removed: Iterable[str]) -> bool:
    """True when the rows holding ``removed`` are exactly the newest ``len(removed)`` rows."""
    remaining = set(removed)
    if not remaining:
        return True
    if batches is None:
        return False
    for batch in reversed(batches):
        if not remaining:
            break
        if not set(batch) <= remaining:
            return False
        remaining -= set(batch)
    return not remaining


def unsafe_removals(previous: Iterable[DeviceSpec], current: Iterable[DeviceSpec],
                    ledger: Ledger) -> tuple[str, ...]:
    """Deployables in both reports whose lost handles the conductor would remove wrongly."""
    before = {dep.name: dep for dev in previous for dep in dev.deployables}
    unsafe = []
    for dev in current:
        for dep in dev.deployables:
            old = before.get(dep.name)
            if old is None:
                continue
            removed = set(old.attach_infos) - set(dep.attach_infos)
            if not removal_is_safe(ledger.get(dep.name), removed):
                unsafe.append(dep.name)
    return tuple(sorted(unsafe))


def without_deployables(devices: Iterable[DeviceSpec], names: Iterable[str]
                        ) -> tuple[DeviceSpec, ...]:
    """``devices`` minus the named deployables (their devices stay): a pool left out of one
    report is deleted whole, and recreated whole (rows in known order) by the next."""
    drop = set(names)
    return tuple(dataclasses.replace(
        dev, deployables=tuple(d for d in dev.deployables if d.name not in drop))
        for dev in devices)


def next_ledger(ledger: Ledger, previous: Iterable[DeviceSpec],
                sent: Iterable[DeviceSpec]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """The row order Cyborg's DB has after the conductor applied ``sent`` over ``previous``."""
    before = {dep.name: dep for dev in previous for dep in dev.deployables}
    result: dict[str, tuple[tuple[str, ...], ...]] = {}
    for dev in sent:
        for dep in dev.deployables:
            old = before.get(dep.name)
            if old is None:  # created whole: one row per handle, in report order
                result[dep.name] = tuple((info,) for info in dep.attach_infos)
                continue
            batches = list(ledger.get(dep.name, ()))
            removed = set(old.attach_infos) - set(dep.attach_infos)
            while removed and batches:
                removed -= set(batches.pop())
            added = tuple(sorted(set(dep.attach_infos) - set(old.attach_infos)))
            if added:
                batches.append(added)
            known = {info for batch in batches for info in batch}
            if dep.name in ledger and known == set(dep.attach_infos):
                result[dep.name] = tuple(batches)
            # else: the order is unknown; a later removal will rebuild the pool
    return result


# -- All four: rebuilding the driver's view from Placement -------------------------------------
# When the driver does not know what it last reported (no state file, an unusable one, or a
# report that may not have been applied), it cannot tell which attach handles Cyborg holds nor
# in which row order: sending the scan as it is could make the conductor delete a bound
# handle (it deletes the newest rows, see above). Placement still knows which of this host's
# pools exist, what they offer and whether anything is allocated from them; that decides.
# Deletable together with the guards above: with all four losses fixed upstream, the scan
# can be sent as it is.
@dataclass(frozen=True, slots=True)
class Found:
    """One of this host's pool providers as Placement shows it."""

    pf: str | None  # the PF address its name carries (None: cannot tell)
    usage: int | None  # total allocated; None when Placement could not say
    agrees: bool  # inventory total and traits equal the pool of that name in the scan


@dataclass(frozen=True, slots=True)
class Recovery:
    """What to send while the driver's view is rebuilt (``plan_recovery``)."""

    trusted: tuple[DeviceSpec, ...]  # what Cyborg is taken to hold: scanned pools it has
    stubs: tuple[str, ...]  # PFs to send as stubs: in use and not known to match
    rebuilds: tuple[str, ...]  # unused pools that differ: left out once, then recreated
    blocked: tuple[str, ...]  # providers with allocations that no PF address can be tied to


def plan_recovery(current: Sequence[DeviceSpec], found: Mapping[str, Found]) -> Recovery:
    """Decide, per pool provider Placement shows, how the scan may be sent without harm.

    * no allocations: safe to change. A pool that differs from the scan (total or traits) is
      rebuilt, since its handle rows are unknown; one that matches is taken as it is.
    * allocations, and the scan has the pool exactly as Placement shows it: taken as it is
      (the pool did not change, so the report changes none of its rows).
    * allocations (or usage unknown) and the pool differs or is gone from the scan: its PF
      is sent as a stub, which the conductor leaves untouched, until the allocations go.
    """
    owner = {dep.name: dev.address for dev in current for dep in dev.deployables}
    stubs: set[str] = set()
    rebuilds: set[str] = set()
    blocked: list[str] = []
    for name, pool in sorted(found.items()):
        if pool.usage == 0:
            if name in owner and not pool.agrees:
                rebuilds.add(name)
            continue
        if name in owner and pool.agrees and pool.usage is not None:
            continue
        pf = owner.get(name, pool.pf)
        if pf is None:
            blocked.append(name)
        else:
            stubs.add(pf)
    rebuilds = {name for name in rebuilds if owner[name] not in stubs}
    # Pools Placement lacks are new to Cyborg too: the conductor creates them whole, so they
    # are left out of what Cyborg is believed to hold (their row order is then known).
    # A device none of whose pools Placement has may be new to Cyborg as well: not trusted.
    trusted = tuple(dataclasses.replace(
        dev, deployables=tuple(d for d in dev.deployables if d.name in found))
        for dev in current if dev.address not in stubs
        and any(d.name in found for d in dev.deployables))
    return Recovery(trusted=trusted, stubs=tuple(sorted(stubs, key=PciAddress.parse)),
                    rebuilds=tuple(sorted(rebuilds)), blocked=tuple(blocked))
