"""Resource-class and trait naming: the one place names are normalised.

The driver reports these names and profiles ask for them, so both sides call the same
functions here; a profile can never ask for a spelling the driver does not report.
"""

from __future__ import annotations

import re

CUSTOM_PREFIX = "CUSTOM_"
MAX_NAME_LENGTH = 255
DEFAULT_RESOURCE_CLASS = "CUSTOM_SMARTNIC_VF"
OWNER_CYBORG = "OWNER_CYBORG"

_INVALID = re.compile(r"[^A-Z0-9_]+")
_REPEATED_UNDERSCORE = re.compile(r"_{2,}")
_VALID_CUSTOM = re.compile(r"CUSTOM_[A-Z0-9_]+")


def normalize(text: str) -> str:
    """Upper-case ``text`` and fold every run of other characters into one ``_``."""
    name = _INVALID.sub("_", text.upper())
    return _REPEATED_UNDERSCORE.sub("_", name).strip("_")


def custom_name(*parts: str) -> str:
    """``CUSTOM_`` + the normalised parts joined by ``_``, cut to Placement's 255 characters."""
    body = "_".join(p for p in (normalize(part) for part in parts) if p)
    if body.startswith(CUSTOM_PREFIX):
        body = body[len(CUSTOM_PREFIX):]
    return (CUSTOM_PREFIX + body)[:MAX_NAME_LENGTH].rstrip("_")


def is_custom_name(name: str) -> bool:
    """True when ``name`` is already a valid ``CUSTOM_*`` Placement name."""
    return len(name) <= MAX_NAME_LENGTH and _VALID_CUSTOM.fullmatch(name) is not None


def vendor_trait(vendor: str) -> str:
    return custom_name("SMARTNIC_VENDOR", vendor)


def model_trait(model_key: str) -> str:
    return custom_name("SMARTNIC_MODEL", model_key)


def physnet_trait(physnet: str) -> str:
    """Neutron's convention: ``CUSTOM_PHYSNET_`` + the physnet name normalised."""
    return custom_name("PHYSNET", physnet)


def eswitch_trait(mode: str) -> str:
    return custom_name("SMARTNIC_ESWITCH", mode)


def firmware_trait(mode: str) -> str:
    return custom_name("SMARTNIC_FW", mode)


def vf_driver_trait(driver: str) -> str:
    return custom_name("SMARTNIC_VF_DRIVER", driver)
