"""The incremental run sync: how far down the run list a sync reads, and what it does with a run or an
environment that disappears while it runs. Every claim is read off the simulator's request log."""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import make_pipeline, run_load
from coalesce_dagster_tests.expectations import TERMINAL, assert_matches_simulator
from coalesce_simulator import SimulatorConfig

RUNS_PAGE_SIZE = 10


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Six pages of finished history at 10 runs a page; nothing in flight, so no run is revisited.
    return SimulatorConfig(
        environments=3, nodes_per_environment=4, runs=60, results_per_run=2, in_flight_runs=0
    )


def load(sim):
    run_load(
        coalesce_source(base_url=sim.base_url, access_token=sim.config.token, runs_page_size=RUNS_PAGE_SIZE),
    )
    return make_pipeline()


def run_list_pages(sim):
    # Without the question about deploy runs the node sync asks (`nodes/rereads.py`).
    return [r for r in sim.requests if r.path == "/api/v1/runs" and "runType" not in r.query]


def frontier(pipeline) -> dict:
    return pipeline.state["sources"]["coalesce_source"]["resources"]["runs"]["frontier"]


def test_runs_paging_stops_at_the_frontier(simulator, warehouse):
    load(simulator)
    assert len(run_list_pages(simulator)) >= 60 // RUNS_PAGE_SIZE  # the first sync reads all history
    simulator.reset_request_log()
    simulator.state.add_runs(15)

    load(simulator)

    # 15 new runs and the frontier fit in two pages of 10: the four pages of history below are not read.
    pages = run_list_pages(simulator)
    assert len(pages) == 2, [r.query for r in pages]
    assert "startingFrom" not in pages[0].query
    assert_matches_simulator(warehouse, simulator)


def test_an_environment_and_a_run_deleted_mid_sync_are_skipped(simulator, warehouse):
    state = simulator.state
    gone_env = sorted(state.environments, key=int)[-1]
    gone_run = max(run_id for run_id, run in state.runs.items() if run["runStatus"] in TERMINAL)
    listed_envs, listed_runs = set(state.environments), set(state.runs)
    # Each disappears right after the list naming it was answered, before the client asks about it.
    simulator.after_answering("/api/v1/environments", lambda: state.delete_environment(gone_env))
    simulator.after_answering(
        "/api/v1/runs", lambda: state.delete_run(gone_run), when=lambda query: "runType" not in query
    )

    load(simulator)

    answers = {r.path: r.status for r in simulator.requests}
    assert answers[f"/api/v1/environments/{gone_env}"] == 404
    assert answers[f"/api/v1/environments/{gone_env}/nodes"] == 404
    assert answers[f"/api/v1/environments/{gone_env}/jobs"] == 404
    assert answers[f"/api/v1/runs/{gone_run}/results"] == 404
    assert [r.status for r in simulator.requests if r.query.get("runCounter") == str(gone_run)] == [404]
    # The lists keep what they said; everything asked about the deleted two is skipped.
    assert {env_id for (env_id,) in warehouse.keys("environments", "id")} == listed_envs
    assert {run_id for (run_id,) in warehouse.keys("runs", "id")} == listed_runs
    assert_matches_simulator(
        warehouse,
        simulator,
        tables=("environment", "environment_nodes", "jobs", "run_results", "run_status", "projects", "users"),
    )

    # The run's results never arrived, so the next sync asks about it again, finds it gone (404),
    # skips it and stops asking.
    simulator.reset_request_log()
    pipeline = load(simulator)
    assert [r.status for r in simulator.requests if r.path == f"/api/v1/runs/{gone_run}"] == [404]
    assert str(gone_run) not in frontier(pipeline)["revisit"]
    assert {run_id for (run_id,) in warehouse.keys("runs", "id")} == listed_runs  # merged: history stays
    assert_matches_simulator(
        warehouse,
        simulator,
        tables=(
            "environments",
            "environment",
            "environment_nodes",
            "jobs",
            "run_results",
            "run_status",
            "projects",
            "users",
        ),
    )
