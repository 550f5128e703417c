"""The project's one typed configuration: every non-secret setting, resolved and checked in one place.

Each section is a frozen dataclass whose fields are its keys, with their defaults and their checks;
`read_section` resolves one section, `load_settings` all of them. Each check also says in words
what it accepts, for the table of every key in docs/configuration.md (`reference.py`). Values
come from dlt config (`.dlt/config.toml`, or an environment variable named after the key, which
wins), or the default when a key is unset or blank:

    section                       environment variables                read by
    [sources.coalesce_source]     SOURCES__COALESCE_SOURCE__<KEY>      a load, the sensor's client
    [coalesce_dagster]            COALESCE_DAGSTER__<KEY>              a load; the asset kinds
    [coalesce_dagster.schedules]  COALESCE_DAGSTER__SCHEDULES__<KEY>   the definitions
    [coalesce_dagster.sensor]     COALESCE_DAGSTER__SENSOR__<KEY>      the definitions; each tick
    [coalesce_dagster.nodes]      COALESCE_DAGSTER__NODES__<KEY>       the node assets; their snapshot
    [coalesce_dagster.health]     COALESCE_DAGSTER__HEALTH__<KEY>      the Coalesce health checks, at run time

A bad value is named with its key, its environment variable, the value and what is allowed.
`strict=True` raises one `ConfigurationError` listing every bad key; `strict=False` logs each one
and uses that key's default (the definitions: a typo must not stop the code location loading).

The Coalesce access token is a secret and is not here: it is resolved only when a run or a sensor
tick starts (`connection.py`). Nothing is read at import.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dlt

from ..coalesce.regions import DEFAULT_BASE_URL, InvalidBaseUrlError, canonical_base_url

logger = logging.getLogger(__name__)

Status = Literal["running", "stopped"]

# Page sizes. Clients of real accounts cap `limit` at 500 and Coalesce's hosted docs say 1-500; a
# larger page may be refused (400), which the list reader answers by asking for smaller pages.
DEFAULT_PAGE_SIZE = 250
DEFAULT_RUNS_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
# `detail=true` node pages are slow on large real workspaces (250 nodes have needed up to 180 s),
# so they get smaller pages and a longer timeout of their own.
DEFAULT_NODES_PAGE_SIZE = 50
DEFAULT_NODES_TIMEOUT_SECONDS = 180.0

# How often every environment's nodes are read whether a deploy ran or not (`coalesce/nodes/rereads.py`):
# weekly. The environments sync runs daily, so a day would make every scheduled sync a full one.
DEFAULT_NODES_FULL_REREAD_HOURS = 168.0
# How many environments' nodes are read at once. Each environment's nodes are held whole until they
# are written (about 20 MB per 2,000 nodes with detail), and the memory stays with the process: one
# at a time keeps a sync's peak flat in the number of environments (docs/benchmark.md, "Memory").
# Raise it where node pages are slow and there are many environments: reading them in turn takes
# the sum of their times, not the longest.
DEFAULT_NODES_ENVIRONMENTS_AT_ONCE = 1

DEFAULT_DESTINATION = "duckdb"
DEFAULT_DATASET_NAME = "coalesce_data"
# DuckDB's default memory limit is 80% of RAM; merging a million run results then holds a large part
# of it. A limit makes DuckDB spill to disk instead.
DEFAULT_DUCKDB_MEMORY_LIMIT = "96MB"


class ConfigurationError(ValueError):
    """A setting is missing or unusable. The message names the key, the value and what is allowed;
    `problems` holds one message per bad key."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# -- checks: each turns a raw value (text, or a number from TOML) into its type, or says why not ---


class _Unusable(ValueError):
    """Why a value cannot be used, worded to follow `<key> = <value>`."""


Parse = Callable[[Any], Any]


