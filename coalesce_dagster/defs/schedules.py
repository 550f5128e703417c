"""Daily syncs. Cron strings and the timezone come from config, so they change without code:

    [coalesce_dagster.schedules]          # or COALESCE_DAGSTER__SCHEDULES__<KEY>
    timezone = "UTC"
    environments_cron = "0 5 * * *"       # environments, environment, environment_nodes
    organisation_cron = "15 5 * * *"      # projects, users (and any other top-level resource)
    runs_cron = "30 5 * * *"              # runs, run_results, run_status: catches what the sensor missed
    default_status = "running"            # or "stopped"
"""

from typing import Any

import dagster as dg

from .. import settings
from .selections import ENVIRONMENT_FAMILY, ORGANISATION, RUN_FAMILY

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


def _schedule(name: str, job: Any, cron_key: str, default_cron: str) -> dg.ScheduleDefinition:
    status = settings.setting("schedules.default_status", "running").lower()
    return dg.ScheduleDefinition(
        name=name,
        job=job,
        cron_schedule=settings.setting(f"schedules.{cron_key}", default_cron),
        execution_timezone=settings.setting("schedules.timezone", "UTC"),
        default_status=dg.DefaultScheduleStatus.RUNNING if status == "running" else dg.DefaultScheduleStatus.STOPPED,
    )


SCHEDULES = [
    _schedule("coalesce_daily_environments", environments_job, "environments_cron", "0 5 * * *"),
    _schedule("coalesce_daily_organisation", organisation_job, "organisation_cron", "15 5 * * *"),
    _schedule("coalesce_daily_runs", runs_job, "runs_cron", "30 5 * * *"),
]
