"""Which VFs something is using right now (read-only), so a plan never destroys them.

Three witnesses: a process holding the VF's ``/dev/vfio/<group>`` (or its vfio cdev) open,
the VF netdev enslaved to a bond or bridge, and a Cyborg accelerator request bound to the
VF (only when the Cyborg API is configured). Anything we could not inspect is recorded as
a note rather than guessed away.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cyborg_smartnic.discovery.model import Host
from cyborg_smartnic.pci import PciAddress

if TYPE_CHECKING:
    from cyborg_smartnic.apiclient import RetryPolicy

LOG = logging.getLogger(__name__)

_VFIO_GROUP_RE = re.compile(r"/dev/vfio/(?P<group>\d+)")
_VFIO_CDEV_RE = re.compile(r"/dev/vfio/devices/(?P<cdev>vfio\d+)")
_BOUND_ARQ_STATES = frozenset({"Bound", "BindStarted"})


@dataclass(frozen=True, slots=True)
class VfUser:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class InUse:
    """VFs in use and why; ``notes`` name what could not be checked.

    ``blind`` is set when a required witness could not be read (processes whose open files
    are hidden from us): the planner then refuses to destroy or rebind any VF, because it
    cannot know the VF is free.
    """

    users: tuple[VfUser, ...] = ()
    notes: tuple[str, ...] = ()
    blind: str | None = None

    def reason_for(self, address: str) -> str | None:
        reasons = [user.reason for user in self.users if user.address == address]
        return "; ".join(reasons) if reasons else None

    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted({user.address for user in self.users}))

    def merged(self, other: InUse) -> InUse:
        return InUse(self.users + other.users, self.notes + other.notes,
                     self.blind or other.blind)


def detect(root: str, host: Host) -> InUse:
    """VFs of ``host`` held by processes (via vfio) or enslaved netdevs, read under ``root``."""
    holders, notes = vfio_holders(root)
    blind = notes[0] if notes else None
    users: list[VfUser] = []
    for pf in host.physical_functions:
        for vf in pf.virtual_functions:
            address = str(vf.address)
            keys = [f"group:{vf.iommu_group}"] if vf.iommu_group is not None else []
            keys += [f"cdev:{name}" for name in _vfio_cdevs(root, address)]
            for key in keys:
                for pid, comm in holders.get(key, ()):
                    device = (f"/dev/vfio/{key[6:]}" if key.startswith("group:")
                              else f"/dev/vfio/devices/{key[5:]}")
                    users.append(VfUser(address, f"{device} is held open by pid {pid} "
                                                 f"({comm})"))
            if vf.netdev_master:
                users.append(VfUser(address, f"its netdev {vf.netdev} is enslaved to "
                                             f"{vf.netdev_master}"))
    return InUse(tuple(users), tuple(notes), blind)


def vfio_holders(root: str) -> tuple[dict[str, list[tuple[int, str]]], list[str]]:
    """``{"group:45": [(pid, comm)], "cdev:vfio0": [...]}`` from ``<root>/proc/*/fd``."""
    proc = os.path.join(root, "proc")
    holders: dict[str, list[tuple[int, str]]] = {}
    unreadable = 0
    try:
        pids = [int(name) for name in os.listdir(proc) if name.isdigit()]
    except OSError as exc:
        return holders, [f"cannot list {proc} ({exc.strerror}): processes holding VFs "
                         f"open were not checked"]
    for pid in sorted(pids):
        fd_dir = os.path.join(proc, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except FileNotFoundError:
            continue  # the process exited meanwhile
        except OSError:
            unreadable += 1
            continue
        keys: set[str] = set()
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue  # closed meanwhile
            group = _VFIO_GROUP_RE.fullmatch(target)
            cdev = _VFIO_CDEV_RE.fullmatch(target)
            if group:
                keys.add(f"group:{int(group['group'])}")
            elif cdev:
                keys.add(f"cdev:{cdev['cdev']}")
        if keys:
            comm = _read(os.path.join(proc, str(pid), "comm")) or "?"
            for key in keys:
                holders.setdefault(key, []).append((pid, comm))
    notes = []
    if unreadable:
        notes.append(f"could not read the open files of {unreadable} process(es) (run as "
                     f"root): a VF they hold would not be seen as in use")
    return holders, notes


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
            address = PciAddress(int(info["domain"], 16), int(info["bus"], 16),
                                 int(info["device"], 16), int(info["function"], 16))
        except (KeyError, TypeError, ValueError):
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


def _vfio_cdevs(root: str, address: str) -> list[str]:
    path = os.path.join(root, "sys", "bus", "pci", "devices", address, "vfio-dev")
    try:
        return sorted(name for name in os.listdir(path) if name.startswith("vfio"))
    except OSError:
        return []


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read().strip()
    except OSError:
        return None
