"""What Nova refuses for servers with accelerators, so `profile check` and `render` can warn.

Read in nova 34.0.0 (nova/compute/api.py), the release this project runs against:

* a server whose flavor has ``accel:device_profile`` (``block_accelerators()``): resize
  (also to any flavor, and any server to a flavor with the spec), cold migration (a resize
  to the same flavor), live migration and suspend answer 400/409
  ``ForbiddenWithAccelerators``. Rebuild, evacuate and shelve are blocked only while some
  nova-compute is older than service version 53/54 (Nova 34 is 74), so they work; snapshot,
  reboot, stop/start, pause and rescue are not checked.
* a server with a port whose vnic type is ``accelerator-direct``/``-physical``
  (``block_port_accelerators()``): resize, cold and live migration, suspend, shelve,
  shelve-offload and evacuate answer ``ForbiddenPortsWithAccelerator``, and such a port can
  be neither attached to nor detached from a running server.

An operator meets these after the servers exist, so the profile tools say them up front.
Pure functions of the compiled profile; nothing here talks to Nova.
"""

from __future__ import annotations

from cyborg_smartnic.profiles.compiler import CompiledProfile
from cyborg_smartnic.profiles.spec import PATH_CYBORG

NOVA_RELEASE = "Nova 34 (2026.2)"
FLAVOR_REFUSED = ("resize", "cold migration", "live migration", "suspend")
PORT_REFUSED = ("resize", "cold migration", "live migration", "suspend", "shelve",
                "shelve-offload", "evacuate", "attaching or detaching the port")


def refused_operations(profile: CompiledProfile) -> tuple[str, ...]:
    """Server operations Nova refuses for servers that use this profile (none for a port
    whose VF Nova's PCI tracker picks: neither rule above applies to it)."""
    if profile.port is not None and profile.port.path != PATH_CYBORG:
        return ()
    return PORT_REFUSED if profile.port is not None else FLAVOR_REFUSED


def warning(profile: CompiledProfile) -> str:
    """One line for the operator, naming how the profile reaches a server ("" when Nova
    refuses nothing for it)."""
    if not refused_operations(profile):
        return ""
    how = (f"servers with a port of this profile ({profile.port.vnic_type})"
           if profile.port is not None else
           "servers of its flavor(s)" if profile.flavors else
           "servers of a flavor with accel:device_profile=" + profile.name)
    return (f"{profile.name}: {NOVA_RELEASE} refuses {', '.join(refused_operations(profile))} "
            f"for {how}; see docs/profiles.md")
