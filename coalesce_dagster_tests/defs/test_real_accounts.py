"""Real-account behaviour through real Dagster: full, incremental and sensor-launched loads against a
simulator with the page-size cap, UUID run links and `failed` node states; retries only where they
can help; sensor settings that are checked; one token for loads and sensor alike."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from coalesce_dagster.defs.assets import coalesce_assets
from coalesce_dagster.defs.health.load_metadata import readable_events
from coalesce_dagster.defs.resources import CoalesceResource, resource_defs
from coalesce_dagster.defs.sensors import SENSOR_NAME
from coalesce_dagster.pipeline import make_pipeline
from coalesce_dagster_tests.defs.test_failures import failure_description
from coalesce_dagster_tests.defs.test_sensors import finish, requested_run_ids, tick
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_dagster_tests.helpers import materialize
from coalesce_simulator import SimulatorConfig, real_account_quirks

RUN_ASSETS = ["runs", "run_results", "run_status"]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=3, nodes_per_environment=8, runs=20, results_per_run=4)


@pytest.fixture
def real(simulator):
    """The simulator as real accounts behave (section 10 of the API notes), live clock."""
    simulator.faults.update(real_account_quirks())
    simulator.state.use_real_clock()
    return simulator


def stored_links(warehouse) -> dict[int, str]:
    return dict(warehouse.rows("SELECT run_id, run_link FROM coalesce_data.run_status"))


def test_full_incremental_and_sensor_loads_are_exact_against_a_real_account(real, instance, warehouse):
    state = real.state
    assert materialize(instance).success  # full sync
    assert_matches_simulator(warehouse, real)

    new_runs = state.add_runs(3, status="failed")
    assert materialize(instance, selection=RUN_ASSETS).success  # incremental sync
    assert_matches_simulator(warehouse, real)
    failed_states = {
        s
        for (s,) in warehouse.rows(
            f"SELECT DISTINCT run_state FROM coalesce_data.run_results WHERE run_id IN ({', '.join(map(str, new_runs))})"
        )
    }
    assert "failed" in failed_states and "error" not in failed_states

    cursor = tick(instance).cursor
    run_id = state.start_run("2")
    finish(state, run_id, "failed")
    (request,) = tick(instance, cursor).run_requests
    launched = materialize(
        instance,
        selection=RUN_ASSETS,
        run_config=request.run_config,
        tags={**request.tags, "dagster/sensor_name": SENSOR_NAME},
    )
    assert launched.success  # sensor-launched load
    assert_matches_simulator(warehouse, real)

    assert stored_links(warehouse) == {rid: state.run_link(rid) for rid in state.runs}
    metadata = instance.get_latest_materialization_event(
        dg.AssetKey(["coalesce", "run_results"])
    ).asset_materialization.metadata
    assert metadata["coalesce/run_link"].value == state.run_link(run_id)
    assert f"[{run_id}]({state.run_link(run_id)})" in metadata["coalesce/runs"].value
    failed_nodes = sum(1 for r in state.results[run_id] if r["runState"] in ("error", "failed"))
    assert failed_nodes > 0 and metadata["coalesce/failed_nodes"].value == failed_nodes
    # The same event still carries what dagster-dlt gave it.
    assert metadata["dagster/row_count"].value == warehouse.count("run_results")


def test_metadata_is_added_to_dagster_dlts_event_keeping_every_field(simulator, instance, tmp_path):
    """Every field of dagster-dlt's event survives (the result used to be rebuilt field by field)."""
    original = dg.MaterializeResult(
        asset_key=dg.AssetKey(["coalesce", "runs"]),
        metadata={"rows_loaded": 3},
        data_version=dg.DataVersion("v1"),
        tags={"a": "b"},
        value=None,
        check_results=[
            dg.AssetCheckResult(passed=True, check_name="c", asset_key=dg.AssetKey(["coalesce", "runs"]))
        ],
    )
    context = dg.build_asset_context()
    (event,) = readable_events(context, iter([original]), make_pipeline(tmp_path), [7])
    assert event.metadata["rows_loaded"] == 3 and event.metadata["coalesce/run_ids"].value == [7]
    for field in original._fields:
        if field != "metadata":
            assert getattr(event, field) == getattr(original, field), field


# -- retries -----------------------------------------------------------------------------------


