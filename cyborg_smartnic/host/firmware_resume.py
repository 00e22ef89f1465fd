"""The "continue after reboot" record of a ``host apply`` that stopped at a reboot step.

``host apply`` writes it when its plan needs a reboot (an NV change no firmware reset can
activate); the boot unit runs ``host apply --resume``, which re-plans from the recorded
host.yaml on the host as it booted (so it converges however far the previous run got, also
after a power loss), applies, and removes the record once nothing is left to do. When the
host booted but the firmware change is still not active (the reboot step is planned again),
resume stops and says so instead of asking for reboot after reboot.

The file is written atomically (temporary file, fsync, rename, fsync of the directory) in
``[smartnic] apply_state_dir``: a crash leaves the previous record or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyborg_smartnic.host.steps import Step

FILE_NAME = "host-apply-resume.json"
VERSION = 1
MAX_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ResumeRecord:
    host_config: str  # absolute path of the host.yaml the apply used
    hostname: str
    pending: tuple[dict[str, Any], ...]  # the steps left at the reboot (the reboot first)

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, "host_config": self.host_config,
                           "hostname": self.hostname, "pending": list(self.pending)},
                          indent=1, sort_keys=True) + "\n"


class BadRecord(ValueError):
    """The record exists but cannot be used (not ours, damaged)."""


def path_in(state_dir: str) -> Path:
    return Path(state_dir) / FILE_NAME


def record(state_dir: str, host_config: str, hostname: str,
           pending: tuple[Step, ...]) -> Path:
    """Write the record atomically; returns its path."""
    entry = ResumeRecord(os.path.abspath(host_config), hostname,
                         tuple(step.to_dict() for step in pending))
    directory = Path(state_dir)
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    target = path_in(state_dir)
    fd, temporary = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(entry.to_json())
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def load(state_dir: str) -> ResumeRecord | None:
    """The record, None when there is none; ``BadRecord`` when it is unusable."""
    target = path_in(state_dir)
    try:
        with open(target, "rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadRecord(f"{target}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_BYTES:
        raise BadRecord(f"{target}: larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRecord(f"{target}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(
            data.get("host_config"), str) or not isinstance(data.get("pending"), list):
        raise BadRecord(f"{target}: not a version {VERSION} resume record")
    return ResumeRecord(data["host_config"], str(data.get("hostname") or ""),
                        tuple(p for p in data["pending"] if isinstance(p, dict)))


def clear(state_dir: str) -> bool:
    """Remove the record; False when there was none."""
    try:
        path_in(state_dir).unlink()
    except FileNotFoundError:
        return False
    return True
