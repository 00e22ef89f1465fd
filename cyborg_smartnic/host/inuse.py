"""Which VFs something is using right now (read-only), so a plan never destroys them.

Witnesses, each naming the user:

- a process holding one of the VF's device nodes open, as its ``/proc/<pid>/fd`` links spell
  them (also ``... (deleted)`` when the node was unlinked): the VF's vfio group
  ``/dev/vfio/<group>`` or ``/dev/vfio/noiommu-<group>``, its vfio cdev
  ``/dev/vfio/devices/vfioN``, its uio node ``/dev/uioN`` (``uio_pci_generic``, ``igb_uio``
  DPDK), its RDMA nodes ``/dev/infiniband/uverbsN``/``umadN``/``issmN`` (mlx5 bifurcated DPDK:
  the VF stays on ``mlx5_core``);
- the VF netdev enslaved to a bond or bridge, or with any upper device (macvtap, VLAN...);
- a VF netdev in another network namespace: ``net/`` lists nothing here although the VF has
  one (sysfs keeps the directory, hiding the entry), or the VF is bound to a netdev driver
  and shows no netdev at all (unknown, so in use);
- a VF that exists (``virtfnN`` link) but that discovery skipped: unknown, so in use;
- a Cyborg accelerator request bound to the VF (only when the Cyborg API is configured).

Detection is ``blind`` when its view of processes may be incomplete: a process's open files
could not be read, /proc is mounted with ``hidepid`` and we may not see other users'
processes, we run in a PID namespace other than the host's, /proc lists clearly fewer
threads than the kernel counts (``/proc/loadavg``), or the kernel counts more open vfio/uio
devices (the driver module's ``refcnt``) than the visible holders account for. A blind
answer makes every destroying step refuse: finding no holder proves nothing when holders can
be hidden.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cyborg_smartnic.catalog import NETDEV_DRIVERS
from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.discovery.procfs import CAP_SYS_PTRACE, ProcReader, ProcUnreadable
from cyborg_smartnic.discovery.sysfs import (
    MalformedAttribute,
    SysfsReader,
    UnreadableAttribute,
    parse_int,
)
from cyborg_smartnic.errors import InvalidPciAddress
from cyborg_smartnic.pci import PciAddress

if TYPE_CHECKING:
    from cyborg_smartnic.apiclient import RetryPolicy

LOG = logging.getLogger(__name__)

_BOUND_ARQ_STATES = frozenset({"Bound", "BindStarted"})
# The kernel's fixed inode number of the initial ("host") PID namespace (PROC_PID_INIT_INO).
INIT_PID_NAMESPACE = "pid:[4026531836]"
_HIDEPID_OFF = frozenset({"0", "off"})
_DELETED = " (deleted)"
_DEVICE_NODE_PREFIXES = ("/dev/vfio/", "/dev/uio", "/dev/infiniband/")
# Per-VF class directories naming the VF's own device nodes, and the /dev directory of each.
_NODE_DIRS = (("vfio-dev", "/dev/vfio/devices/", re.compile(r"vfio\d+")),
              ("uio", "/dev/", re.compile(r"uio\d+")),
              ("infiniband_verbs", "/dev/infiniband/", re.compile(r"uverbs\d+")),
              ("infiniband_mad", "/dev/infiniband/", re.compile(r"(?:umad|issm)\d+")))
_VFIO_GROUP_NODE = re.compile(r"/dev/vfio/(?:noiommu-)?(\d+)")
# Modules whose refcnt counts what user space holds open, and the driver they provide.
_OPEN_COUNTING_MODULES = (("vfio_pci", "vfio-pci"), ("uio_pci_generic", "uio_pci_generic"),
                          ("igb_uio", "igb_uio"))


@dataclass(frozen=True, slots=True)
class VfUser:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class UnscannedVf:
    """A VF that exists (the PF's ``virtfnN`` link) but is not in the discovery model."""

    pf: str
    address: str
    index: int | None  # None when the virtfn link's name itself is malformed


@dataclass(frozen=True, slots=True)
class InUse:
    """VFs in use and why (``users``: one witness each); ``notes`` name what could not be
    checked; ``unscanned`` the VFs that exist but discovery left out (each also a user).

    ``blind`` is set when a required witness could not be read (processes whose open files
    are hidden from us): the planner then refuses to destroy or rebind any VF, because it
    cannot know the VF is free.
    """

    users: tuple[VfUser, ...] = ()
    notes: tuple[str, ...] = ()
    blind: str | None = None
    unscanned: tuple[UnscannedVf, ...] = ()

    def reason_for(self, address: str) -> str | None:
        reasons = [user.reason for user in self.users if user.address == address]
        return "; ".join(reasons) if reasons else None

    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted({user.address for user in self.users}))

    def unscanned_of(self, pf: str) -> tuple[UnscannedVf, ...]:
        """The VFs of ``pf`` a step that destroys all its VFs destroys beyond the model's."""
        return tuple(vf for vf in self.unscanned if vf.pf == pf)

    def merged(self, other: InUse) -> InUse:
        blind = "; ".join(b for b in (self.blind, other.blind) if b) or None
        return InUse(self.users + other.users, self.notes + other.notes, blind,
                     self.unscanned + other.unscanned)


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    comm: str
    target: str  # as the fd link reads, e.g. "/dev/vfio/45 (deleted)"
    fds: int = 1  # how many of its fds point there


