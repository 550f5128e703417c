"""Coalesce's freshness changes with time, not only with loads: a run that never came is news. So the
two Coalesce checks also run alone, hourly, in a checks-only run of the load op (no request to
Coalesce, no load), besides running with every load of `coalesce/runs`."""

import dagster as dg

from .coalesce_freshness import coalesce_check_keys

FRESHNESS_JOB_NAME = "coalesce_freshness_checks_job"
FRESHNESS_SCHEDULE_NAME = "coalesce_hourly_freshness_checks"

freshness_checks_job = dg.define_asset_job(
    FRESHNESS_JOB_NAME,
    selection=dg.AssetSelection.checks(*coalesce_check_keys()),
    description="Evaluate the Coalesce freshness and failures-in-a-row checks on the loaded runs, without loading.",
)


def build_freshness_schedule(default_status: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=FRESHNESS_SCHEDULE_NAME,
        job=freshness_checks_job,
        cron_schedule="0 * * * *",
        default_status=dg.DefaultScheduleStatus[default_status.upper()],
    )
