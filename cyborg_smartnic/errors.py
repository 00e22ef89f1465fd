"""The one exception base of the project.

Every error a user can cause is a ``SmartNicError`` subclass with a ``msg_fmt`` template, so
the CLI can print it as one line and tests can format every subclass. Subpackages define their
own subclasses next to the code that raises them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class SmartNicError(Exception):
    """Base error: ``msg_fmt`` is formatted with the keyword arguments given."""

    msg_fmt = "an unknown error occurred"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        super().__init__(self.msg_fmt % kwargs)

    @property
    def message(self) -> str:
        return str(self)


class InvalidPciAddress(SmartNicError):
    msg_fmt = "invalid PCI address %(address)r: %(reason)s"


class ConfigError(SmartNicError):
    """A bad value in cyborg.conf's [smartnic] options (or the equivalent CLI flags)."""

    msg_fmt = "%(option)s: %(reason)s"


class SourceError(SmartNicError):
    """A bad value in a user file: names the file, line, column and field."""

    msg_fmt = "%(file)s:%(line)d:%(column)d: %(field)s: %(reason)s"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Order errors as an editor lists them: file, line, column, field, reason."""
        kw = self.kwargs
        return (str(kw["file"]), int(kw["line"]), int(kw["column"]), str(kw["field"]),
                str(kw["reason"]))


class SourceErrors(SmartNicError):
    """Every problem found in user files. The CLI prints each ``errors`` line, then this."""

    msg_fmt = "%(count)s error(s) in %(what)s; nothing was done"
    what = "input files"

    def __init__(self, errors: Iterable[SourceError] = (), **kwargs: Any) -> None:
        self.errors = tuple(sorted(errors, key=SourceError.sort_key))
        kwargs.setdefault("count", len(self.errors))
        kwargs.setdefault("what", self.what)
        super().__init__(**kwargs)

    @property
    def details(self) -> str:
        """Every error, one ``FILE:LINE:COL: field: message`` line each."""
        return "\n".join(str(error) for error in self.errors)
