"""The run-status sensor: when Coalesce runs finish, load their runs, results and status.

Configuration (`.dlt/config.toml` or COALESCE_DAGSTER__SENSOR__<KEY>):

    [coalesce_dagster.sensor]
    minimum_interval_seconds = 30     # how often the daemon ticks
    lookback_hours = 6                # on a first start, only runs started this recently
    time_budget_seconds = 40          # per tick, below Dagster's 60 s sensor timeout
    max_runs_per_request = 50         # finished runs loaded together by one Dagster run
    default_status = "stopped"        # or "running"

They are resolved, and checked, as `configuration.SensorSettings`.

Guarantees: a finished run is requested once (the cursor forgets it, and each request has a stable
`run_key`); a lost or unreadable cursor restarts from the look-back and skips runs this sensor
already requested; when Coalesce is unreachable the tick is skipped and the cursor kept; the rows
themselves are merged on their keys, so even a repeated load never duplicates them.
"""

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from ..coalesce.client import CoalesceClient
from ..coalesce.errors import explain
from ..coalesce.run_tracker import UNKNOWN_STATUS, TrackerCursor, track_runs
from ..coalesce.types import CoalesceRun
from ..configuration import ConfigurationError, SensorSettings, Status, read_section
from .assets import LOAD_OP_NAME
from .nodes.events import NodeEvent, NodeIndex, count_kinds, node_events
from .nodes.runs import started_by_dagster
from .resources import CoalesceConfigurationError, CoalesceResource
from .schedules import runs_job

logger = logging.getLogger(__name__)

SENSOR_NAME = "coalesce_run_status_sensor"
RUN_IDS_TAG = "coalesce/run_ids"
# Dagster tag values are limited in length: the tag names at most this many ids, for people to
# read. What a run loads, and what the sensor checks after a reset, is its run config.
_TAG_ID_LIMIT = 100


def sensor_settings() -> SensorSettings:
    """The sensor's settings, read when a tick starts; raises `ConfigurationError` naming every bad key."""
    return read_section(SensorSettings)


def run_request_for(runs: Sequence[CoalesceRun]) -> dg.RunRequest:
    """One Dagster run loading exactly these Coalesce runs; the same runs give the same run_key."""
    run_ids = sorted(run.id for run in runs)
    digest = hashlib.sha256(",".join(map(str, run_ids)).encode()).hexdigest()[:12]
    return dg.RunRequest(
        run_key=f"coalesce-runs-{run_ids[0]}-{run_ids[-1]}-{digest}",
        run_config={"ops": {LOAD_OP_NAME: {"config": {"run_ids": run_ids}}}},
        tags={
            RUN_IDS_TAG: ",".join(map(str, run_ids[:_TAG_ID_LIMIT])),
            "coalesce/run_count": str(len(run_ids)),
            "coalesce/run_statuses": ",".join(sorted({str(run.status) for run in runs})),
        },
    )


def _already_requested(context: dg.SensorEvaluationContext, lookback: timedelta) -> set[int]:
    """Coalesce run ids this sensor asked Dagster to load since the look-back began, read from each
    run's config, which holds every id whatever the batch size. Every such request: a run found again
    after a reset started within the look-back, so it was requested after that (an hour's margin for
    clocks), however many loads the sensor launched meanwhile."""
    since = datetime.now(UTC) - lookback - timedelta(hours=1)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR_NAME}, created_after=since)
    )
    requested: set[int] = set()
    for record in records:
        run_config: dict[str, Any] = dict(record.dagster_run.run_config or {})
        config = run_config.get("ops", {}).get(LOAD_OP_NAME, {}).get("config", {})
        requested.update(int(run_id) for run_id in config.get("run_ids") or ())
    return requested


def _batches(runs: list[CoalesceRun], size: int) -> Iterable[list[CoalesceRun]]:
    for start in range(0, len(runs), size):
        yield runs[start : start + size]


