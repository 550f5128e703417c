"""The run-status sensor, ticked against the simulator with real Dagster contexts."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import dagster as dg
import pytest

from coalesce_dagster.coalesce.client import CoalesceClient
from coalesce_dagster.coalesce.run_tracker import UNKNOWN_STATUS, TrackerCursor, track_runs
from coalesce_dagster.coalesce.types import CoalesceRun
from coalesce_dagster.definitions import defs
from coalesce_dagster.defs.assets import LOAD_OP_NAME
from coalesce_dagster.defs.resources import CoalesceResource
from coalesce_dagster.defs.sensors import (
    SENSOR_NAME,
    coalesce_run_status_sensor,
    run_request_for,
)
from coalesce_dagster_tests.helpers import materialize, refused_port
from coalesce_simulator import SimulatorConfig

SENSOR_JOB = defs.resolve_job_def(coalesce_run_status_sensor.job_name)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # More history than the sensor's pages of 100 runs, so "one page" means something.
    return SimulatorConfig(environments=3, nodes_per_environment=10, runs=230, results_per_run=4)


@pytest.fixture
def live(simulator):
    """Runs started from here on carry real timestamps, as a live Coalesce's would."""
    simulator.state.use_real_clock()
    return simulator


def tick(instance, cursor=None, resources=None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=resources or {"coalesce": CoalesceResource()}
    ) as context:
        return coalesce_run_status_sensor(context)


def requested_run_ids(result) -> list[list[int]]:
    """The Coalesce run ids of each RunRequest, after checking its run config against the job."""
    for request in result.run_requests or []:
        assert dg.validate_run_config(SENSOR_JOB, request.run_config)
    return [r.run_config["ops"][LOAD_OP_NAME]["config"]["run_ids"] for r in result.run_requests or []]


def finish(state, run_id, status="completed"):
    state.set_run_status(run_id, "running")
    state.set_run_status(run_id, status)


def test_first_start_does_not_replay_history(live, instance):
    result = tick(instance)
    assert not result.run_requests
    assert "No Coalesce run finished" in result.skip_reason.skip_message
    cursor = json.loads(result.cursor)
    assert cursor["version"] == 2 and cursor["highest_run_id"] == max(live.state.runs)
    # The newest page of 100 only: the rest of the 230 runs' history is not walked.
    assert live.request_count("/api/v1/runs") == 1
    assert [r.query["limit"] for r in live.requests if r.path == "/api/v1/runs"] == ["100"]


def test_first_start_loads_runs_that_finished_within_the_lookback(live, instance):
    recent = live.state.start_run("1")
    finish(live.state, recent)
    result = tick(instance)
    assert requested_run_ids(result) == [[recent]]


def test_a_run_is_followed_until_it_finishes_then_requested_once(live, instance):
    cursor = tick(instance).cursor
    run_id = live.state.start_run("2")

    waiting = tick(instance, cursor)
    assert not waiting.run_requests
    assert json.loads(waiting.cursor)["in_flight"] == {str(run_id): "waitingToRun"}

    live.state.set_run_status(run_id, "running")
    running = tick(instance, waiting.cursor)
    assert not running.run_requests

    live.state.set_run_status(run_id, "failed", failure_reason="boom")
    done = tick(instance, running.cursor)
    assert requested_run_ids(done) == [[run_id]]
    (request,) = done.run_requests
    assert request.tags["coalesce/run_ids"] == str(run_id)
    assert request.tags["coalesce/run_statuses"] == "failed"
    assert dg.validate_run_config(SENSOR_JOB, request.run_config)
    assert json.loads(done.cursor)["in_flight"] == {}

    again = tick(instance, done.cursor)
    assert not again.run_requests


@pytest.mark.parametrize("early", ["initializing", "rendering"])
def test_a_run_the_scheduler_calls_initializing_or_rendering_is_followed_until_it_finishes(
    live, instance, early
):
    # Only /scheduler/runStatus says these two (doc §5): still in progress, never a finished run.
    live.faults.scheduler_early_status = early
    cursor = tick(instance).cursor
    run_id = live.state.start_run("1")
    seen = tick(instance, cursor)  # found on the runs list, waiting to run
    polled = tick(instance, seen.cursor)  # asked of the scheduler
    assert not seen.run_requests and not polled.run_requests
    assert live.request_count("/scheduler/runStatus") >= 1
    assert json.loads(polled.cursor)["in_flight"] == {str(run_id): early}

    finish(live.state, run_id)
    done = tick(instance, polled.cursor)
    assert requested_run_ids(done) == [[run_id]]
    assert json.loads(done.cursor)["in_flight"] == {}


