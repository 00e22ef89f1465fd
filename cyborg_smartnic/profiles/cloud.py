"""What ``profile apply`` reads from and writes to a cloud, through openstacksdk.

``CloudState`` is a plain snapshot (device profiles, flavors with their extra specs, which
profiles accelerator requests use) so planning stays pure. ``SdkCloud`` is the thin
openstacksdk adapter: one method per API call, no decisions; ``connect`` builds it from
clouds.yaml / ``OS_*`` variables like every OpenStack client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cyborg_smartnic.apiclient import (
    CloudConnectError,
    CloudError,
    RetryPolicy,
)
from cyborg_smartnic.apiclient import connect as connect_api

__all__ = ["CloudConnectError", "CloudError", "SdkCloud", "connect"]


@dataclass(frozen=True)
class RemoteProfile:
    uuid: str
    name: str
    description: str
    groups: tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class RemoteFlavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int
    extra_specs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudState:
    profiles: Mapping[str, RemoteProfile]
    flavors: Mapping[str, RemoteFlavor]  # by name
    #: device profile name -> the accelerator requests (uuid, instance uuid) that use it
    profile_users: Mapping[str, tuple[tuple[str, str | None], ...]]


class Cloud(Protocol):
    """The calls ``apply`` makes; ``SdkCloud`` implements them with openstacksdk."""

    def read_state(self) -> CloudState: ...

    def profile_users(self) -> Mapping[str, tuple[tuple[str, str | None], ...]]: ...

    def find_profile(self, name: str) -> RemoteProfile | None: ...

    def create_profile(self, body: Mapping[str, Any]) -> None: ...

    def delete_profile(self, uuid: str) -> None: ...

    def find_flavor(self, name: str) -> RemoteFlavor | None: ...

    def create_flavor(self, name: str, vcpus: int, ram_mb: int, disk_gb: int) -> RemoteFlavor: ...

    def set_extra_specs(self, flavor_id: str, specs: Mapping[str, str]) -> None: ...

    def unset_extra_spec(self, flavor_id: str, key: str) -> None: ...


def _profile(item: Any) -> RemoteProfile:
    return RemoteProfile(uuid=str(item.uuid or item.id), name=str(item.name),
                         description=str(item.description or ""),
                         groups=tuple(dict(g) for g in (item.groups or ())))


def _flavor(item: Any) -> RemoteFlavor:
    specs = item.extra_specs or {}
    return RemoteFlavor(id=str(item.id), name=str(item.name), vcpus=int(item.vcpus or 0),
                        ram_mb=int(item.ram or 0), disk_gb=int(item.disk or 0),
                        extra_specs={str(k): str(v) for k, v in specs.items()})


class SdkCloud:
    """openstacksdk calls for device profiles, ARQs, flavors and flavor extra specs."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def read_state(self) -> CloudState:
        profiles = {p.name: p for p in map(_profile, self.conn.accelerator.device_profiles())}
        flavors = {f.name: f for f in map(_flavor, self.conn.compute.flavors(
            details=True, get_extra_specs=True))}
        return CloudState(profiles=profiles, flavors=flavors, profile_users=self.profile_users())

    def profile_users(self) -> dict[str, tuple[tuple[str, str | None], ...]]:
        users: dict[str, list[tuple[str, str | None]]] = {}
        for arq in self.conn.accelerator.accelerator_requests():
            name = arq.device_profile_name
            if name:
                users.setdefault(str(name), []).append(
                    (str(arq.uuid or arq.id), arq.instance_uuid or None))
        return {name: tuple(items) for name, items in users.items()}

    def find_profile(self, name: str) -> RemoteProfile | None:
        for item in self.conn.accelerator.device_profiles():
            if item.name == name:
                return _profile(item)
        return None

    def create_profile(self, body: Mapping[str, Any]) -> None:
        self.conn.accelerator.create_device_profile(
            name=body["name"], description=body["description"],
            groups=[dict(g) for g in body["groups"]])

    def delete_profile(self, uuid: str) -> None:
        self.conn.accelerator.delete_device_profile(uuid, ignore_missing=True)

    def find_flavor(self, name: str) -> RemoteFlavor | None:
        for item in self.conn.compute.flavors(details=True, get_extra_specs=True):
            if item.name == name:
                return _flavor(item)
        return None

    def create_flavor(self, name: str, vcpus: int, ram_mb: int, disk_gb: int) -> RemoteFlavor:
        return _flavor(self.conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram_mb,
                                                       disk=disk_gb))

    def set_extra_specs(self, flavor_id: str, specs: Mapping[str, str]) -> None:
        self.conn.compute.create_flavor_extra_specs(flavor_id, dict(specs))

    def unset_extra_spec(self, flavor_id: str, key: str) -> None:
        self.conn.compute.delete_flavor_extra_specs_property(flavor_id, key,
                                                             ignore_missing=True)


def connect(cloud: str | None, policy: RetryPolicy | None = None, **overrides: Any) -> SdkCloud:
    """An ``SdkCloud`` for ``cloud`` from clouds.yaml (or ``OS_*`` variables when None), each
    request bounded by ``policy.timeout`` (``apiclient.connect``)."""
    return SdkCloud(connect_api(cloud, policy or RetryPolicy(), **overrides))