def evaluate_run_status_tick(
    context: dg.SensorEvaluationContext, coalesce: CoalesceResource
) -> dg.SensorResult:
    """One tick: the Coalesce runs that finished since the last, as run requests (module docstring)."""
    started = time.monotonic()
    cursor, readable = TrackerCursor.deserialize(context.cursor)
    try:
        options = sensor_settings()
        client = coalesce.client()
        tick = track_runs(
            client,
            cursor,
            lookback=timedelta(hours=options.lookback_hours),
            time_budget_seconds=options.time_budget_seconds,
        )
        deadline = started + options.time_budget_seconds
    except (CoalesceConfigurationError, ConfigurationError) as error:
        message = error.description if isinstance(error, dg.Failure) else str(error)
        return dg.SensorResult(skip_reason=dg.SkipReason(f"Not configured: {message}"), cursor=context.cursor)
    except Exception as error:  # Coalesce down or refusing: skip, keep the cursor, try next tick
        explanation = explain(error)
        if explanation is None:
            raise
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"Coalesce unavailable; cursor kept, retrying next tick. {explanation}"
            ),
            cursor=context.cursor,
        )

    finished = tick.finished
    if not readable or cursor.highest_run_id is None:
        # After a reset we may rediscover runs requested before it: do not request them twice.
        done = _already_requested(context, timedelta(hours=options.lookback_hours))
        finished = [run for run in finished if run.id not in done]
    next_cursor = tick.cursor
    index = NodeIndex.of(context.repository_def)
    try:
        events, finished, deferred = _node_events(context, client, finished, index, deadline)
    except Exception as error:  # as above: the cursor is kept, so these runs come back next tick
        explanation = explain(error)
        if explanation is None:
            raise
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"Coalesce unavailable while reading run results; cursor kept, retrying next tick. {explanation}"
            ),
            cursor=context.cursor,
        )
    for run in deferred:  # out of time: finished again, and reported, next tick
        next_cursor.in_flight[run.id] = run.status or UNKNOWN_STATUS
    requests = [run_request_for(batch) for batch in _batches(finished, options.max_runs_per_request)]
    context.log.info(
        f"Discovered {tick.discovered} new run(s), polled {tick.polled}, {tick.in_flight} still in flight, "
        f"{len(finished)} finished"
        + (" (time budget spent; resuming next tick)" if tick.budget_exhausted or deferred else "")
    )
    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"No Coalesce run finished; {len(next_cursor.in_flight)} in flight."),
            cursor=next_cursor.serialize(),
        )
    return dg.SensorResult(run_requests=requests, asset_events=events, cursor=next_cursor.serialize())


def _node_events(
    context: dg.SensorEvaluationContext,
    client: CoalesceClient,
    finished: list[CoalesceRun],
    index: NodeIndex,
    deadline: float,
) -> tuple[list[NodeEvent], list[CoalesceRun], list[CoalesceRun]]:
    """The node assets' events of the finished runs (`nodes/events.py`), the runs reported now and
    the runs left for the next tick because the time budget ran out."""
    if not index.keys:
        return [], finished, []
    events: list[NodeEvent] = []
    for position, run in enumerate(finished):
        if time.monotonic() >= deadline:
            return events, finished[:position], finished[position:]
        if started_by_dagster(context.instance, run.id):
            continue  # the Dagster run that started it reported its nodes as they finished
        report = client.run_report(run, index.environments)
        if report is None:
            continue
        run_events, unknown = node_events(report, index)
        events.extend(run_events)
        materialized, failed = count_kinds(run_events)
        context.log.info(
            f"Coalesce run {run.id}: {materialized} node(s) built, {failed} failed"
            + (f"; {unknown} node(s) without an asset (refresh the node snapshot)" if unknown else "")
        )
    return events, finished, []


def build_run_status_sensor(
    *,
    minimum_interval_seconds: int = 30,
    default_status: Status = "stopped",
) -> dg.SensorDefinition:
    """The run-status sensor, as Dagster schedules it (the per-tick settings are read at each tick)."""

    @dg.sensor(
        name=SENSOR_NAME,
        job=runs_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus[default_status.upper()],
        description="Polls Coalesce for finished runs and loads their runs, run_results and run_status rows.",
    )
    def coalesce_run_status_sensor(
        context: dg.SensorEvaluationContext, coalesce: CoalesceResource
    ) -> dg.SensorResult:
        return evaluate_run_status_tick(context, coalesce)

    return coalesce_run_status_sensor


# With the defaults; the code location builds its own from configuration (`definitions.py`).
coalesce_run_status_sensor = build_run_status_sensor()