def _attempts(instance, simulator, setup) -> tuple[int, str]:
    """Run a load under a RetryPolicy; return how many times the step ran, and its failure."""
    resources = setup(simulator)
    job = dg.define_asset_job("retried_load", op_retry_policy=dg.RetryPolicy(max_retries=1))
    defs = dg.Definitions(
        assets=[coalesce_assets],
        jobs=[job],
        resources={**resource_defs(), **(resources if isinstance(resources, dict) else {})},
    )
    result = defs.resolve_job_def("retried_load").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    retries = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    return 1 + len(retries), failure_description(result)


@pytest.mark.parametrize(
    "setup, attempts",
    [
        (lambda sim: {"coalesce": CoalesceResource(access_token="revoked")}, 1),
        (lambda sim: sim.faults.update({"status_override": {"/api/v1/projects": 403}}), 1),
        (lambda sim: sim.faults.update({"status_override": {"/api/v1/environments": 404}}), 1),
        (lambda sim: sim.faults.update({"status_override": {"/api/v1/projects": 503}}), 2),
    ],
    ids=["401", "403", "404", "503"],
)
def test_only_transient_failures_are_retried(simulator, instance, monkeypatch, setup, attempts):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    ran, description = _attempts(instance, simulator, setup)
    assert ran == attempts, description


# -- sensor settings and the token ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-3", "ten"])
def test_a_bad_batch_size_skips_the_tick_naming_the_key(simulator, instance, monkeypatch, value):
    cursor = tick(instance).cursor
    finish(simulator.state, simulator.state.start_run("1"))
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST", value)
    result = tick(instance, cursor)
    assert not result.run_requests and result.cursor == cursor
    assert f"[coalesce_dagster.sensor] max_runs_per_request = {value!r}" in result.skip_reason.skip_message


@pytest.mark.parametrize("base_url", ["eu-nowhere", "ftp://app.coalescesoftware.io"])
def test_a_bad_base_url_skips_the_tick_with_the_reason(simulator, instance, monkeypatch, base_url):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", base_url)
    result = tick(instance, "keep-me")
    assert not result.run_requests and result.cursor == "keep-me"
    assert "base_url" in result.skip_reason.skip_message and "us-east-1" in result.skip_reason.skip_message
    assert simulator.request_count() == 0


def test_after_a_reset_no_run_is_requested_twice_whatever_the_batch_size(simulator, instance, monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST", "500")
    state = simulator.state
    state.use_real_clock()
    finished = state.add_runs(130)  # more than the 100 ids a tag can name
    first = tick(instance)
    (request,) = first.run_requests
    assert requested_run_ids(first) == [finished]
    # Record it as the daemon would, without loading: the sensor reads its own past requests.
    _record_sensor_run(instance, request)

    after_reset = tick(instance, None)
    assert not after_reset.run_requests


def _record_sensor_run(instance, request: dg.RunRequest) -> None:
    from coalesce_dagster.definitions import defs

    job = defs.resolve_job_def("coalesce_runs_job")
    instance.create_run_for_job(
        job_def=job, run_config=request.run_config, tags={**request.tags, "dagster/sensor_name": SENSOR_NAME}
    )


def test_load_and_sensor_take_the_token_from_the_same_place(simulator, instance, monkeypatch):
    """A token left for another tool is used by neither; the documented variable by both."""
    monkeypatch.delenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN")
    monkeypatch.setenv("ACCESS_TOKEN", simulator.config.token)
    monkeypatch.setenv("SOURCES__ACCESS_TOKEN", simulator.config.token)

    load = materialize(instance, selection=["projects"], raise_on_error=False)
    sensor = tick(instance)
    assert "No Coalesce access token is configured" in failure_description(load)
    assert "No Coalesce access token is configured" in sensor.skip_reason.skip_message
    assert simulator.request_count() == 0

    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN", simulator.config.token)
    assert materialize(instance, selection=["projects"]).success
    assert json.loads(tick(instance).cursor)["highest_run_id"] == max(simulator.state.runs)


def test_a_dagster_env_var_token_serves_loads_and_sensor(simulator, instance, monkeypatch):
    monkeypatch.delenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN")
    monkeypatch.setenv("MY_COALESCE_TOKEN", simulator.config.token)
    resource = CoalesceResource(access_token=dg.EnvVar("MY_COALESCE_TOKEN"))
    assert materialize(instance, selection=["projects"], resources={"coalesce": resource}).success
    result = tick(instance, resources={"coalesce": resource})
    assert "No Coalesce run finished" in result.skip_reason.skip_message