@dataclass(frozen=True)
class OpenDevices:
    """Who holds which device node open, as far as this view of /proc shows."""

    holders: Mapping[str, tuple[Holder, ...]] = field(default_factory=dict)
    unreadable: tuple[Holder, ...] = ()  # processes listed whose open files we may not read
    threads_seen: int = 0

    def held(self, node: str) -> tuple[Holder, ...]:
        return self.holders.get(node, ())


def detect(root: str, host: Host, *, proc: ProcReader | None = None,
           sysfs: SysfsReader | None = None) -> InUse:
    """Users of ``host``'s VFs (and of VFs its PFs have beyond the model), read under
    ``root``; ``proc``/``sysfs`` inject readers (tests deny access through their hooks)."""
    proc = proc or ProcReader(root)
    sysfs = sysfs or SysfsReader(root)
    blind: list[str] = []
    try:
        own_view = proc.listdir(proc.proc + "/self") is not None
    except ProcUnreadable:
        own_view = False
    try:
        before = _kernel_threads(proc, blind) if own_view else None
        devices = open_devices(proc)
    except ProcUnreadable as exc:
        reason = f"cannot list {exc.kwargs['path']} ({exc.kwargs['reason']}): processes " \
                 f"holding VFs open were not checked"
        return _vf_scan(sysfs, host, OpenDevices(), InUse(notes=(reason,), blind=reason))
    if devices.unreadable:
        blind.append(_unreadable_reason(devices.unreadable))
    if own_view:
        blind.extend(_visibility(proc, devices.threads_seen, before))
    else:
        blind.append(f"{proc.shown(proc.proc)}/self is not there: this tree records no view of "
                     f"the host's processes (a snapshot?), so nothing says which VFs are held")
    try:
        blind.extend(_kernel_open_counts(sysfs, devices))
    except (UnreadableAttribute, MalformedAttribute) as exc:
        blind.append(f"{exc}: cannot compare what the kernel counts open with what /proc shows")
    text = "; ".join(dict.fromkeys(blind)) or None
    return _vf_scan(sysfs, host, devices, InUse(notes=tuple(dict.fromkeys(blind)), blind=text))


def open_devices(proc: ProcReader) -> OpenDevices:
    """Holders of vfio, uio and RDMA device nodes by node path (``(deleted)`` stripped)."""
    holders: dict[str, list[Holder]] = {}
    unreadable: list[Holder] = []
    threads = 0
    for pid in proc.pids():
        try:
            targets = proc.open_files(pid)
        except ProcUnreadable as exc:
            unreadable.append(Holder(pid, proc.comm(pid), exc.kwargs["path"]))
            threads += proc.threads(pid)
            continue
        if targets is None:
            continue  # exited meanwhile
        threads += proc.threads(pid)
        nodes = collections.Counter(t for t in targets if t.startswith(_DEVICE_NODE_PREFIXES))
        if nodes:
            comm = proc.comm(pid)
            for target, fds in sorted(nodes.items()):
                holders.setdefault(target.removesuffix(_DELETED), []).append(
                    Holder(pid, comm, target, fds))
    return OpenDevices({k: tuple(v) for k, v in holders.items()}, tuple(unreadable), threads)


