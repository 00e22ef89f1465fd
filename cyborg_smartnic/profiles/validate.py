"""Schema and semantic validation of profile units: every problem, each as FILE:LINE:COL.

The semantic rules encode what Cyborg, Nova and the driver would refuse or never match:
Cyborg's name and resource-class rules, CUSTOM_* normalised trait names, contradictions
(a trait both required and forbidden), port profiles asking for more than one VF (Nova
refuses them), hugepage sizes Linux does not have, catalogue facts (a model's vendor,
switchdev support, VF limit, firmware modes), and duplicates across files. The rules read
possibly ill-typed data defensively, so a schema error never hides a semantic one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from cyborg_smartnic import catalog, traits
from cyborg_smartnic.errors import SourceError
from cyborg_smartnic.profiles import schema, spec
from cyborg_smartnic.profiles.sources import ProfileSource
from cyborg_smartnic.requirement_kinds import FIELDS, VENDOR_NAMES, derived_traits
from cyborg_smartnic.yamlsource import (
    PathKey,
    error_sort_key,
    is_integer,
    validate_with_schema,
)

#: Cyborg 17's ``constants.SUPPORT_RESOURCES``: the only non-CUSTOM classes it accepts.
CYBORG_STANDARD_RESOURCE_CLASSES = ("FPGA", "GPU", "VGPU", "PGPU", "CUSTOM_QAT", "CUSTOM_NIC",
                                    "CUSTOM_SSD")
_UPPER_NAME = re.compile(r"[A-Z0-9_]+")
MAX_MANAGED_KEYS = 255  # Nova's limit on an extra spec value


def _hint(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def resource_class_problem(name: str) -> str | None:
    """Why Cyborg would refuse ``name`` as a device profile resource class, or None."""
    if name == "SRIOV_NET_VF":
        return ("Cyborg rejects SRIOV_NET_VF (Nova's class for Neutron SR-IOV ports); "
                f"the smartnic driver reports {traits.DEFAULT_RESOURCE_CLASS}")
    if name in CYBORG_STANDARD_RESOURCE_CLASSES or traits.is_custom_name(name):
        return None
    if _UPPER_NAME.fullmatch(name) and not name.startswith(traits.CUSTOM_PREFIX):
        return (f"Cyborg only accepts CUSTOM_* resource classes or one of "
                f"{', '.join(CYBORG_STANDARD_RESOURCE_CLASSES)}")
    return f"not a normalised resource class name; did you mean {traits.custom_name(name)!r}?"


def trait_problem(name: str) -> str | None:
    """Why ``name`` cannot be a device profile trait, or None."""
    if traits.is_custom_name(name):
        return None
    if _UPPER_NAME.fullmatch(name):
        return "not a CUSTOM_* trait; Cyborg device profiles only accept CUSTOM_* traits"
    return f"not a normalised trait name; did you mean {traits.custom_name(name)!r}?"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


class _ProfileRules:
    """The semantic rules of one profile unit; ``errors`` collects what they find."""

    def __init__(self, src: ProfileSource, models: tuple[catalog.NicModel, ...]) -> None:
        self.src = src
        self.models = models
        self.by_key = spec.models_by_key(models)
        self.vf_drivers = spec.known_vf_drivers(models)
        self.errors: list[SourceError] = []

    def fail(self, path: Iterable[PathKey], reason: str) -> None:
        self.errors.append(self.src.error(path, reason))

    def run(self) -> list[SourceError]:
        data = _dict(self.src.data)
        groups = _list(data.get("groups"))
        for index, group in enumerate(groups):
            if isinstance(group, dict):
                self.group(("groups", index), group)
        if "port" in data:
            self.port_groups(groups)
            self.port_shape(_dict(data.get("port")), groups)
        self.instance(_dict(data.get("instance")))
        self.managed_keys(data, len(groups))
        self.flavors(_list(data.get("flavors")))
        return self.errors

    def group(self, path: tuple[PathKey, ...], group: dict[str, Any]) -> None:
        rc = _str(group.get("resource_class"))
        if rc is not None and (problem := resource_class_problem(rc)) is not None:
            self.fail((*path, "resource_class"), problem)
        model = self.model(path, group)
        self.vf_driver(path, group, model)
        self.firmware_mode(path, group, model)
        self.trait_lists(path, group, model)

    def model(self, path: tuple[PathKey, ...],
              group: dict[str, Any]) -> catalog.NicModel | None:
        name = _str(group.get("model"))
        if name is None:
            return None
        model = self.by_key.get(traits.normalize(name))
        if model is None:
            keys = sorted({m.key for m in self.models})
            hint = _hint(traits.normalize(name), keys) or (
                "; for a model added with [smartnic] extra_models require its "
                "CUSTOM_SMARTNIC_MODEL_* trait instead")
            self.fail((*path, "model"), f"unknown model {name!r}{hint}")
            return None
        vendor = _str(group.get("vendor"))
        if vendor is not None and vendor in VENDOR_NAMES and vendor != model.vendor:
            self.fail((*path, "vendor"), f"{model.name} is made by {model.vendor}, not {vendor}")
        if group.get("eswitch_mode") == "switchdev" and not model.switchdev:
            self.fail((*path, "eswitch_mode"), f"{model.name} has no switchdev eswitch mode")
        count = group.get("vf_count")
        if (is_integer(count) and model.max_vfs is not None and count > model.max_vfs):
            self.fail((*path, "vf_count"),
                      f"{model.name} offers at most {model.max_vfs} VFs per port")
        return model

    def vf_driver(self, path: tuple[PathKey, ...], group: dict[str, Any],
                  model: catalog.NicModel | None) -> None:
        driver = _str(group.get("vf_driver"))
        if driver is None:
            return
        problem = spec.vf_driver_problem(driver, self.vf_drivers)
        if problem is not None:
            self.fail((*path, "vf_driver"), problem)
            return
        if model is not None and model.vf_driver:
            usable = {*spec.USERSPACE_VF_DRIVERS, model.vf_driver}
            if driver not in usable:
                self.fail((*path, "vf_driver"),
                          f"{model.name} VFs bind to {model.vf_driver} or a userspace driver "
                          f"({', '.join(spec.USERSPACE_VF_DRIVERS)}), not {driver}")

    def firmware_mode(self, path: tuple[PathKey, ...], group: dict[str, Any],
                      model: catalog.NicModel | None) -> None:
        mode = _str(group.get("firmware_mode"))
        if mode is None:
            return
        if mode not in spec.FIRMWARE_MODES:
            self.fail((*path, "firmware_mode"),
                      f"unknown firmware mode {mode!r}{_hint(mode, spec.FIRMWARE_MODES)} "
                      f"(known: {', '.join(spec.FIRMWARE_MODES)}; for another one require "
                      f"its CUSTOM_SMARTNIC_FW_* trait)")
            return
        if model is None:
            return
        if mode in spec.DDP_FIRMWARE_MODES and not model.ddp:
            self.fail((*path, "firmware_mode"),
                      f"{model.name} has no DDP packages ({mode} is an ice DDP package)")
        elif mode in spec.DPU_FIRMWARE_MODES and not model.dpu:
            self.fail((*path, "firmware_mode"),
                      f"{model.name} is not a DPU ({mode} is a DPU firmware mode)")

    def trait_lists(self, path: tuple[PathKey, ...], group: dict[str, Any],
                    model: catalog.NicModel | None) -> None:
        lists = _dict(group.get("traits"))
        for kind in ("required", "forbidden"):
            for index, name in enumerate(_list(lists.get(kind))):
                if isinstance(name, str) and (problem := trait_problem(name)) is not None:
                    self.fail((*path, "traits", kind, index), problem)
        derived = derived_traits({
            **{field: _str(group.get(field)) for field in FIELDS},
            "model": model.key if model is not None else None})
        required = {n for n in _list(lists.get("required")) if isinstance(n, str)}
        for index, name in enumerate(_list(lists.get("forbidden"))):
            if name in required:
                self.fail((*path, "traits", "forbidden", index),
                          f"{name} is both required and forbidden")
            elif name in derived:
                self.fail((*path, "traits", "forbidden", index),
                          f"{name} is both forbidden and required by {derived[name]}: "
                          f"{group.get(derived[name])}")

    def port_groups(self, groups: list[Any]) -> None:
        """Nova gives a port exactly one accelerator: one group asking for one VF."""
        if len(groups) > 1:
            self.fail(("groups", 1), "a port profile (with 'port') may have only one group: "
                                     "Nova attaches exactly one VF to a port")
        first = _dict(groups[0]) if groups else {}
        if groups and isinstance(groups[0], dict) and "physnet" not in first:
            self.fail(("groups", 0), "a port profile needs 'physnet': Nova binds the port "
                                     "with the physical_network of the VF's pool")
        count = first.get("vf_count")
        if is_integer(count) and count > 1:
            self.fail(("groups", 0, "vf_count"),
                      f"a port profile must ask for 1 VF, not {count}: Nova refuses port "
                      f"device profiles with more than one device")

    def port_shape(self, port: dict[str, Any], groups: list[Any]) -> None:
        """Refuse ports that cannot work: the vnic type decides who schedules the VF and which
        Neutron driver binds it (``spec.PORT_SHAPES``), and each path has its own needs."""
        vnic = _str(port.get("vnic_type")) or schema.VNIC_TYPE
        capabilities = [c for c in _list(port.get("capabilities")) if isinstance(c, str)]
        switchdev = schema.SWITCHDEV in capabilities
        group = _dict(groups[0]) if groups else {}
        model = self.by_key.get(traits.normalize(_str(group.get("model")) or ""))
        self.port_vnic(vnic, capabilities, switchdev=switchdev)
        if switchdev and vnic == "direct":
            self.ovs_offload_group(group, model)
        if vnic == "remote-managed":
            self.remote_managed_group(group, model)
        if vnic not in schema.CYBORG_VNIC_TYPES:
            self.tracker_group(vnic, group)

    def port_vnic(self, vnic: str, capabilities: list[str], *, switchdev: bool) -> None:
        """vnic type and capabilities that no Neutron driver or Nova path serves."""
        if vnic in schema.CYBORG_VNIC_TYPES and switchdev:
            self.fail(("port", "capabilities"),
                      f"an {vnic} port is bound by sriovnicswitch and plugged by Nova as "
                      f"SR-IOV passthrough (hostdev): OVS never sees it, so nothing is "
                      f"offloaded; for OVS offload use vnic_type: direct with capabilities: "
                      f"[switchdev] (its VF then comes from Nova's PCI tracker: give it to "
                      f"Nova with vf_owners in host.yaml)")
        if vnic == "accelerator-direct-physical":
            self.fail(("port", "vnic_type"),
                      "no ML2 mechanism driver of Neutron 29 binds accelerator-direct-physical "
                      "(sriovnicswitch takes direct-physical, not this), so the port ends "
                      "binding_failed: use accelerator-direct")
        if vnic == "direct" and not switchdev:
            self.fail(("port", "vnic_type"),
                      "a direct port without capabilities: [switchdev] is plain SR-IOV from "
                      "Nova's PCI tracker, which this profile cannot describe; use "
                      "accelerator-direct (Cyborg schedules the VF by this profile's traits), "
                      "or add capabilities: [switchdev] for OVS offload")
        if vnic == "remote-managed" and capabilities:
            self.fail(("port", "capabilities"),
                      "a remote-managed port's representor lives on the DPU, where OVN plugs "
                      "it: drop capabilities")

    def ovs_offload_group(self, group: dict[str, Any], model: catalog.NicModel | None) -> None:
        """A direct switchdev port (OVS offload): its PF must be able to run switchdev."""
        if group.get("eswitch_mode") == "legacy":
            self.fail(("groups", 0, "eswitch_mode"),
                      "OVS offload needs the PF's eswitch in switchdev mode (VF "
                      "representors exist only there): set eswitch_mode: switchdev")
        if model is not None and not model.switchdev:
            self.fail(("groups", 0, "model"),
                      f"{model.name} has no switchdev eswitch mode, so OVS cannot offload "
                      f"its VFs: pick a model with switchdev, or use accelerator-direct "
                      f"for plain SR-IOV")

    def remote_managed_group(self, group: dict[str, Any], model: catalog.NicModel | None) -> None:
        """A remote-managed port: a DPU in DPU mode, whose Arm side runs OVN."""
        if model is not None and not model.dpu:
            self.fail(("groups", 0, "model"),
                      f"{model.name} is not a DPU: remote-managed ports need one whose "
                      f"Arm cores run OVN (a BlueField in DPU mode); use accelerator-"
                      f"direct or OVS offload on this NIC")
        mode = _str(group.get("firmware_mode"))
        if mode is not None and mode != "dpu":
            self.fail(("groups", 0, "firmware_mode"),
                      f"a remote-managed port needs the DPU in dpu mode (its Arm cores "
                      f"own the eswitch), not {mode}")

    def tracker_group(self, vnic: str, group: dict[str, Any]) -> None:
        """A port whose VF comes from Nova's PCI tracker asks Cyborg for nothing."""
        for key in ("resource_class", "traits"):
            if key in group:
                self.fail(("groups", 0, key),
                          f"a {vnic} port's VF comes from Nova's PCI tracker, with no "
                          f"Cyborg device profile: {key} would never be asked for; drop "
                          f"it")

    def instance(self, instance: dict[str, Any]) -> None:
        size = instance.get("hugepages")
        if isinstance(size, str) or is_integer(size):
            try:
                spec.parse_hugepage_size(size)
            except ValueError as exc:
                self.fail(("instance", "hugepages"), str(exc))
        for key in _dict(instance.get("properties")):
            if key in schema.DEDICATED_PROPERTIES:
                self.fail(("instance", "properties", key),
                          f"set {key} with {schema.DEDICATED_PROPERTIES[key]} instead")

    def managed_keys(self, data: dict[str, Any], group_count: int) -> None:
        """apply records the flavor keys it sets in one extra spec (at most 255 characters)."""
        instance = _dict(data.get("instance"))
        keys = [k for k in _dict(instance.get("properties")) if isinstance(k, str)]
        keys += [prop for prop, field in schema.DEDICATED_PROPERTIES.items()
                 if field.split(".")[1] in instance]
        if "port" not in data:
            keys.append("accel:device_profile")
            if group_count > 1:
                keys.append("group_policy")
        if len(",".join(sorted(set(keys)))) > MAX_MANAGED_KEYS:
            self.fail(("instance", "properties"),
                      f"too many flavor properties: their names joined by ',' must fit in "
                      f"{MAX_MANAGED_KEYS} characters (apply records them in one extra spec)")

    def flavors(self, flavors: list[Any]) -> None:
        seen: set[str] = set()
        for index, flavor in enumerate(flavors):
            name = _str(flavor) or _str(_dict(flavor).get("name"))
            if name is None:
                continue
            if name in seen:
                self.fail(("flavors", index), f"flavor {name!r} is listed twice")
            seen.add(name)


