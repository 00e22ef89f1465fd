"""The bundled example host: a recorded compute node every command can run against.

``cyborg_smartnic/data/example-host.tar.gz`` is the tree builder's ``example`` scenario
(ConnectX-6 Dx switchdev + E810 COMMS + X710 + noise + hugepages), regenerated with
``python -m cyborg_smartnic.hostgen --write-example cyborg_smartnic/data``; a unit test checks the
shipped files still equal what the builder makes. ``example-host.conf`` holds the matching
``[smartnic]`` options (hostname and physnet mappings).
"""

from __future__ import annotations

import tarfile
from importlib import resources
from pathlib import Path

from cyborg_smartnic import safetar

TARBALL_NAME = "example-host.tar.gz"
CONF_NAME = "example-host.conf"
TOP_DIR = "example-host"


def data_file(name: str) -> Path:
    """Path of a file shipped in ``cyborg_smartnic/data``."""
    return Path(str(resources.files("cyborg_smartnic").joinpath("data", name)))


def example_conf_path() -> Path:
    return data_file(CONF_NAME)


def unpack_example_host(dest: Path | str) -> Path:
    """Unpack the example host under ``dest``; returns the root to pass as ``--sysfs-root``.

    Every member is checked (``cyborg_smartnic.safetar``): nothing may land outside ``dest``
    and no link may point outside it, while the tree's relative symlinks (``driver``,
    ``virtfn<N>``...) survive.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(data_file(TARBALL_NAME), "r:gz") as archive:
        safetar.extract(archive, dest, label=TARBALL_NAME)
    return dest / TOP_DIR