def _unreadable_reason(processes: tuple[Holder, ...]) -> str:
    named = ", ".join(f"pid {p.pid} ({p.comm})" for p in processes[:3])
    more = f" and {len(processes) - 3} more" if len(processes) > 3 else ""
    return (f"could not read the open files of {len(processes)} process(es) ({named}{more}; "
            f"not root, or denied even to root by ptrace rules or a security module): a VF "
            f"they hold would not be seen as in use")


def _kernel_open_counts(sysfs: SysfsReader, devices: OpenDevices) -> list[str]:
    """Compare what the kernel says is open with the holders /proc shows.

    A loadable module's ``refcnt`` counts the references user space holds: vfio takes one on
    the driver's module per device it opens (``vfio-pci``), uio one per open of a
    ``/dev/uioN``. More of them than the visible holders of such devices account for means
    a holder is hidden from this view, whatever the reason."""
    reasons = []
    for module, driver in _OPEN_COUNTING_MODULES:
        text = sysfs.read(f"{sysfs.sys}/module/{module}/refcnt")
        if text is None:
            continue  # not loaded, or built in (no count to compare)
        count = parse_int(text, f"/sys/module/{module}/refcnt", 0, 1 << 31)
        if count == 0:
            continue
        held = _held_by_driver(sysfs, devices, driver)
        if count > held:
            reasons.append(f"the kernel counts {count} open {driver} device(s) (/sys/module/"
                           f"{module}/refcnt) but processes visible here hold {held}: a "
                           f"holder is hidden from this view")
    return reasons


def _held_by_driver(sysfs: SysfsReader, devices: OpenDevices, driver: str) -> int:
    """vfio: devices bound to ``driver`` in the groups and cdevs held; uio: fds held on
    nodes of devices bound to ``driver`` (each open counts)."""
    count = 0
    vfio_devices: set[str] = set()
    for node, holders in devices.holders.items():
        group = _VFIO_GROUP_NODE.fullmatch(node)
        if group is not None:
            members = sysfs.listdir(f"{sysfs.sys}/kernel/iommu_groups/{group[1]}/devices")
        elif node.startswith("/dev/vfio/devices/"):
            members = [sysfs.link_name(f"{sysfs.sys}/class/vfio-dev/{node[18:]}/device") or ""]
        elif node.startswith("/dev/uio"):
            owner = sysfs.link_name(f"{sysfs.sys}/class/uio/{node[5:]}/device")
            if owner is not None and _driver_of(sysfs, owner) == driver:
                count += sum(h.fds for h in holders)
            continue
        else:
            continue
        vfio_devices.update(m for m in members if m and _driver_of(sysfs, m) == driver)
    return count + len(vfio_devices)


def _driver_of(sysfs: SysfsReader, address: str) -> str | None:
    return sysfs.link_name(f"{sysfs.sys}/bus/pci/devices/{address}/driver")


def _kernel_threads(proc: ProcReader, blind: list[str]) -> int | None:
    try:
        return proc.kernel_threads()
    except ProcUnreadable as exc:
        blind.append(f"{exc}: cannot check that /proc lists every process")
        return None


