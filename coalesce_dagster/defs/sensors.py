"""The run-status sensor: when Coalesce runs finish, load their runs, results and status.

Configuration (`.dlt/config.toml` or COALESCE_DAGSTER__SENSOR__<KEY>):

    [coalesce_dagster.sensor]
    minimum_interval_seconds = 60     # how often the daemon ticks
    lookback_hours = 6                # on a first start, only runs started this recently
    time_budget_seconds = 40          # per tick, below Dagster's 60 s sensor timeout
    max_runs_per_request = 50         # finished runs loaded together by one Dagster run
    default_status = "stopped"        # or "running"

Guarantees: a finished run is requested once (the cursor forgets it, and each request has a stable
`run_key`); a lost or unreadable cursor restarts from the look-back and skips runs this sensor
already requested; when Coalesce is unreachable the tick is skipped and the cursor kept; the rows
themselves are merged on their keys, so even a repeated load never duplicates them.
"""

import hashlib
from datetime import timedelta
from typing import Iterable, Sequence

import dagster as dg

from .. import settings
from ..coalesce.client import RunSummary
from ..coalesce.errors import explain
from ..coalesce.run_tracker import TrackerCursor, track_runs
from .assets import LOAD_OP_NAME
from .resources import CoalesceConfigurationError, CoalesceResource
from .schedules import runs_job

SENSOR_NAME = "coalesce_run_status_sensor"
RUN_IDS_TAG = "coalesce/run_ids"
# Dagster tag values are limited in length; a request holds at most this many ids in its tag.
_TAG_ID_LIMIT = 100


def _int_setting(key: str, default: int) -> int:
    return int(float(settings.setting(f"sensor.{key}", str(default))))


def run_request_for(runs: Sequence[RunSummary]) -> dg.RunRequest:
    """One Dagster run loading exactly these Coalesce runs; the same runs give the same run_key."""
    run_ids = sorted(run.id for run in runs)
    digest = hashlib.sha256(",".join(map(str, run_ids)).encode()).hexdigest()[:12]
    return dg.RunRequest(
        run_key=f"coalesce-runs-{run_ids[0]}-{run_ids[-1]}-{digest}",
        run_config={"ops": {LOAD_OP_NAME: {"config": {"run_ids": run_ids}}}},
        tags={
            RUN_IDS_TAG: ",".join(map(str, run_ids[:_TAG_ID_LIMIT])),
            "coalesce/run_count": str(len(run_ids)),
            "coalesce/run_statuses": ",".join(sorted({run.status for run in runs})),
        },
    )


def _already_requested(context: dg.SensorEvaluationContext) -> set[int]:
    """Coalesce run ids this sensor asked Dagster to load (recent runs only)."""
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR_NAME}), limit=500
    )
    requested: set[int] = set()
    for record in records:
        for part in record.dagster_run.tags.get(RUN_IDS_TAG, "").split(","):
            if part.strip().isdigit():
                requested.add(int(part))
    return requested


def _batches(runs: list[RunSummary], size: int) -> Iterable[list[RunSummary]]:
    for start in range(0, len(runs), max(size, 1)):
        yield runs[start : start + size]


@dg.sensor(
    name=SENSOR_NAME,
    job=runs_job,
    minimum_interval_seconds=_int_setting("minimum_interval_seconds", 60),
    default_status=(
        dg.DefaultSensorStatus.RUNNING
        if settings.setting("sensor.default_status", "stopped").lower() == "running"
        else dg.DefaultSensorStatus.STOPPED
    ),
    description="Polls Coalesce for finished runs and loads their runs, run_results and run_status rows.",
)
def coalesce_run_status_sensor(context: dg.SensorEvaluationContext, coalesce: CoalesceResource) -> dg.SensorResult:
    cursor, readable = TrackerCursor.deserialize(context.cursor)
    try:
        client = coalesce.client()
        tick = track_runs(
            client,
            cursor,
            lookback=timedelta(hours=_int_setting("lookback_hours", 6)),
            time_budget_seconds=_int_setting("time_budget_seconds", 40),
        )
    except CoalesceConfigurationError as error:
        return dg.SensorResult(skip_reason=dg.SkipReason(str(error.description)), cursor=context.cursor)
    except Exception as error:  # Coalesce down or refusing: skip, keep the cursor, try next tick
        explanation = explain(error)
        if explanation is None:
            raise
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"Coalesce unavailable; cursor kept, retrying next tick. {explanation}"),
            cursor=context.cursor,
        )

    finished = tick.finished
    if not readable or cursor.high_water is None:
        # After a reset we may rediscover runs requested before it: do not request them twice.
        done = _already_requested(context)
        finished = [run for run in finished if run.id not in done]
    requests = [run_request_for(batch) for batch in _batches(finished, _int_setting("max_runs_per_request", 50))]
    context.log.info(
        f"Discovered {tick.discovered} new run(s), polled {tick.polled}, {tick.in_flight} still in flight, "
        f"{len(finished)} finished" + (" (time budget spent; resuming next tick)" if tick.budget_exhausted else "")
    )
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"No Coalesce run finished; {tick.in_flight} in flight."),
            cursor=tick.cursor.serialize(),
        )
    return dg.SensorResult(run_requests=requests, cursor=tick.cursor.serialize())


SENSORS = [coalesce_run_status_sensor]