def test_a_run_whose_status_comes_without_run_status_is_still_followed(live, instance):
    # `runStatus` is optional in the scheduler's answer (doc §3.5): not knowing is not finishing.
    live.faults.run_status_without_status = True
    cursor = tick(instance).cursor
    run_id = live.state.start_run("3")
    seen = tick(instance, cursor)
    polled = tick(instance, seen.cursor)
    assert not polled.run_requests
    assert json.loads(polled.cursor)["in_flight"] == {str(run_id): UNKNOWN_STATUS}

    live.faults.run_status_without_status = False
    finish(live.state, run_id)
    assert requested_run_ids(tick(instance, polled.cursor)) == [[run_id]]


def test_runs_that_start_and_finish_between_ticks_in_every_environment(live, instance):
    cursor = tick(instance).cursor
    started = [live.state.start_run(env_id) for env_id in sorted(live.state.environments)]
    for run_id in started:
        finish(live.state, run_id, "canceled" if run_id == started[0] else "completed")
    result = tick(instance, cursor)
    assert requested_run_ids(result) == [sorted(started)]


def test_a_repeated_evaluation_requests_each_batch_under_the_same_run_key(live, instance, monkeypatch):
    """Dagster launches one run per run_key of a sensor, so a tick evaluated twice from the same
    cursor (a daemon restart, a cursor set back) must give each batch the key it had; different
    batches must never share one."""
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST", "2")
    cursor = tick(instance).cursor
    finished = [live.state.start_run(env_id) for env_id in ("1", "2", "3", "1", "2")]
    for run_id in finished:
        finish(live.state, run_id)

    first, again = tick(instance, cursor), tick(instance, cursor)

    assert requested_run_ids(first) == [finished[0:2], finished[2:4], finished[4:5]]
    keys = [request.run_key for request in first.run_requests]
    assert all(keys) and len(set(keys)) == len(keys)
    assert [request.run_key for request in again.run_requests] == keys
    # The key names the runs it loads: the same runs in another order give the same key.
    reordered = run_request_for([CoalesceRun(i, "completed") for i in reversed(finished[0:2])])
    assert reordered.run_key == keys[0]


def test_coalesce_down_skips_the_tick_and_keeps_the_cursor(live, instance):
    cursor = tick(instance).cursor
    run_id = live.state.start_run("1")
    finish(live.state, run_id)
    live.faults.status_override = {"/api/v1/runs": 503}
    down = tick(instance, cursor)
    assert not down.run_requests
    assert "Coalesce unavailable" in down.skip_reason.skip_message and "503" in down.skip_reason.skip_message
    assert down.cursor == cursor

    live.faults.status_override = None
    assert requested_run_ids(tick(instance, down.cursor)) == [[run_id]]


def test_a_rejected_token_skips_with_the_fix(live, instance):
    cursor = tick(instance).cursor
    revoked = "revoked-token-4f1c9e27"
    result = tick(instance, cursor, resources={"coalesce": CoalesceResource(access_token=revoked)})
    assert not result.run_requests
    assert (
        "401" in result.skip_reason.skip_message
        and "Generate Access Token" in result.skip_reason.skip_message
    )
    assert revoked not in result.skip_reason.skip_message
    assert result.cursor == cursor


def test_coalesce_unreachable_skips_the_tick_and_keeps_the_cursor(live, instance, monkeypatch):
    cursor = tick(instance).cursor
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    with refused_port() as port:
        result = tick(
            instance, cursor, resources={"coalesce": CoalesceResource(base_url=f"http://127.0.0.1:{port}")}
        )
    assert not result.run_requests
    assert "Could not connect to Coalesce" in result.skip_reason.skip_message
    assert result.cursor == cursor


