"""`cyborg-smartnic report` (not yet implemented)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:  # pragma: no cover - replaced by the real command
    del subparsers


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