@dataclass(frozen=True)
class Check:
    """What a key accepts: in words (the "check" column of docs/configuration.md's table of every
    key) and as the function turning a configured value into its type or raising `_Unusable`."""

    accepts: str
    parse: Parse

    def __call__(self, raw: Any) -> Any:
        return self.parse(raw)


def _accepts(words: str) -> Callable[[Parse], Check]:
    """Makes a parse function a `Check` that says in `words` what it accepts."""

    def check(parse: Parse) -> Check:
        return Check(words, parse)

    return check


def _number(raw: Any) -> float:
    try:
        return float("nan") if isinstance(raw, bool) else float(str(raw).strip())
    except ValueError:
        return float("nan")


def _whole_number(minimum: int) -> Check:
    @_accepts(f"a whole number of at least {minimum}")
    def parse(raw: Any) -> int:
        value = _number(raw)
        if not (value >= minimum and value.is_integer()):  # also rejects NaN
            raise _Unusable(f"must be a whole number of at least {minimum}")
        return int(value)

    return parse


def _at_least(minimum: float) -> Check:
    @_accepts(f"a number of at least {minimum:g}")
    def parse(raw: Any) -> float:
        value = _number(raw)
        if not value >= minimum:  # also rejects NaN
            raise _Unusable(f"must be a number of at least {minimum:g}")
        return value

    return parse


@_accepts(f"a whole number from 1 to {MAX_PAGE_SIZE}")
def _page_size(raw: Any) -> int:
    value = _number(raw)
    if not value.is_integer():  # also NaN: text that is no number
        raise _Unusable("is not a whole number")
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise _Unusable(f"is out of range: Coalesce takes page sizes from 1 to {MAX_PAGE_SIZE}")
    return int(value)


@_accepts("a positive number of seconds")
def _seconds(raw: Any) -> float:
    value = _number(raw)
    if not value > 0:  # also rejects NaN
        raise _Unusable("must be a positive number of seconds")
    return value


@_accepts("the URL you log in to Coalesce with, or a region alias such as eu")
def _base_url(raw: Any) -> str:
    try:
        return canonical_base_url(str(raw))
    except InvalidBaseUrlError as error:
        raise _Unusable(f"cannot be used: {error}") from None


@_accepts("a dlt destination this installation can load into")
def _destination(raw: Any) -> str:
    name = str(raw).strip()
    try:
        from dlt.common.destination.reference import Destination

        Destination.from_reference(name)
    except Exception as error:  # dlt raises several types for an unknown or uninstalled destination
        raise _Unusable(
            "is not a dlt destination this installation can load into "
            f"({type(error).__name__}: {str(error).splitlines()[0][:160]})"
        ) from None
    return name


@_accepts("text")
def _text(raw: Any) -> str:
    return str(raw).strip()


# DuckDB's memory_limit: a number and a unit, e.g. "128MB", "1.5GiB".
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


@_accepts("a size such as 128MB or 1GB")
def _memory_size(raw: Any) -> str:
    if not _MEMORY.match(str(raw)):
        raise _Unusable("is not a size such as '128MB' or '1GB'")
    return str(raw).strip()


@_accepts("an IANA time zone such as UTC or Europe/Berlin")
def _timezone(raw: Any) -> str:
    value = str(raw).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _Unusable("is not an IANA time zone such as 'UTC' or 'Europe/Berlin'") from None
    return value


@_accepts("a cron expression of five fields")
def _cron(raw: Any) -> str:
    from dagster._utils.schedules import is_valid_cron_string  # only when a schedule is configured

    value = str(raw).strip()
    if not is_valid_cron_string(value):
        raise _Unusable("is not a cron expression such as '0 5 * * *'")
    return value


@_accepts("running or stopped")
def _status(raw: Any) -> Status:
    value = str(raw).strip().lower()
    if value == "running":
        return "running"
    if value == "stopped":
        return "stopped"
    raise _Unusable("must be 'running' or 'stopped'")