def _visibility(proc: ProcReader, seen: int, before: int | None) -> list[str]:
    """Reasons this view of /proc may miss processes (empty when it shows them all)."""
    reasons: list[str] = []
    try:
        namespace = proc.pid_namespace()
        if namespace != INIT_PID_NAMESPACE:
            reasons.append(f"this process runs in PID namespace {namespace}, not the host's "
                           f"({INIT_PID_NAMESPACE}): processes outside it are invisible")
    except ProcUnreadable as exc:
        reasons.append(f"{exc}: cannot tell whether /proc shows the host's processes")
    try:
        mount = proc.proc_mount()
        hidepid = mount.option("hidepid") if mount is not None else None
        if mount is None:
            reasons.append("nothing is mounted on /proc (per /proc/self/mountinfo): cannot "
                           "tell whether it shows every process")
        elif hidepid is not None and hidepid not in _HIDEPID_OFF:
            me = proc.credentials()
            gid = mount.option("gid")
            exempt = me.has_capability(CAP_SYS_PTRACE) or (
                gid is not None and gid.isdigit() and int(gid) in me.groups)
            if not exempt:
                reasons.append(f"/proc is mounted with hidepid={hidepid} and this process "
                               f"(uid {me.uid}, without CAP_SYS_PTRACE) may not see other "
                               f"users' processes")
    except ProcUnreadable as exc:
        reasons.append(f"{exc}: cannot tell whether /proc hides processes (hidepid)")
    if before is not None:
        try:
            total = min(before, proc.kernel_threads())  # threads born meanwhile do not count
        except ProcUnreadable as exc:
            reasons.append(f"{exc}: cannot check that /proc lists every process")
        else:
            if seen + max(32, total // 10) < total:
                reasons.append(f"/proc lists {seen} of the {total} threads the kernel counts "
                               f"(/proc/loadavg): processes are hidden from this view")
    return reasons


def _vf_scan(sysfs: SysfsReader, host: Host, devices: OpenDevices, found: InUse) -> InUse:
    """``found`` plus the witnesses of every VF of ``host``'s PFs, listed or not."""
    users: list[VfUser] = []
    unscanned: list[UnscannedVf] = []
    blind = [found.blind] if found.blind else []
    skipped = {row.address: row.reason for row in host.skipped}
    for pf in host.physical_functions:
        listed = [str(vf.address) for vf in pf.virtual_functions]
        try:
            present = _virtfns(sysfs, str(pf.address))
        except UnreadableAttribute as exc:
            blind.append(f"cannot list the VFs of {pf.address}: {exc}")
            present = {}
        for address, index in sorted(present.items()):
            if address not in listed:
                why = skipped.get(address, "not in the scan")
                unscanned.append(UnscannedVf(str(pf.address), address, index))
                users.append(VfUser(address, f"discovery skipped it ({why}): cannot tell "
                                             f"whether it is in use"))
                listed.append(address)
        for address in listed:
            users.extend(VfUser(address, reason) for reason in
                         vf_witnesses(sysfs, devices, address))
    return InUse(found.users + tuple(users), found.notes, "; ".join(blind) or None,
                 found.unscanned + tuple(unscanned))


def _virtfns(sysfs: SysfsReader, pf: str) -> dict[str, int | None]:
    """VF address -> index, for every ``virtfn*`` link of ``pf`` (malformed names too)."""
    base = f"{sysfs.sys}/bus/pci/devices/{pf}"
    found: dict[str, int | None] = {}
    for entry in sysfs.listdir(base):
        if not entry.startswith("virtfn"):
            continue
        target = sysfs.link_name(f"{base}/{entry}")
        if target is None:
            continue  # removed meanwhile
        digits = entry[6:]
        index = int(digits) if digits.isdigit() and len(digits) <= 5 else None
        if target not in found or found[target] is None:
            found[target] = index
    return found


def vf_witnesses(sysfs: SysfsReader, devices: OpenDevices, address: str) -> list[str]:
    """Why the VF at ``address`` is in use (empty when nothing uses it)."""
    base = f"{sysfs.sys}/bus/pci/devices/{address}"
    try:
        entries = set(sysfs.listdir(base))
        if not entries:
            return []  # the VF is gone: nothing left to destroy
        nodes: list[str] = []
        group = sysfs.link_name(base + "/iommu_group") if "iommu_group" in entries else None
        if group is not None:
            nodes += [f"/dev/vfio/{group}", f"/dev/vfio/noiommu-{group}"]
        for directory, prefix, name in _NODE_DIRS:
            if directory in entries:
                nodes += [prefix + n for n in sorted(sysfs.listdir(f"{base}/{directory}"))
                          if name.fullmatch(n)]
        reasons = [f"{h.target} is held open by pid {h.pid} ({h.comm})"
                   for node in nodes for h in devices.held(node)]
        driver = sysfs.link_name(base + "/driver") if "driver" in entries else None
        reasons += _netdev_witnesses(sysfs, base, "net" in entries, driver)
    except UnreadableAttribute as exc:
        return [f"{exc}: cannot tell whether it is in use"]
    return reasons


def _netdev_witnesses(sysfs: SysfsReader, base: str, has_net_dir: bool,
                      driver: str | None) -> list[str]:
    names = sorted(sysfs.listdir(base + "/net")) if has_net_dir else []
    if has_net_dir and not names:
        return [f"it has a netdev in another network namespace (bound to "
                f"{driver or 'no driver'}, its net/ lists none here): a container may be "
                f"using it"]
    if not names and driver in NETDEV_DRIVERS:
        return [f"bound to netdev driver {driver} but shows no netdev in this network "
                f"namespace (moved to another one?): cannot tell whether it is in use"]
    reasons = []
    for ifname in names:
        ndir = f"{base}/net/{ifname}"
        master = sysfs.link_name(ndir + "/master")
        if master is not None:
            reasons.append(f"its netdev {ifname} is enslaved to {master}")
        for entry in sorted(sysfs.listdir(ndir)):
            upper = entry.removeprefix("upper_")
            if entry.startswith("upper_") and upper != master:
                kind = _devtype(sysfs, upper)
                reasons.append(f"its netdev {ifname} has upper device {upper}"
                               + (f" ({kind})" if kind else ""))
    return reasons


def _devtype(sysfs: SysfsReader, ifname: str) -> str | None:
    """``DEVTYPE`` of a netdev's uevent (``vlan``, ``bond``, ``bridge``...), if it has one."""
    text = sysfs.read(f"{sysfs.sys}/class/net/{ifname}/uevent") or ""
    for line in text.splitlines():
        if line.startswith("DEVTYPE="):
            return line[8:] or None
    return None


def cyborg_bound(arqs: Iterable[Any], hostname: str) -> InUse:
    """VFs that Cyborg accelerator requests bound on ``hostname`` hold.

    ``arqs`` are openstacksdk ``AcceleratorRequest`` objects (or anything with the same
    attributes), e.g. ``conn.accelerator.accelerator_requests()``.
    """
    users = []
    unreadable = []
    for arq in arqs:
        if getattr(arq, "hostname", None) != hostname:
            continue
        if getattr(arq, "state", None) not in _BOUND_ARQ_STATES:
            continue
        if getattr(arq, "attach_handle_type", None) != "PCI":
            continue
        info = getattr(arq, "attach_handle_info", None) or {}
        try:
            address = PciAddress.from_attach_info(info)
        except InvalidPciAddress:
            LOG.warning("accelerator request %s has an unreadable attach handle %r",
                        getattr(arq, "uuid", "?"), info)
            unreadable.append(str(getattr(arq, "uuid", "?")))
            continue
        users.append(VfUser(str(address), f"Cyborg accelerator request "
                                          f"{getattr(arq, 'uuid', '?')} is bound to it "
                                          f"(instance {getattr(arq, 'instance_uuid', '?')})"))
    # A request bound here to a VF we cannot name could be bound to any VF: fail closed.
    blind = (f"Cyborg accelerator request(s) {', '.join(unreadable)} bound on {hostname} have "
             f"an unreadable attach handle" if unreadable else None)
    return InUse(tuple(users), blind=blind)


def cyborg_in_use(cloud: str | None, hostname: str,
                  policy: RetryPolicy | None = None) -> InUse:
    """Ask the Cyborg API (via openstacksdk) when a cloud is configured; else skip cleanly.

    Each request gives up after ``policy.timeout`` seconds and is tried ``policy.attempts``
    times (``cyborg_smartnic.apiclient``), so an endpoint that never answers costs a bounded,
    logged wait and then the fail-closed answer below."""
    if not cloud:
        return InUse(notes=("Cyborg accelerator requests not checked (no --os-cloud / "
                            "OS_CLOUD)",))
    from keystoneauth1 import exceptions as ks_exceptions  # noqa: PLC0415
    from openstack import exceptions as sdk_exceptions  # noqa: PLC0415

    from cyborg_smartnic import apiclient  # noqa: PLC0415

    policy = policy or apiclient.RetryPolicy()
    try:
        conn = apiclient.connect(cloud, policy)
        requests = apiclient.read("list Cyborg accelerator requests",
                                  lambda: list(conn.accelerator.accelerator_requests()), policy)
        return cyborg_bound(requests, hostname)
    except (sdk_exceptions.SDKException, ks_exceptions.ClientException, OSError,
            apiclient.CloudError, apiclient.CloudConnectError) as exc:
        LOG.warning("cannot list Cyborg accelerator requests: %s", exc)
        # Asked for and unanswered is not "nothing bound": refuse to destroy VFs (fail closed).
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return InUse(notes=(f"Cyborg accelerator requests not checked: {reason}",),
                     blind=f"cannot ask Cyborg ({cloud}) which VFs are bound: {reason}")
