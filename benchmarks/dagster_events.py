"""What the benchmark reads back from a Dagster home after (or while) Dagster ran the load: the
steps' own times, the sensor's cursor and the loads the sensor launched, from Dagster's run and
event-log storage (SQLite under the home: safe to read while the daemon writes).

Dagster is imported here, in the benchmark's own process, only when a Dagster scenario runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOAD_STEP = "coalesce_load"  # = coalesce_dagster.defs.assets.LOAD_OP_NAME
SENSOR_NAME = "coalesce_run_status_sensor"  # = coalesce_dagster.defs.sensors.SENSOR_NAME
RUN_RESULTS_KEY = ("coalesce", "run_results")


@contextmanager
def open_instance(home: Path) -> Iterator[Any]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def latest_run_steps(home: Path) -> dict[str, Any]:
    """The newest run of the home: its id, status and each step's seconds, STEP_START to
    STEP_SUCCESS (a step that did not succeed has no figure)."""
    from dagster import DagsterEventType

    with open_instance(home) as instance:
        (run,) = instance.get_runs(limit=1)
        events = instance.all_logs(
            run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}
        )
    started: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for event in events:
        if event.dagster_event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = event.timestamp
        elif event.step_key in started:
            seconds[event.step_key] = round(event.timestamp - started[event.step_key], 3)
    return {"run_id": run.run_id, "status": run.status.value, "step_seconds": seconds}


def sensor_cursor(home: Path) -> str | None:
    """The run-status sensor's stored cursor: None until its first tick has completed."""
    from dagster._core.scheduler.instigation import InstigatorType

    with open_instance(home) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == SENSOR_NAME:
                return getattr(state.instigator_data, "cursor", None)
    return None


@dataclass(frozen=True)
class SensorLoad:
    """One Dagster run the sensor launched: the Coalesce runs it loaded and when each stage happened
    (Unix seconds; None: not reached yet)."""

    dagster_run_id: str
    coalesce_run_ids: tuple[int, ...]
    status: str
    requested: float  # the run's creation: the tick that asked for it
    started: float | None  # the queue launched it and its process started
    materialized: float | None  # coalesce/run_results materialized: the rows are committed
    ended: float | None  # the run's process finished: the DuckDB file is free for other readers


def sensor_loads(home: Path) -> list[SensorLoad]:
    """Every run the sensor launched, with its Coalesce run ids (from the run config, which holds
    all of them) and the time `coalesce/run_results` was materialized in it."""
    import dagster as dg

    loads = []
    with open_instance(home) as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/sensor_name": SENSOR_NAME}))
        for record in records:
            run = record.dagster_run
            config = dict(run.run_config or {}).get("ops", {}).get(LOAD_STEP, {}).get("config", {})
            materialized = [
                event.timestamp
                for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                if event.dagster_event.asset_key == dg.AssetKey(list(RUN_RESULTS_KEY))
            ]
            loads.append(
                SensorLoad(
                    dagster_run_id=run.run_id,
                    coalesce_run_ids=tuple(int(run_id) for run_id in config.get("run_ids") or ()),
                    status=run.status.value,
                    requested=record.create_timestamp.timestamp(),
                    started=record.start_time,
                    materialized=min(materialized) if materialized else None,
                    ended=record.end_time,
                )
            )
    return loads


def job_run_counts(home: Path) -> dict[str, int]:
    """How many runs of each job the home holds (the sensor's loads, the health views, ...)."""
    with open_instance(home) as instance:
        counts: dict[str, int] = {}
        for run in instance.get_runs():
            counts[run.job_name] = counts.get(run.job_name, 0) + 1
    return counts


def failed_run_counts(home: Path) -> dict[str, int]:
    """How many runs of each job ended failed or canceled (a health-views run that found the DuckDB
    file held by a load, say): none is expected."""
    from dagster import DagsterRunStatus

    with open_instance(home) as instance:
        counts: dict[str, int] = {}
        for run in instance.get_runs():
            if run.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
                counts[run.job_name] = counts.get(run.job_name, 0) + 1
    return counts