@_accepts("ids or names: a list, or text separated by commas")
def _names(raw: Any) -> tuple[str, ...]:
    """A list of ids or names: a TOML list, a JSON list in a variable, or text separated by commas."""
    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise _Unusable('is not a list such as ["2", "Production"]') from None
        else:
            value = text.split(",")
    if not isinstance(value, list | tuple):
        value = [value]
    return tuple(str(entry).strip() for entry in value if str(entry).strip())


@_accepts("a lowercase word (letters, digits, _ and -)")
def _kind(raw: Any) -> str:
    value = str(raw).strip().lower()
    if not re.fullmatch(r"[a-z0-9_-]+", value):
        raise _Unusable("is not a kind such as 'snowflake' or 'databricks'")
    return value


Severity = Literal["warn", "error"]


@_accepts("warn or error")
def _severity(raw: Any) -> Severity:
    value = str(raw).strip().lower()
    if value == "warn":
        return "warn"
    if value == "error":
        return "error"
    raise _Unusable("must be 'warn' or 'error'")


@dataclass(frozen=True)
class FreshnessRule:
    """One "a successful run in the last N hours" expectation, for an environment or one of its saved
    jobs (each by id or name)."""

    environment: str
    hours: float
    job: str | None = None
    severity: Severity = "error"
    # The rule also fails once this many of its latest runs failed in a row; None: the section's.
    failures_in_a_row: int | None = None

    @property
    def label(self) -> str:
        return f"{self.environment} / {self.job}" if self.job else self.environment


_RULE_KEYS = {"environment", "job", "hours", "severity", "failures_in_a_row"}


@_accepts("a list of rules, each with environment and hours (and job, severity, failures_in_a_row)")
def _freshness_rules(raw: Any) -> tuple[FreshnessRule, ...]:
    """A TOML list of inline tables, or the same as JSON in an environment variable."""
    value = raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw) if raw.strip() else []
        except ValueError:
            raise _Unusable('is not a list such as [{"environment": "Production", "hours": 26}]') from None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _Unusable('is not a list such as [{"environment": "Production", "hours": 26}]')
    rules = []
    for number, entry in enumerate(value, start=1):
        if not isinstance(entry, Mapping):
            raise _Unusable(f"has rule {number} that is not a table with environment and hours")
        unknown = set(entry) - _RULE_KEYS
        if unknown:
            raise _Unusable(
                f"has rule {number} with unknown keys {sorted(unknown)} (allowed: {sorted(_RULE_KEYS)})"
            )
        environment = str(entry.get("environment") or "").strip()
        hours = _number(entry.get("hours"))
        if not environment or not hours > 0:  # also rejects NaN
            raise _Unusable(f"has rule {number} without an environment and a positive number of hours")
        job = str(entry.get("job") or "").strip() or None
        try:
            severity = _severity(entry.get("severity") or "error")
            in_a_row = entry.get("failures_in_a_row")
            failures = None if _blank(in_a_row) else _whole_number(minimum=1)(in_a_row)
        except _Unusable as unusable:
            raise _Unusable(f"has rule {number} whose value {unusable}") from None
        rules.append(FreshnessRule(environment, hours, job, severity, failures))
    return tuple(rules)


def _setting(default: Any, check: Check) -> Any:
    """A key of a section: its default, and the check a configured value must pass."""
    return field(default=default, metadata={"check": check})


# -- the sections -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingsSection:
    """A section of dlt config: its fields are its keys, each made by `_setting`."""

    SECTION: ClassVar[str]  # the dlt config section, e.g. "coalesce_dagster.sensor"


