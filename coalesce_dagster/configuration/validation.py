"""Check every setting the project reads, before anything touches data.

Loads and sensor ticks check what they use when they start, and Dagster's definitions fall back to
defaults (with a warning) rather than fail to load. `demo.sh` calls `configuration_problems` first,
so a typo is reported, every bad key at once, before any file is replaced or any request is made.
All of them resolve the settings the same way (`sections.py`).
"""

from __future__ import annotations

from .sections import ConfigurationError, load_settings


def configuration_problems(*, connection: bool = True) -> list[str]:
    """One message per unusable setting (naming the key, its variable, the value and what is allowed).

    connection: also check the Coalesce base URL (not when the demo points at its simulator).
    """
    try:
        load_settings(strict=True, connection=connection)
    except ConfigurationError as error:
        return error.problems
    return []


__all__ = ["ConfigurationError", "configuration_problems"]
