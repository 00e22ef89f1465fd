"""Every SmartNicError subclass formats its template with the keywords it names."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import cyborg_smartnic
from cyborg_smartnic.errors import SmartNicError

_KEY_RE = re.compile(r"%\((\w+)\)")


def _all_error_classes() -> list[type[SmartNicError]]:
    for module in pkgutil.walk_packages(cyborg_smartnic.__path__, "cyborg_smartnic."):
        importlib.import_module(module.name)  # no module has import-time side effects
    found: list[type[SmartNicError]] = []
    pending: list[type[SmartNicError]] = [SmartNicError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


@pytest.mark.parametrize("cls", _all_error_classes(), ids=lambda c: c.__qualname__)
def test_every_error_formats_its_template(cls: type[SmartNicError]) -> None:
    keys = _KEY_RE.findall(cls.msg_fmt)
    kwargs = {key: f"<{key}>" if key not in ("line", "column") else 7 for key in keys}
    error = cls(**kwargs)
    text = str(error)
    assert "\n" not in text
    for key, value in kwargs.items():
        assert str(value) in text, f"{cls.__qualname__} lost {key}"


def test_missing_keyword_is_a_programming_error() -> None:
    class Broken(SmartNicError):
        msg_fmt = "%(missing)s"

    with pytest.raises(KeyError):
        Broken()
