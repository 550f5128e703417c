"""Check every setting the project reads, before anything touches data.

Loads and sensor ticks check what they use when they start, and Dagster's definitions fall back to
defaults (with a warning) rather than fail to load. `demo.sh` calls `configuration_problems` first,
so a typo is reported, every bad key at once, before any file is replaced or any request is made.
"""

from __future__ import annotations

import re

from . import settings
from .coalesce.config import ConfigurationError, source_setting_problems

# DuckDB's memory_limit: a number and a unit, e.g. "128MB", "1.5GiB".
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def configuration_problems(*, connection: bool = True) -> list[str]:
    """One message per unusable setting (naming the key, the value and what is allowed).

    connection: also check the Coalesce base URL (not when the demo points at its simulator).
    """
    from .defs.schedules import schedule_setting_problems
    from .defs.sensors import sensor_setting_problems

    return [
        *source_setting_problems(connection=connection),
        *destination_problems(),
        *schedule_setting_problems(),
        *sensor_setting_problems(),
    ]


def destination_problems() -> list[str]:
    problems = []
    name = settings.destination_name()
    try:
        from dlt.common.destination.reference import Destination

        Destination.from_reference(name)
    except Exception as error:  # dlt raises several types for an unknown or uninstalled destination
        problems.append(
            f"[coalesce_dagster] destination = {name!r} is not a dlt destination this installation can "
            f"load into ({type(error).__name__}: {str(error).splitlines()[0][:160]})."
        )
    if not settings.dataset_name().strip():
        problems.append("[coalesce_dagster] dataset_name must not be empty.")
    limit = settings.setting("duckdb_memory_limit", settings.DEFAULT_DUCKDB_MEMORY_LIMIT)
    if not _MEMORY.match(limit):
        problems.append(
            f"[coalesce_dagster] duckdb_memory_limit = {limit!r} is not a size such as '128MB' or '1GB' "
            f"(default {settings.DEFAULT_DUCKDB_MEMORY_LIMIT!r})."
        )
    return problems


__all__ = ["ConfigurationError", "configuration_problems"]