@dataclass(frozen=True)
class ConnectionSettings(SettingsSection):
    """`[sources.coalesce_source]` without the token: where Coalesce is and how it is paged."""

    SECTION: ClassVar[str] = "sources.coalesce_source"

    base_url: str = _setting(DEFAULT_BASE_URL, _base_url)  # the URL you log in with, or a region alias
    page_size: int = _setting(DEFAULT_PAGE_SIZE, _page_size)  # environments, jobs and users
    runs_page_size: int = _setting(DEFAULT_RUNS_PAGE_SIZE, _page_size)
    nodes_page_size: int = _setting(DEFAULT_NODES_PAGE_SIZE, _page_size)
    nodes_timeout: float = _setting(DEFAULT_NODES_TIMEOUT_SECONDS, _seconds)  # one node page
    # Every environment's nodes read at least this often, deploy or not; 0: on every sync.
    nodes_full_reread_hours: float = _setting(DEFAULT_NODES_FULL_REREAD_HOURS, _at_least(0))
    nodes_environments_at_once: int = _setting(DEFAULT_NODES_ENVIRONMENTS_AT_ONCE, _whole_number(1))


@dataclass(frozen=True)
class DestinationSettings(SettingsSection):
    """`[coalesce_dagster]`: where the data goes."""

    SECTION: ClassVar[str] = "coalesce_dagster"

    destination: str = _setting(DEFAULT_DESTINATION, _destination)  # a dlt destination name
    dataset_name: str = _setting(DEFAULT_DATASET_NAME, _text)
    duckdb_memory_limit: str = _setting(DEFAULT_DUCKDB_MEMORY_LIMIT, _memory_size)


@dataclass(frozen=True)
class ScheduleSettings(SettingsSection):
    """`[coalesce_dagster.schedules]`: the daily syncs (`defs/schedules.py`)."""

    SECTION: ClassVar[str] = "coalesce_dagster.schedules"

    timezone: str = _setting("UTC", _timezone)
    environments_cron: str = _setting("0 5 * * *", _cron)
    organisation_cron: str = _setting("15 5 * * *", _cron)
    runs_cron: str = _setting("30 5 * * *", _cron)
    default_status: Status = _setting("running", _status)


@dataclass(frozen=True)
class SensorSettings(SettingsSection):
    """`[coalesce_dagster.sensor]`: the run-status sensor (`defs/sensors.py`)."""

    SECTION: ClassVar[str] = "coalesce_dagster.sensor"

    # How often the daemon ticks. 30 s: a finished run waits at most this long for a tick, and with the
    # queue, the run's start and the load, its results are queryable within about a minute; a quiet
    # tick costs one or two requests.
    minimum_interval_seconds: int = _setting(30, _whole_number(minimum=1))
    lookback_hours: float = _setting(6.0, _at_least(0))
    time_budget_seconds: float = _setting(40.0, _at_least(1))
    max_runs_per_request: int = _setting(50, _whole_number(minimum=1))
    default_status: Status = _setting("stopped", _status)


@dataclass(frozen=True)
class NodeSettings(SettingsSection):
    """`[coalesce_dagster.nodes]`: Coalesce's nodes as assets (`defs/node_*.py`)."""

    SECTION: ClassVar[str] = "coalesce_dagster.nodes"

    environments: tuple[str, ...] = _setting((), _names)  # ids or names; none: no node assets
    # Environments (ids or names, among `environments`) whose nodes Dagster may build by starting
    # Coalesce runs; every other one is observed only. None by default: starting work is opt-in.
    orchestrate: tuple[str, ...] = _setting((), _names)
    warehouse: str = _setting("snowflake", _kind)  # the kind shown beside "coalesce"
    snapshot_path: str = _setting("", _text)  # a file instead of Dagster's defs state folder


@dataclass(frozen=True)
class HealthSettings(SettingsSection):
    """`[coalesce_dagster.health]`: what the Coalesce health checks expect (`defs/health/`), read when
    they are evaluated, never when the definitions load."""

    SECTION: ClassVar[str] = "coalesce_dagster.health"

    # Per environment or saved job: a successful run within N hours (none by default).
    freshness: tuple[FreshnessRule, ...] = _setting((), _freshness_rules)
    # Every environment and saved job: fails once its latest runs failed this many times in a row.
    failures_in_a_row: int = _setting(3, _whole_number(minimum=1))
    failures_in_a_row_severity: Severity = _setting("warn", _severity)


