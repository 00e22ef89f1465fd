"""Another revision of one of this project's modules, loaded beside this tree's for a bench
that times both in one run (bench/report/run.py --old, bench/host/inuse.py --inuse)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def git_show(rev: str, path: str) -> str:
    """The text of ``path`` (relative to the checkout root) at ``rev``."""
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"],
                          check=True, capture_output=True, text=True).stdout


def load_file(name: str, path: Path) -> ModuleType:
    """The module in ``path``, imported as ``name`` (not under the package it came from)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
