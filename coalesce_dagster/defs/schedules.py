"""Daily syncs. Cron strings and the timezone come from config, so they change without code:

[coalesce_dagster.schedules]          # or COALESCE_DAGSTER__SCHEDULES__<KEY>
timezone = "UTC"
environments_cron = "0 5 * * *"       # environments, environment, environment_nodes
organisation_cron = "15 5 * * *"      # projects, users (and any other top-level resource)
runs_cron = "30 5 * * *"              # runs, run_results, run_status: catches what the sensor missed
default_status = "running"            # or "stopped"
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from .. import settings
from .selections import ENVIRONMENT_FAMILY, ORGANISATION, RUN_FAMILY

logger = logging.getLogger(__name__)

environments_job = dg.define_asset_job(
    "coalesce_environments_job",
    selection=ENVIRONMENT_FAMILY,
    description="Sync Coalesce environments, their detail and their nodes.",
)
organisation_job = dg.define_asset_job(
    "coalesce_organisation_job",
    selection=ORGANISATION,
    description="Sync Coalesce projects and users.",
)
runs_job = dg.define_asset_job(
    "coalesce_runs_job",
    selection=RUN_FAMILY,
    description="Sync new Coalesce runs with their results and status, and finish runs still in flight.",
)

JOBS = [environments_job, organisation_job, runs_job]


def _cron_problem(value: str) -> str | None:
    return None if is_valid_cron_string(value) else "is not a cron expression such as '0 5 * * *'"


def _timezone_problem(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return "is not an IANA time zone such as 'UTC' or 'Europe/Berlin'"
    return None


def _status_problem(value: str) -> str | None:
    return None if value.lower() in ("running", "stopped") else "must be 'running' or 'stopped'"


# key -> (default, check)
SCHEDULE_SETTINGS: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "timezone": ("UTC", _timezone_problem),
    "environments_cron": ("0 5 * * *", _cron_problem),
    "organisation_cron": ("15 5 * * *", _cron_problem),
    "runs_cron": ("30 5 * * *", _cron_problem),
    "default_status": ("running", _status_problem),
}


def schedule_setting_problems() -> list[str]:
    """Every unusable `[coalesce_dagster.schedules]` value, one message each (naming key and value)."""
    problems = []
    for key, (default, check) in SCHEDULE_SETTINGS.items():
        value = settings.setting(f"schedules.{key}", default)
        problem = check(value)
        if problem:
            problems.append(
                f"[coalesce_dagster.schedules] {key} = {value!r} {problem} "
                f"(COALESCE_DAGSTER__SCHEDULES__{key.upper()}; default {default!r})."
            )
    return problems


@dataclass(frozen=True)
class ScheduleSettings:
    timezone: str = "UTC"
    environments_cron: str = "0 5 * * *"
    organisation_cron: str = "15 5 * * *"
    runs_cron: str = "30 5 * * *"
    default_status: str = "running"


def schedule_settings() -> ScheduleSettings:
    """The configured schedule settings, for the definitions: a bad value is logged and its default
    used, so one typo cannot stop the code location from loading (`demo.sh` refuses it outright)."""
    values = {}
    for key, (default, check) in SCHEDULE_SETTINGS.items():
        value = settings.setting(f"schedules.{key}", default)
        problem = check(value)
        if problem:
            logger.warning("[coalesce_dagster.schedules] %s = %r %s; using %r.", key, value, problem, default)
            value = default
        values[key] = value
    return ScheduleSettings(**values)


def build_schedules(options: ScheduleSettings) -> list[dg.ScheduleDefinition]:
    """The three daily syncs, with the given cron strings, time zone and default status."""
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if options.default_status.lower() == "running"
        else dg.DefaultScheduleStatus.STOPPED
    )

    def schedule(name: str, job: Any, cron: str) -> dg.ScheduleDefinition:
        return dg.ScheduleDefinition(
            name=name, job=job, cron_schedule=cron, execution_timezone=options.timezone, default_status=status
        )

    return [
        schedule("coalesce_daily_environments", environments_job, options.environments_cron),
        schedule("coalesce_daily_organisation", organisation_job, options.organisation_cron),
        schedule("coalesce_daily_runs", runs_job, options.runs_cron),
    ]
