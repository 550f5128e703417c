"""Daily syncs. Cron strings and the timezone come from config, so they change without code:

[coalesce_dagster.schedules]          # or COALESCE_DAGSTER__SCHEDULES__<KEY>
timezone = "UTC"
environments_cron = "0 5 * * *"       # environments, environment, environment_nodes, jobs
organisation_cron = "15 5 * * *"      # projects, users (and any other top-level resource)
runs_cron = "30 5 * * *"              # runs, run_results, run_status: catches what the sensor missed
default_status = "running"            # or "stopped"

They are resolved, and checked, as `configuration.ScheduleSettings`.
"""

from typing import Any

import dagster as dg

from ..configuration import ScheduleSettings
from .selections import ENVIRONMENT_FAMILY, ORGANISATION, RUN_FAMILY

environments_job = dg.define_asset_job(
    "coalesce_environments_job",
    selection=ENVIRONMENT_FAMILY,
    description="Sync Coalesce environments, their detail, their nodes and their jobs.",
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


def build_schedules(options: ScheduleSettings) -> list[dg.ScheduleDefinition]:
    """The three daily syncs, with the given cron strings, time zone and default status."""
    status = dg.DefaultScheduleStatus[options.default_status.upper()]

    def schedule(name: str, job: Any, cron: str) -> dg.ScheduleDefinition:
        return dg.ScheduleDefinition(
            name=name, job=job, cron_schedule=cron, execution_timezone=options.timezone, default_status=status
        )

    return [
        schedule("coalesce_daily_environments", environments_job, options.environments_cron),
        schedule("coalesce_daily_organisation", organisation_job, options.organisation_cron),
        schedule("coalesce_daily_runs", runs_job, options.runs_cron),
    ]