@dataclass(frozen=True)
class ProjectSettings:
    connection: ConnectionSettings
    destination: DestinationSettings
    schedules: ScheduleSettings
    sensor: SensorSettings
    nodes: NodeSettings
    health: HealthSettings


# Every section, in the order the docs list them.
SECTIONS: tuple[type[SettingsSection], ...] = (
    ConnectionSettings,
    DestinationSettings,
    ScheduleSettings,
    SensorSettings,
    NodeSettings,
    HealthSettings,
)
Section = TypeVar("Section", bound=SettingsSection)


# -- the resolver -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    message: str
    default: Any


def env_var(section: str, key: str) -> str:
    """The environment variable dlt reads for `[section] key`."""
    return f"{section}.{key}".upper().replace(".", "__")


def _resolve(
    section: type[Section], given: Mapping[str, Any], keys: Collection[str] | None
) -> tuple[Section, list[_Problem]]:
    values: dict[str, Any] = {}
    problems: list[_Problem] = []
    for key in fields(section):
        if keys is not None and key.name not in keys:
            continue
        raw = given.get(key.name)
        if _blank(raw):
            raw = dlt.config.get(f"{section.SECTION}.{key.name}")
        if _blank(raw):
            continue  # unset: the default
        try:
            values[key.name] = key.metadata["check"](raw)
        except _Unusable as unusable:
            message = (
                f"[{section.SECTION}] {key.name} = {raw!r} {str(unusable).rstrip('.')} "
                f"({env_var(section.SECTION, key.name)}; default {_shown(key.default)})."
            )
            problems.append(_Problem(message, key.default))
    return section(**values), problems


def _report(problems: list[_Problem], *, strict: bool) -> None:
    if strict and problems:
        raise ConfigurationError(*(problem.message for problem in problems))
    for problem in problems:
        logger.warning("%s Using %s.", problem.message, _shown(problem.default))


def read_section(
    section: type[Section],
    *,
    strict: bool = True,
    given: Mapping[str, Any] | None = None,
    keys: Collection[str] | None = None,
) -> Section:
    """One section, resolved now.

    given: explicit values (e.g. `CoalesceResource` fields), which win over dlt config; None or blank
    means not given. keys: read only these keys, the others keep their defaults.
    strict: raise one `ConfigurationError` naming every bad key; else log each and use its default.
    """
    resolved, problems = _resolve(section, given or {}, keys)
    _report(problems, strict=strict)
    return resolved


def load_settings(*, strict: bool, connection: bool = True) -> ProjectSettings:
    """Every section, resolved now; with strict, one `ConfigurationError` lists every bad key.

    connection: also read the Coalesce `base_url` (not when the settings will point at a simulator).
    """
    connection_keys = (
        None if connection else [f.name for f in fields(ConnectionSettings) if f.name != "base_url"]
    )
    resolved_connection, connection_problems = _resolve(ConnectionSettings, {}, connection_keys)
    destination, destination_problems = _resolve(DestinationSettings, {}, None)
    schedules, schedule_problems = _resolve(ScheduleSettings, {}, None)
    sensor, sensor_problems = _resolve(SensorSettings, {}, None)
    nodes, node_problems = _resolve(NodeSettings, {}, None)
    health, health_problems = _resolve(HealthSettings, {}, None)
    _report(
        [
            *connection_problems,
            *destination_problems,
            *schedule_problems,
            *sensor_problems,
            *node_problems,
            *health_problems,
        ],
        strict=strict,
    )
    return ProjectSettings(resolved_connection, destination, schedules, sensor, nodes, health)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _shown(default: Any) -> str:
    return f"{default:g}" if isinstance(default, float) else repr(default)
