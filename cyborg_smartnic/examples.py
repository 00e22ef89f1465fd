"""Where the example device profiles and host.yaml are, in a source checkout or a pip install.

A checkout has them at ``profiles/`` and ``deploy/host.example.yaml``. The wheel installs them
as data files under ``<prefix>/share/cyborg-smartnic/`` (``profiles/`` and
``host.example.yaml``), found through the distribution's own file list so a ``--user``, venv
or system install each point at the right prefix. ``cyborg-smartnic examples`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from cyborg_smartnic.errors import SmartNicError

DISTRIBUTION = "cyborg-smartnic"
SHARE = "share/cyborg-smartnic"
HOST_EXAMPLE = "host.example.yaml"


class ExamplesMissing(SmartNicError):
    msg_fmt = ("the example profiles and host.yaml are not installed (looked in %(where)s); "
               "reinstall cyborg-smartnic from its wheel or use a source checkout")


@dataclass(frozen=True)
class Examples:
    profiles: Path
    host_config: Path


def _checkout() -> Examples | None:
    top = Path(__file__).resolve().parent.parent
    found = Examples(top / "profiles", top / "deploy" / HOST_EXAMPLE)
    if (top / "pyproject.toml").is_file() and found.profiles.is_dir() and \
            found.host_config.is_file():
        return found
    return None


def _installed() -> Examples | None:
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.as_posix().endswith(f"{SHARE}/{HOST_EXAMPLE}"):
            host_config = Path(str(entry.locate())).resolve()
            return Examples(host_config.parent / "profiles", host_config)
    return None


def find() -> Examples:
    """The examples of the code that is running: its checkout first, else its install."""
    found = _checkout() or _installed()
    if found is None:
        raise ExamplesMissing(where=f"the source checkout and <prefix>/{SHARE}")
    return found