def test_many_runs_cost_calls_per_new_or_in_flight_run_not_per_history(live, instance):
    live.state.add_runs(400)
    cursor = tick(instance).cursor
    in_flight = [live.state.start_run(str(1 + i % 3)) for i in range(12)]
    cursor = tick(instance, cursor).cursor  # discovers the 12
    for run_id in in_flight[:5]:
        finish(live.state, run_id)
    live.reset_request_log()

    result = tick(instance, cursor)

    assert requested_run_ids(result) == [in_flight[:5]]
    assert live.request_count("/api/v1/runs") == 1
    assert live.request_count("/scheduler/runStatus") == len(in_flight)


def test_time_budget_leaves_the_rest_for_the_next_tick(live, instance):
    """Polling stops once the tick's budget is spent and the runs not asked about wait in the cursor.
    The tracker reads the clock it is given: here the first status answer costs the whole budget."""
    client = CoalesceClient(live.base_url, live.config.token)
    lookback = timedelta(hours=6)
    cursor = TrackerCursor.deserialize(tick(instance).cursor)[0]
    runs = [live.state.start_run(env_id) for env_id in ("1", "2", "3")]
    cursor = track_runs(client, cursor, lookback=lookback, time_budget_seconds=40).cursor
    for run_id in runs:
        finish(live.state, run_id)
    now = [0.0]
    live.after_answering("/scheduler/runStatus", lambda: now.__setitem__(0, 41.0))

    spent = track_runs(client, cursor, lookback=lookback, time_budget_seconds=40, clock=lambda: now[0])

    assert spent.budget_exhausted and spent.polled == 1
    assert [run.id for run in spent.finished] == runs[:1]  # oldest first
    assert spent.cursor.in_flight == {run_id: "waitingToRun" for run_id in runs[1:]}
    assert requested_run_ids(tick(instance, spent.cursor.serialize())) == [runs[1:]]


def test_a_time_budget_below_one_second_skips_the_tick_naming_the_key(live, instance, monkeypatch):
    cursor = tick(instance).cursor
    finish(live.state, live.state.start_run("1"))
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__TIME_BUDGET_SECONDS", "0")
    refused = tick(instance, cursor)
    assert not refused.run_requests and refused.cursor == cursor
    assert "[coalesce_dagster.sensor] time_budget_seconds = '0'" in refused.skip_reason.skip_message


@pytest.mark.parametrize("lost_cursor", [None, "not json {", json.dumps({"version": 99})])
def test_a_lost_cursor_does_not_load_a_run_twice(live, instance, warehouse, lost_cursor, caplog):
    run_id = live.state.start_run("3")
    finish(live.state, run_id)
    first = tick(instance)
    (request,) = first.run_requests
    # Launch it the way the daemon would: same selection, config and tags.
    launched = materialize(
        instance,
        selection=["runs", "run_results", "run_status"],
        run_config=request.run_config,
        tags={**request.tags, "dagster/sensor_name": SENSOR_NAME},
    )
    assert launched.success

    with caplog.at_level(logging.WARNING):
        after_reset = tick(instance, lost_cursor)
    assert not after_reset.run_requests
    if lost_cursor:
        assert "Unreadable Coalesce run-status cursor" in caplog.text
    assert warehouse.count("runs", f"WHERE id = {run_id}") == 1


def test_tick_to_rows_in_duckdb(live, instance, warehouse):
    cursor = tick(instance).cursor
    run_id = live.state.start_run("2")
    finish(live.state, run_id)
    (request,) = tick(instance, cursor).run_requests

    result = materialize(
        instance,
        selection=["runs", "run_results", "run_status"],
        run_config=request.run_config,
        tags=request.tags,
    )
    assert result.success

    assert warehouse.scalar("SELECT run_status FROM coalesce_data.runs WHERE id = ?", run_id) == "completed"
    assert warehouse.count("run_results", f"WHERE run_id = {run_id}") == len(live.state.results[run_id]) > 0
    assert warehouse.count("run_status", f"WHERE run_id = {run_id}") == 1
    event = instance.get_latest_materialization_event(dg.AssetKey(["coalesce", "run_results"]))
    metadata = event.asset_materialization.metadata
    assert metadata["coalesce/run_ids"].value == [run_id]
    assert metadata["coalesce/run_statuses"].value == {"completed": 1}
    assert metadata["coalesce/run_link"].value == live.state.run_link(run_id)
    assert f"[{run_id}]({live.state.run_link(run_id)})" in metadata["coalesce/runs"].value
