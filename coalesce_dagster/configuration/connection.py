"""The Coalesce connection, resolved one way for every caller: loads, the sensor, the demo.

Only the documented places are read, in this order:

1. explicit arguments (for instance a Dagster `EnvVar` on `CoalesceResource`);
2. `[sources.coalesce_source]` in `.dlt/config.toml` or `.dlt/secrets.toml`, or its environment
   variables `SOURCES__COALESCE_SOURCE__<KEY>`;
3. the defaults (`sections.ConnectionSettings`).

dlt on its own would also look a source's arguments up under shorter keys (`[sources] access_token`,
a bare `ACCESS_TOKEN` variable). Those belong to other tools, and a credential of another tool must
never be sent to Coalesce, so every value is resolved here and passed to dlt explicitly. The
non-secret keys are checked by the project's one resolver (`sections.py`); the token is a
secret and is resolved here only.

Nothing here runs at import: callers resolve when a run or a sensor tick starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import dlt

from .sections import (
    DEFAULT_NODES_ENVIRONMENTS_AT_ONCE,
    DEFAULT_NODES_FULL_REREAD_HOURS,
    DEFAULT_NODES_PAGE_SIZE,
    DEFAULT_NODES_TIMEOUT_SECONDS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_RUNS_PAGE_SIZE,
    ConfigurationError,
    ConnectionSettings,
    env_var,
    read_section,
)

SECTION = ConnectionSettings.SECTION
TOKEN_KEY = f"{SECTION}.access_token"
TOKEN_ENV = env_var(SECTION, "access_token")

TOKEN_HELP = (
    "No Coalesce access token is configured. Generate one in Coalesce (Deploy tab -> "
    "'Generate Access Token') and set it as `access_token` under [sources.coalesce_source] in "
    f".dlt/secrets.toml, or in the environment variable {TOKEN_ENV}. "
    "To try the project without an account, run ./scripts/demo.sh, which starts the bundled simulator."
)


class MissingTokenError(ConfigurationError):
    def __init__(self) -> None:
        super().__init__(TOKEN_HELP)


@dataclass(frozen=True)
class SourceSettings:
    """Everything `coalesce_source` needs to reach Coalesce: the connection settings and the token."""

    base_url: str
    access_token: str = field(repr=False)  # never in a repr, a log line or an error message
    page_size: int = DEFAULT_PAGE_SIZE
    runs_page_size: int = DEFAULT_RUNS_PAGE_SIZE
    nodes_page_size: int = DEFAULT_NODES_PAGE_SIZE
    nodes_timeout: float = DEFAULT_NODES_TIMEOUT_SECONDS
    nodes_full_reread_hours: float = DEFAULT_NODES_FULL_REREAD_HOURS
    nodes_environments_at_once: int = DEFAULT_NODES_ENVIRONMENTS_AT_ONCE


def resolve_source_settings(
    base_url: str | None = None,
    access_token: str | None = None,
    page_size: int | None = None,
    runs_page_size: int | None = None,
    nodes_page_size: int | None = None,
    nodes_timeout: float | None = None,
    nodes_full_reread_hours: float | None = None,
    nodes_environments_at_once: int | None = None,
) -> SourceSettings:
    """Explicit values win; the rest come from `[sources.coalesce_source]` or the defaults.

    Raises `ConfigurationError` (before any request) naming every unusable value, or for a missing
    token.
    """
    given = {
        "base_url": base_url,
        "page_size": page_size,
        "runs_page_size": runs_page_size,
        "nodes_page_size": nodes_page_size,
        "nodes_timeout": nodes_timeout,
        "nodes_full_reread_hours": nodes_full_reread_hours,
        "nodes_environments_at_once": nodes_environments_at_once,
    }
    connection = read_section(ConnectionSettings, given=given)
    return SourceSettings(access_token=resolve_access_token(access_token), **asdict(connection))


def resolve_access_token(explicit: str | None = None) -> str:
    token = explicit if explicit else dlt.secrets.get(TOKEN_KEY)
    if token is None or not str(token).strip():
        raise MissingTokenError()
    return str(token).strip()


def token_configured() -> bool:
    """Whether a token is set in the documented places (no request is made)."""
    try:
        resolve_access_token()
    except MissingTokenError:
        return False
    return True


def resolve_base_url(explicit: str | None = None) -> str:
    """The host root API paths hang off; explicit value, else `[sources.coalesce_source] base_url`."""
    return read_section(ConnectionSettings, given={"base_url": explicit}, keys=["base_url"]).base_url


__all__ = [
    "ConfigurationError",
    "MissingTokenError",
    "SourceSettings",
    "resolve_access_token",
    "resolve_base_url",
    "resolve_source_settings",
    "token_configured",
]
