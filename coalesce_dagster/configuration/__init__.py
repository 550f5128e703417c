"""Where everything the project can be configured with lives: one package, four parts.

    sections.py    the typed sections: every non-secret key with its default and its check, and the
                   one resolver (`read_section`, `load_settings`) that reads them from dlt config
    connection.py  the Coalesce connection: `[sources.coalesce_source]` with the access token
                   (`resolve_source_settings`, `resolve_access_token`, `resolve_base_url`)
    validation.py  every setting checked at once, before anything runs (`configuration_problems`)
    names.py       fixed names and paths (pipeline name, the DuckDB file, dlt's working folders)
    reference.py   every key once, with its default, environment variable and check (`all_keys`),
                   which docs/configuration.md's "Every key" table is tested against

Nothing here imports Dagster (the cron check asks Dagster's parser only when a cron is checked) and
nothing reads configuration at import: values are resolved when a load, a sensor tick or the
definitions ask for them.
"""

from __future__ import annotations

from . import names
from .connection import (
    TOKEN_ENV,
    MissingTokenError,
    SourceSettings,
    resolve_access_token,
    resolve_base_url,
    resolve_source_settings,
    token_configured,
)
from .reference import Key, all_keys
from .sections import (
    DEFAULT_DESTINATION,
    SECTIONS,
    ConfigurationError,
    ConnectionSettings,
    DestinationSettings,
    FreshnessRule,
    HealthSettings,
    NodeSettings,
    ProjectSettings,
    ScheduleSettings,
    SensorSettings,
    Severity,
    Status,
    env_var,
    load_settings,
    read_section,
)
from .validation import configuration_problems

__all__ = [
    "DEFAULT_DESTINATION",
    "SECTIONS",
    "TOKEN_ENV",
    "ConfigurationError",
    "ConnectionSettings",
    "DestinationSettings",
    "FreshnessRule",
    "HealthSettings",
    "Key",
    "MissingTokenError",
    "NodeSettings",
    "ProjectSettings",
    "ScheduleSettings",
    "SensorSettings",
    "Severity",
    "SourceSettings",
    "Status",
    "all_keys",
    "configuration_problems",
    "env_var",
    "load_settings",
    "names",
    "read_section",
    "resolve_access_token",
    "resolve_base_url",
    "resolve_source_settings",
    "token_configured",
]
