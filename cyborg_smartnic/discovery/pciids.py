"""Vendor and device names from pciutils' ``pci.ids`` for models the catalogue lacks.

The file is 1-2 MB and most scans never need it (catalogued models have their own names), so it
is opened only when a name is asked for, read up to the vendor's section, and the answers are
cached. A missing or unreadable file simply means "no name".
"""

from __future__ import annotations

import logging
from pathlib import Path

LOG = logging.getLogger(__name__)

DEFAULT_PATHS = (Path("/usr/share/misc/pci.ids"), Path("/usr/share/hwdata/pci.ids"),
                 Path("/usr/share/pci.ids"))


def find_pci_ids(configured: str | None) -> Path | None:
    """``[smartnic] pci_ids_path`` when set, else the first usual location that exists."""
    if configured:
        return Path(configured)
    return next((p for p in DEFAULT_PATHS if p.is_file()), None)


class PciIds:
    """Lazy lookups in one pci.ids file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._cache: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def names(self, vendor_id: str, device_id: str) -> tuple[str | None, str | None]:
        """(vendor name, device name) for lowercase 4-digit ids; ``None`` where unknown."""
        key = (vendor_id, device_id)
        if key not in self._cache:
            self._cache[key] = self._lookup(vendor_id, device_id)
        return self._cache[key]

    def _lookup(self, vendor_id: str, device_id: str) -> tuple[str | None, str | None]:
        if self._path is None:
            return None, None
        vendor_name: str | None = None
        try:
            with self._path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip() or line.startswith("#"):
                        continue
                    if not line[0].isspace():
                        if vendor_name is not None:
                            break  # left the vendor's section: the device is not listed
                        if line[:4].lower() == vendor_id and line[4:6] == "  ":
                            vendor_name = line[6:].strip()
                        elif line.startswith("C "):
                            break  # device classes follow the vendors
                        continue
                    if vendor_name is not None and line.startswith("\t") \
                            and not line.startswith("\t\t") \
                            and line[1:5].lower() == device_id:
                        return vendor_name, line[7:].strip()
        except OSError as exc:
            LOG.warning("cannot read %s: %s", self._path, exc)
        return vendor_name, None
