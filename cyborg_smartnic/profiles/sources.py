"""Profile files on disk -> positioned profile units (one per profile, wherever it sits).

A file holds one profile (a mapping) or a list of profiles; a directory means every
``*.yaml``/``*.yml`` file directly in it, in name order. Problems with the files themselves
(missing, unreadable, not YAML, neither a mapping nor a list) come back as ``SourceError``s
so that every file is looked at before anything is reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyborg_smartnic.errors import SourceError
from cyborg_smartnic.yamlsource import (
    FILE_FIELD,
    ROOT_FIELD,
    Document,
    JsonPath,
    PathKey,
    Position,
    load_document,
)

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ProfileSource:
    """One profile inside a document: ``base`` is () for a one-profile file, (i,) in a list."""

    doc: Document
    base: JsonPath

    @property
    def data(self) -> Any:
        return self.doc.get(self.base)

    @property
    def file(self) -> str:
        return self.doc.file

    def path(self, *parts: PathKey) -> JsonPath:
        return (*self.base, *parts)

    def position(self, *parts: PathKey) -> Position:
        return self.doc.position(self.path(*parts))

    def location(self) -> str:
        line, column = self.position()
        return f"{self.file}:{line}:{column}"

    def error(self, parts: Iterable[PathKey], reason: str) -> SourceError:
        return self.doc.error(self.path(*parts), reason)


def find_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[SourceError]]:
    """Expand directories to their profile files; a missing path is an error, not a skip."""
    files: list[Path] = []
    errors: list[SourceError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                errors.append(SourceError(file=str(path), line=1, column=1, field=FILE_FIELD,
                                          reason="directory holds no *.yaml or *.yml file"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            errors.append(SourceError(file=str(path), line=1, column=1, field=FILE_FIELD,
                                      reason="no such file or directory"))
    unique = list(dict.fromkeys(files))
    return unique, errors


def split_document(doc: Document) -> tuple[list[ProfileSource], list[SourceError]]:
    """The profiles of one parsed file, or why the file's top level holds none."""
    data = doc.data
    if isinstance(data, dict):
        return [ProfileSource(doc, ())], []
    if isinstance(data, list) and data:
        return [ProfileSource(doc, (i,)) for i in range(len(data))], []
    if data is None:
        reason = "empty file: expected a profile (a mapping) or a list of profiles"
    elif isinstance(data, list):
        reason = "empty list: expected at least one profile"
    else:
        reason = (f"expected a profile (a mapping) or a list of profiles, got "
                  f"{type(data).__name__}")
    line, column = doc.position(())
    return [], [SourceError(file=doc.file, line=line, column=column, field=ROOT_FIELD,
                            reason=reason)]


def load_sources(paths: Iterable[str | Path]) -> tuple[list[ProfileSource], list[SourceError]]:
    """Every profile unit in ``paths`` plus every file-level error found on the way."""
    files, errors = find_files(paths)
    sources: list[ProfileSource] = []
    for path in files:
        try:
            doc = load_document(path)
        except SourceError as exc:
            errors.append(exc)
            continue
        found, problems = split_document(doc)
        sources.extend(found)
        errors.extend(problems)
    return sources, errors
