"""The wheel: built without setuptools warnings, and a pip-installed tool has its examples.

Builds the wheel from a copy of the tree (so no build/ or egg-info lands in the checkout),
installs it into a private prefix and runs ``cyborg-smartnic examples`` and the README's
example-host commands from outside the tree, the way a pip user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARE = "cyborg_smartnic-0.1.0.data/data/share/cyborg-smartnic"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "cyborg_smartnic", src / "cyborg_smartnic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "profiles", src / "profiles")
    (src / "deploy").mkdir()
    shutil.copy(REPO / "deploy/host.example.yaml", src / "deploy/host.example.yaml")
    (src / "docs").mkdir()
    shutil.copy(REPO / "docs/cyborg-smartnic.1", src / "docs/cyborg-smartnic.1")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp / "dist"),
         str(src)], capture_output=True, text=True, check=False, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = (tmp / "dist").glob("cyborg_smartnic-*.whl")
    return found, built.stdout + built.stderr


def test_wheel_builds_without_setuptools_warnings(wheel: tuple[Path, str]) -> None:
    _, output = wheel
    warnings = [line for line in output.splitlines()
                if "Warning" in line or "!!" in line or "deprecated" in line.lower()]
    assert warnings == []


def test_wheel_ships_the_example_host_profiles_and_host_yaml(wheel: tuple[Path, str]) -> None:
    path, _ = wheel
    names = set(zipfile.ZipFile(path).namelist())
    assert {"cyborg_smartnic/data/example-host.tar.gz",
            "cyborg_smartnic/data/example-host.conf",
            f"{SHARE}/host.example.yaml",
            "cyborg_smartnic-0.1.0.data/data/share/man/man1/cyborg-smartnic.1"} <= names
    profiles = {p.name for p in (REPO / "profiles").glob("*.yaml")}
    assert profiles and {f"{SHARE}/profiles/{name}" for name in profiles} <= names
    metadata = zipfile.ZipFile(path).read("cyborg_smartnic-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "License :: " not in metadata


def test_installed_tool_finds_its_examples(wheel: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = wheel
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--ignore-installed", "--prefix", str(prefix), str(path)],
                   check=True, timeout=300, capture_output=True)
    purelib = sysconfig.get_path("purelib", vars={"base": str(prefix)})
    env = {**os.environ, "PYTHONPATH": purelib}

    def tool(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cyborg_smartnic.cli.main", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = json.loads(tool("examples", "-f", "json"))
    share = prefix / "share/cyborg-smartnic"
    assert where == {"format": 1, "profiles": str(share / "profiles"),
                     "host_config": str(share / "host.example.yaml")}
    assert "profile(s) in" in tool("profile", "validate", where["profiles"])
    assert "Host compute-0.example.org" in tool("discover", "--example-host")
    plan = json.loads(tool("host", "plan", "--example-host", "-f", "json", where["host_config"]))
    assert "steps" in plan
