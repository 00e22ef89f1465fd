"""Load profile files or directories into validated ``ProfileSpec``s, or fail with every error.

Nothing downstream (render, apply, check) ever sees a profile unless every file given
validated cleanly: a typo in one file stops the whole run before any change is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cyborg_smartnic import catalog
from cyborg_smartnic.errors import SourceError, SourceErrors
from cyborg_smartnic.profiles import spec
from cyborg_smartnic.profiles.sources import load_sources
from cyborg_smartnic.profiles.validate import validate_sources
from cyborg_smartnic.yamlsource import error_sort_key


class ProfileValidationError(SourceErrors):
    """Profiles had errors; ``errors`` holds each one (FILE:LINE:COL: field: message)."""

    what = "device profiles"


def check_profiles(paths: Iterable[str | Path], *,
                   models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS
                   ) -> tuple[list[spec.ProfileSpec], list[SourceError]]:
    """Validate every file in ``paths``: the specs when there is no error, else the errors."""
    sources, errors = load_sources(paths)
    errors = sorted(errors + validate_sources(sources, models=models), key=error_sort_key)
    if errors:
        return [], errors
    profiles = []
    for src in sources:
        line, _ = src.position()
        profiles.append(spec.from_data(src.data, f"{src.file}:{line}", models))
    return profiles, []


def load_profiles(paths: Iterable[str | Path], *,
                  models: tuple[catalog.NicModel, ...] = catalog.BUILTIN_MODELS
                  ) -> list[spec.ProfileSpec]:
    """Like ``check_profiles`` but raises ``ProfileValidationError`` carrying every error."""
    profiles, errors = check_profiles(paths, models=models)
    if errors:
        raise ProfileValidationError(errors)
    return profiles
