"""End to end: simulator over real HTTP -> dlt -> DuckDB (and Postgres), through real Dagster materializations."""

from __future__ import annotations

import gc
import math

import dagster as dg
import dlt
import pytest

from coalesce_dagster_tests.expectations import KEY_COLUMNS, TERMINAL, assert_matches_simulator
from coalesce_dagster_tests.helpers import materialize, on_every_destination
from coalesce_simulator import SimulatorConfig

ALL_TABLES = tuple(KEY_COLUMNS)


def _row_counts(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    counts = {}
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        counts[mat.asset_key.path[-1]] = mat.metadata["dagster/row_count"].value
    return counts


@on_every_destination
def test_full_load_matches_the_simulator(simulator, instance, warehouse):
    result = materialize(instance)
    assert result.success
    # The load froze the process's start-up objects (runtime.freeze_long_lived_objects).
    assert gc.get_freeze_count() > 0

    assert_matches_simulator(warehouse, simulator)
    assert {
        "environment_nodes__columns",
        "run_results__query_results",
        "projects__workspaces",
    } <= warehouse.tables()
    expected_columns = sum(
        len(node["metadata"]["columns"])
        for nodes in simulator.state.nodes.values()
        for node in nodes.values()
    )
    assert warehouse.count("environment_nodes__columns") == expected_columns

    # One materialization per asset, each with the table's row count and column schema.
    counts = _row_counts(result)
    assert set(counts) == set(ALL_TABLES)
    with warehouse.session():  # a query per table: one connection for all of them
        for table, count in counts.items():
            assert count == warehouse.count(table), table
    nodes_event = instance.get_latest_materialization_event(dg.AssetKey(["coalesce", "environment_nodes"]))
    schema = nodes_event.asset_materialization.metadata["dagster/column_schema"].value
    assert {"id", "environment_id", "name", "node_type", "source_mapping"} <= {c.name for c in schema.columns}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Enough rows that a page size of 7 means many pages on every list.
    return SimulatorConfig(environments=3, nodes_per_environment=30, runs=45, users=20, projects=2)


def test_every_list_is_paged_through(simulator, instance, warehouse, monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__PAGE_SIZE", "7")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE", "7")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_PAGE_SIZE", "7")
    assert materialize(instance).success
    assert_matches_simulator(warehouse, simulator)

    state = simulator.state
    env_list = [r for r in simulator.requests if r.path == "/api/v1/environments"]
    assert len(env_list) == math.ceil(len(state.environments) / 7)
    for env_id, nodes in state.nodes.items():
        node_pages = [r for r in simulator.requests if r.path == f"/api/v1/environments/{env_id}/nodes"]
        assert len(node_pages) >= math.ceil(len(nodes) / 7) > 1
    run_pages = [r for r in simulator.requests if r.path == "/api/v1/runs"]
    assert len(run_pages) >= math.ceil(len(state.runs) / 7)
    user_pages = [r for r in simulator.requests if r.path == "/api/v1/users"]
    assert len(user_pages) >= math.ceil(len(state.users) / 7)


def run_list_pages(simulator) -> list:
    """The run list's pages, without the question about deploy runs the node sync asks."""
    return [r for r in simulator.requests if r.path == "/api/v1/runs" and "runType" not in r.query]


@on_every_destination
def test_a_second_sync_without_changes_adds_no_rows(simulator, instance, warehouse, monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE", "10")  # the 45 runs span 5 pages
    assert materialize(instance).success
    assert len(run_list_pages(simulator)) == 5
    before = {table: warehouse.count(table) for table in ALL_TABLES + ("environment_nodes__columns",)}
    in_flight = [rid for rid, run in simulator.state.runs.items() if run["runStatus"] not in TERMINAL]
    simulator.reset_request_log()

    assert materialize(instance).success

    assert {table: warehouse.count(table) for table in before} == before
    assert_matches_simulator(warehouse, simulator)
    # Incremental: one page of the run list (of five), and results only for runs that were still going.
    assert len(run_list_pages(simulator)) == 1
    results_calls = {r.path for r in simulator.requests if r.path.endswith("/results")}
    assert results_calls == {f"/api/v1/runs/{rid}/results" for rid in in_flight}


@on_every_destination
def test_new_runs_and_runs_that_finished_are_picked_up(simulator, instance, warehouse):
    state = simulator.state
    assert materialize(instance).success
    in_flight = sorted(rid for rid, run in state.runs.items() if run["runStatus"] not in TERMINAL)
    assert in_flight, "the default simulator has runs in flight"
    still_running = in_flight[0]
    assert warehouse.scalar("SELECT run_end_time FROM coalesce_data.runs WHERE id = ?", still_running) is None

    for rid in in_flight:
        if state.runs[rid]["runStatus"] == "waitingToRun":
            state.set_run_status(rid, "running")
        state.set_run_status(rid, "completed")
    new_ids = state.add_runs(3)
    simulator.reset_request_log()

    assert materialize(instance).success

    assert_matches_simulator(warehouse, simulator)
    for rid in in_flight:
        status, ended = warehouse.rows(
            "SELECT run_status, run_end_time FROM coalesce_data.runs WHERE id = ?", rid
        )[0]
        assert status == "completed" and ended is not None
        running_results = warehouse.scalar(
            "SELECT count(*) FROM coalesce_data.run_results WHERE run_id = ? AND is_running", rid
        )
        assert running_results == 0
    results_calls = {r.path for r in simulator.requests if r.path.endswith("/results")}
    assert results_calls == {f"/api/v1/runs/{rid}/results" for rid in in_flight + new_ids}


@on_every_destination
def test_a_node_deleted_in_coalesce_is_gone_after_the_next_sync(simulator, instance, warehouse):
    assert materialize(instance).success
    env_id = next(iter(simulator.state.nodes))
    node_id = next(iter(simulator.state.nodes[env_id]))
    # Nodes change in Coalesce through a deploy run; the sync re-reads the environment it ran in.
    _, (added,) = simulator.state.deploy(env_id, add=1, remove=[node_id])

    assert materialize(instance, selection=["environments", "environment_nodes"]).success

    keys = set(warehouse.keys("environment_nodes", "environment_id", "id"))
    assert (env_id, node_id) not in keys
    assert (env_id, added) in keys
    assert_matches_simulator(warehouse, simulator, tables=("environment_nodes",))


def test_a_subset_loads_only_the_selected_tables(simulator, instance, warehouse):
    result = materialize(instance, selection=["environment_nodes"])
    assert result.success
    assert [e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()] == [
        "environment_nodes"
    ]
    assert "environments" not in warehouse.tables()
    assert_matches_simulator(warehouse, simulator, tables=("environment_nodes",))
    # Lineage arrives as one JSON column, not one column per alias.
    env_id, nodes = next((e, n) for e, n in simulator.state.nodes.items() if n)
    node_id = next(i for i, n in nodes.items() if n["metadata"]["sourceMapping"])
    (mapping,) = warehouse.rows(
        "SELECT source_mapping FROM coalesce_data.environment_nodes WHERE environment_id = ? AND id = ?",
        env_id,
        node_id,
    )[0]
    assert '"dependencies"' in mapping


def test_loading_runs_alone_does_not_make_results_skip_those_runs(simulator, instance, warehouse):
    assert materialize(instance, selection=["runs"]).success
    assert "run_results" not in warehouse.tables()
    assert materialize(instance).success
    assert_matches_simulator(warehouse, simulator)


def test_run_ids_config_loads_exactly_those_runs(simulator, instance, warehouse):
    wanted = sorted(simulator.state.runs)[:2]
    run_config = {"ops": {"coalesce_load": {"config": {"run_ids": wanted}}}}
    result = materialize(instance, selection=["runs", "run_results", "run_status"], run_config=run_config)
    assert result.success
    assert [rid for (rid,) in warehouse.keys("runs", "id")] == wanted
    assert {rid for (rid, _) in warehouse.keys("run_results", "run_id", "node_id")} == {
        rid for rid in wanted if simulator.state.results[rid]
    }
    assert [rid for (rid,) in warehouse.keys("run_status", "run_id")] == wanted


@pytest.mark.long
def test_full_syncs_normalize_in_worker_processes_and_a_load_of_given_runs_in_none(
    simulator, instance, warehouse, monkeypatch
):
    """`[normalize] workers = 2`, as a large organisation's first sync may set it: a full sync's two
    spawned workers share extracted files small enough that both get rows, and every row lands once;
    a sensor-sized load of given runs normalizes in this process (`pipeline.in_process_normalize`)."""
    import concurrent.futures

    monkeypatch.setenv("NORMALIZE__WORKERS", "2")
    monkeypatch.setenv("SOURCES__DATA_WRITER__FILE_MAX_ITEMS", "40")
    assert dlt.config.get("normalize.start_method", str) == "spawn"
    pool_sizes: list[int] = []

    class RecordingPool(concurrent.futures.ProcessPoolExecutor):  # dlt's pool, with its size noted
        def __init__(self, max_workers=None, *args, **kwargs):
            pool_sizes.append(max_workers)
            super().__init__(max_workers, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", RecordingPool)

    assert materialize(instance).success
    assert pool_sizes == [2]
    wanted = sorted(simulator.state.runs)[:2]
    run_config = {"ops": {"coalesce_load": {"config": {"run_ids": wanted}}}}
    assert materialize(
        instance, selection=["runs", "run_results", "run_status"], run_config=run_config
    ).success
    assert pool_sizes == [2]  # no process pool at all: dlt normalized in this process
    assert materialize(instance).success
    assert pool_sizes == [2, 2]

    assert_matches_simulator(warehouse, simulator)
    assert warehouse.count("run_results__query_results") == sum(
        len(result["queryResults"]) for results in simulator.state.results.values() for result in results
    )


def test_a_missing_token_fails_with_an_actionable_message(simulator, instance, monkeypatch):
    monkeypatch.delenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN")
    result = materialize(instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message + str(failure.step_failure_data.user_failure_data)
    assert "access token" in message and "Generate Access Token" in message
    assert simulator.request_count() == 0
