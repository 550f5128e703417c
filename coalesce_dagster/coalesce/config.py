"""The Coalesce connection settings, resolved one way for every caller: loads, the sensor, the demo.

Only the documented places are read, in this order:

1. explicit arguments (for instance a Dagster `EnvVar` on `CoalesceResource`);
2. `[sources.coalesce_source]` in `.dlt/config.toml` or `.dlt/secrets.toml`, or its environment
   variables `SOURCES__COALESCE_SOURCE__<KEY>`;
3. the defaults below.

dlt on its own would also look a source's arguments up under shorter keys (`[sources] access_token`,
a bare `ACCESS_TOKEN` variable). Those belong to other tools, and a credential of another tool must
never be sent to Coalesce, so every value is resolved here and passed to dlt explicitly.

Nothing here runs at import: callers resolve when a run or a sensor tick starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dlt

from .regions import InvalidBaseUrlError, canonical_base_url

SECTION = "sources.coalesce_source"
TOKEN_KEY = f"{SECTION}.access_token"
TOKEN_ENV = "SOURCES__COALESCE_SOURCE__ACCESS_TOKEN"

# Page sizes. Clients of real accounts cap `limit` at 500 and Coalesce's hosted docs say 1-500; a
# larger page may be refused (400), which the list reader answers by asking for smaller pages.
DEFAULT_PAGE_SIZE = 250
DEFAULT_RUNS_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
# `detail=true` node pages are slow on large real workspaces (250 nodes have needed up to 180 s),
# so they get smaller pages and a longer timeout of their own.
DEFAULT_NODES_PAGE_SIZE = 50
DEFAULT_NODES_TIMEOUT_SECONDS = 180.0

TOKEN_HELP = (
    "No Coalesce access token is configured. Generate one in Coalesce (Deploy tab -> "
    "'Generate Access Token') and set it as `access_token` under [sources.coalesce_source] in "
    f".dlt/secrets.toml, or in the environment variable {TOKEN_ENV}. "
    "To try the project without an account, run ./scripts/demo.sh, which starts the bundled simulator."
)


class ConfigurationError(ValueError):
    """A setting is missing or unusable. The message names the key, the value and what is allowed."""


class MissingTokenError(ConfigurationError):
    def __init__(self) -> None:
        super().__init__(TOKEN_HELP)


@dataclass(frozen=True)
class SourceSettings:
    """Everything `coalesce_source` needs to reach Coalesce."""

    base_url: str
    access_token: str = field(repr=False)  # never in a repr, a log line or an error message
    page_size: int = DEFAULT_PAGE_SIZE
    runs_page_size: int = DEFAULT_RUNS_PAGE_SIZE
    nodes_page_size: int = DEFAULT_NODES_PAGE_SIZE
    nodes_timeout: float = DEFAULT_NODES_TIMEOUT_SECONDS


def resolve_source_settings(
    base_url: str | None = None,
    access_token: str | None = None,
    page_size: int | None = None,
    runs_page_size: int | None = None,
    nodes_page_size: int | None = None,
    nodes_timeout: float | None = None,
) -> SourceSettings:
    """Explicit values win; the rest come from `[sources.coalesce_source]` or the defaults.

    Raises `ConfigurationError` (before any request) for a missing token or an unusable value.
    """
    return SourceSettings(
        base_url=resolve_base_url(base_url),
        access_token=resolve_access_token(access_token),
        page_size=_page_size("page_size", page_size, DEFAULT_PAGE_SIZE),
        runs_page_size=_page_size("runs_page_size", runs_page_size, DEFAULT_RUNS_PAGE_SIZE),
        nodes_page_size=_page_size("nodes_page_size", nodes_page_size, DEFAULT_NODES_PAGE_SIZE),
        nodes_timeout=_positive_number("nodes_timeout", nodes_timeout, DEFAULT_NODES_TIMEOUT_SECONDS),
    )


def source_setting_problems(*, connection: bool = True) -> list[str]:
    """Every unusable `[sources.coalesce_source]` value, one message each; the token is not required.

    connection: also check `base_url` (skip it when the settings will point at the simulator).
    """
    checks: list[Callable[[], object]] = [
        lambda: _page_size("page_size", None, DEFAULT_PAGE_SIZE),
        lambda: _page_size("runs_page_size", None, DEFAULT_RUNS_PAGE_SIZE),
        lambda: _page_size("nodes_page_size", None, DEFAULT_NODES_PAGE_SIZE),
        lambda: _positive_number("nodes_timeout", None, DEFAULT_NODES_TIMEOUT_SECONDS),
    ]
    if connection:
        checks.append(lambda: resolve_base_url())
    return collect_problems(checks)


def collect_problems(checks: list[Callable[[], Any]]) -> list[str]:
    """Run every check; the message of each that raised `ConfigurationError`, in order."""
    problems = []
    for check in checks:
        try:
            check()
        except ConfigurationError as error:
            problems.append(str(error))
    return problems


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
    value = explicit if explicit else dlt.config.get(f"{SECTION}.base_url")
    try:
        return canonical_base_url(None if value is None else str(value))
    except InvalidBaseUrlError as error:
        raise ConfigurationError(f"[sources.coalesce_source] base_url: {error}") from None


def _page_size(key: str, explicit: int | None, default: int) -> int:
    value = _integer(key, explicit, default)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"[sources.coalesce_source] {key} = {value!r} is out of range: Coalesce takes page sizes "
            f"from 1 to {MAX_PAGE_SIZE}."
        )
    return value


def _integer(key: str, explicit: int | None, default: int) -> int:
    value = _raw(key, explicit)
    if value is None:
        return default
    if isinstance(value, bool) or not _is_integer(value):
        raise ConfigurationError(
            f"[sources.coalesce_source] {key} = {value!r} is not a whole number "
            f"(set it in .dlt/config.toml or SOURCES__COALESCE_SOURCE__{key.upper()}; default {default})."
        )
    return int(str(value).strip())


def _positive_number(key: str, explicit: float | None, default: float) -> float:
    value = _raw(key, explicit)
    if value is None:
        return default
    try:
        number = float(str(value).strip()) if not isinstance(value, bool) else float("nan")
    except ValueError:
        number = float("nan")
    if not number > 0:  # also rejects NaN
        raise ConfigurationError(
            f"[sources.coalesce_source] {key} = {value!r} must be a positive number of seconds "
            f"(default {default:g})."
        )
    return number


def _raw(key: str, explicit: Any) -> Any:
    if explicit is not None:
        return explicit
    value: Any = dlt.config.get(f"{SECTION}.{key}")
    return None if value is None or str(value).strip() == "" else value


def _is_integer(value: Any) -> bool:
    if isinstance(value, int):
        return True
    text = str(value).strip()
    return text.lstrip("+-").isdigit()