def validate_sources(sources: Iterable[ProfileSource], *,
                     models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS
                     ) -> list[SourceError]:
    """Every schema, semantic and cross-file error of ``sources``, sorted by position."""
    one_profile = schema.profile_schema()
    errors: list[SourceError] = []
    names: dict[str, ProfileSource] = {}
    flavor_owner: dict[str, tuple[str, str]] = {}
    for src in sources:
        errors.extend(validate_with_schema(src.doc, one_profile, base=src.base))
        errors.extend(_ProfileRules(src, models).run())
        data = _dict(src.data)
        name = _str(data.get("name"))
        if name is None:
            continue
        if name in names:
            first = names[name]
            line, column = first.position("name")
            errors.append(src.error(("name",), f"duplicate profile name {name!r} (first "
                                               f"defined at {first.file}:{line}:{column})"))
            continue
        names[name] = src
        for index, flavor in enumerate(_list(data.get("flavors"))):
            flavor_name = _str(flavor) or _str(_dict(flavor).get("name"))
            if flavor_name is None:
                continue
            owner = flavor_owner.setdefault(flavor_name, (name, src.file))
            if owner[0] != name:
                errors.append(src.error(
                    ("flavors", index),
                    f"flavor {flavor_name!r} is already attached to profile {owner[0]!r} "
                    f"({owner[1]}); a flavor names one device profile"))
    unique = {str(e): e for e in errors}
    return sorted(unique.values(), key=error_sort_key)
