"""Fault injection: what Coalesce-like APIs do to a load, and what the destination looks like after.

Transient faults (429 with Retry-After, 503, a hang past the timeout, a reset connection) are retried
and the load completes exactly. Permanent ones (401/403/404, a garbage or truncated body, a body of the
wrong shape, an outage that outlasts the retries) stop the load with one clear message, leave the
destination exactly as it was, and the next healthy run completes the data.
"""

from __future__ import annotations

import time

import pytest

from coalesce_dagster.coalesce.errors import explain
from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import make_pipeline, run_load
from coalesce_dagster.simulator import SimulatorConfig
from coalesce_dagster_tests.conftest import on_every_destination
from coalesce_dagster_tests.expectations import KEY_COLUMNS, assert_matches_simulator

# One path prefix per resource family (a prefix also covers the paths below it).
TARGETS = {
    "environments": "/api/v1/environments",  # list, detail and nodes
    "environment_nodes": "/api/v1/environments/1/nodes",
    "runs": "/api/v1/runs",  # list, runs by id and results
    "run_results": "/api/v1/runs/5/results",
    "run_status": "/scheduler/runStatus",
    "users": "/api/v1/users",
}

TRANSIENT = {
    "429_burst_with_retry_after": {"rate_limit_burst": 1, "retry_after_seconds": 1},
    "503_burst": {"server_error_burst": 2},
    "hang_longer_than_timeout": {"hang_burst": 1, "hang_seconds": 2.5},
    "connection_reset": {"reset_burst": 2},
}
BURST_OF = {
    "429_burst_with_retry_after": "rate_limit_burst",
    "503_burst": "server_error_burst",
    "hang_longer_than_timeout": "hang_burst",
    "connection_reset": "reset_burst",
}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=3, nodes_per_environment=9, runs=12, results_per_run=3, users=6)


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")


def load(sim, page_size: int = 4):
    pipeline = make_pipeline()
    source = coalesce_source(base_url=sim.base_url, access_token=sim.config.token, page_size=page_size)
    run_load(pipeline, source)


def failed_load(sim) -> Exception:
    with pytest.raises(Exception) as failure:
        load(sim)
    return failure.value


def contents(warehouse) -> dict[str, list[tuple]]:
    """Every row of every table (without dlt's per-load ids), to compare before and after."""
    snapshot = {}
    for table in sorted(warehouse.tables()):
        if table.startswith("_dlt"):
            continue
        columns = [c for (c,) in warehouse.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'coalesce_data' "
            "AND table_name = ? AND column_name NOT IN ('_dlt_load_id', '_dlt_id', '_dlt_parent_id') "
            "ORDER BY column_name", table)]
        snapshot[table] = sorted(map(repr, warehouse.rows(
            f"SELECT {', '.join(columns)} FROM coalesce_data.{table}")))
    return snapshot


def change_coalesce(sim) -> None:
    """Something new to load, so a failed sync visibly loses nothing and a good one adds it."""
    state = sim.state
    state.add_runs(3)
    env_id = next(iter(state.nodes))
    state.delete_node(env_id, next(iter(state.nodes[env_id])))


@pytest.mark.parametrize("target", list(TARGETS.values()), ids=list(TARGETS))
@pytest.mark.parametrize("fault", list(TRANSIENT), ids=list(TRANSIENT))
def test_transient_faults_are_retried_and_the_load_is_exact(simulator, warehouse, fault, target):
    simulator.faults.update({**TRANSIENT[fault], "fault_path_prefix": target})
    load(simulator)
    assert getattr(simulator.faults, BURST_OF[fault]) == 0, "the fault never fired"
    assert_matches_simulator(warehouse, simulator)


def test_retry_after_is_honoured(simulator, warehouse):
    simulator.faults.update({"rate_limit_burst": 2, "retry_after_seconds": 1, "fault_path_prefix": "/api/v1/users"})
    started = time.monotonic()
    load(simulator)
    # Backoff alone would wait 0.05 s + 0.1 s here; Retry-After asks for 1 s each time.
    assert time.monotonic() - started >= 2.0
    assert_matches_simulator(warehouse, simulator, tables=("users",))


PERMANENT = {
    "401_token_rejected": ({"status_override": {"/api/v1/environments": 401}}, "rejected the access token"),
    "403_forbidden": ({"status_override": {"/api/v1/runs": 403}}, "may not read"),
    "404_wrong_region": ({"status_override": {"/api/v1/environments": 404}}, "app.eu.coalescesoftware.io"),
    "garbage_body": ({"garbage_burst": 1, "fault_path_prefix": "/api/v1/environments/1/nodes"}, "not valid JSON"),
    "truncated_body": ({"truncated_burst": 1, "fault_path_prefix": "/api/v1/runs"}, "not valid JSON"),
    "outage_mid_load": ({"fail_after_requests": 12}, "is failing (503)"),
}


@pytest.mark.parametrize("fault", list(PERMANENT), ids=list(PERMANENT))
def test_permanent_faults_stop_cleanly_and_the_next_run_completes(simulator, warehouse, fault):
    load(simulator)
    before = contents(warehouse)
    change_coalesce(simulator)
    settings, message = PERMANENT[fault]
    simulator.faults.update(settings)

    error = failed_load(simulator)

    explanation = explain(error)
    assert explanation and message in explanation
    assert contents(warehouse) == before, "a failed load changed the destination"

    simulator.faults.reset()
    load(simulator)
    assert_matches_simulator(warehouse, simulator)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_are_not_retried(simulator, warehouse, status):
    simulator.faults.status_override = {"/api/v1/projects": status}
    failed_load(simulator)
    assert simulator.request_count("/api/v1/projects") == 1


def test_a_wrong_token_quotes_coalesce_and_says_where_to_get_one(simulator, warehouse):
    pipeline = make_pipeline()
    with pytest.raises(Exception) as failure:
        run_load(pipeline, coalesce_source(base_url=simulator.base_url, access_token="not-the-token"))
    explanation = explain(failure.value)
    assert 'Coalesce said: "401: Unable to authenticate, please ensure your token is valid."' in explanation
    assert "Generate Access Token" in explanation


def test_unreachable_host_names_the_regions(warehouse, monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    pipeline = make_pipeline()
    with pytest.raises(Exception) as failure:
        run_load(pipeline, coalesce_source(base_url="http://127.0.0.1:9", access_token="t"))
    explanation = explain(failure.value)
    assert "Could not connect to Coalesce" in explanation and "app.eu.coalescesoftware.io" in explanation


@pytest.mark.parametrize(
    "body_path, shape",
    [("/api/v1/users", {"items": []}), ("/api/v1/environments", {"data": {"id": "1"}})],
    ids=["list_without_data", "data_not_a_list"],
)
def test_a_body_of_the_wrong_shape_never_replaces_good_data(simulator, warehouse, body_path, shape):
    load(simulator)
    before = contents(warehouse)
    simulator.faults.update({"body_override": {body_path: shape}})
    explanation = explain(failed_load(simulator))
    assert "not what its API documents" in explanation
    assert contents(warehouse) == before


def test_user_agent_names_the_project(simulator, warehouse):
    from coalesce_dagster import __version__

    load(simulator)
    agents = {record.user_agent for record in simulator.requests}
    assert agents == {f"coalesce-dagster/{__version__}"}


@on_every_destination
def test_every_key_column_is_loaded_not_null(simulator, warehouse):
    load(simulator)
    for table, columns in KEY_COLUMNS.items():
        for column in columns:
            assert warehouse.count(table, f"WHERE {column} IS NULL") == 0, (table, column)
