"""The `jobs` table: every environment's saved jobs (doc §10.9), through real Dagster into DuckDB.

The jobs list's path is inferred, so a deployment may answer 404 for it: that loads no jobs, says so
once, and never costs the rest of the load.
"""

from __future__ import annotations

import math

import pytest

from coalesce_dagster_tests.expectations import KEY_COLUMNS, assert_matches_simulator
from coalesce_dagster_tests.helpers import materialize
from coalesce_simulator import SimulatorConfig

JOBS_PER_PROJECT = 5
JOB_ROWS = (
    "SELECT environment_id, id, name, include_selector, exclude_selector FROM coalesce_data.jobs ORDER BY ALL"
)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Three environments over two projects, five jobs each: with pages of 2, three pages a list.
    return SimulatorConfig(
        environments=3,
        nodes_per_environment=4,
        runs=6,
        results_per_run=2,
        projects=2,
        jobs_per_project=JOBS_PER_PROJECT,
    )


def _jobs_path(env_id: str) -> str:
    return f"/api/v1/environments/{env_id}/jobs"


def test_jobs_of_every_environment_land_paged_by_two(simulator, instance, warehouse, monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__PAGE_SIZE", "2")
    result = materialize(instance, selection=["environments", "jobs"])
    assert result.success

    state = simulator.state
    expected = {
        (env_id, str(job["id"]), job["name"], job["includeSelector"], job["excludeSelector"])
        for env_id, env in state.environments.items()
        for job in state.projects[env["project"]]["jobs"]
    }
    rows = warehouse.rows(
        "SELECT environment_id, id, name, include_selector, exclude_selector FROM coalesce_data.jobs"
    )
    assert len(rows) == len(expected) == len(state.environments) * JOBS_PER_PROJECT
    assert set(rows) == expected
    assert_matches_simulator(warehouse, simulator, tables=("environments", "jobs"))
    # Ids are text even though Coalesce sends small ints; the job's project came along as a column.
    assert (
        warehouse.scalar(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = 'coalesce_data' "
            "AND table_name = 'jobs' AND column_name = 'id'"
        )
        == "VARCHAR"
    )
    assert "Marts only" in {name for (_, _, name, _, _) in rows}
    for env_id in state.environments:
        pages = [r for r in simulator.requests if r.path == _jobs_path(env_id)]
        assert len(pages) == math.ceil(JOBS_PER_PROJECT / 2)
        assert all(r.status == 200 for r in pages)
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "jobs"]
    assert event.materialization.metadata["dagster/row_count"].value == len(expected)


def test_job_ids_sent_as_strings_are_the_same_jobs(simulator, instance, warehouse):
    assert materialize(instance, selection=["environments", "jobs"]).success
    with_int_ids = warehouse.rows(JOB_ROWS)
    assert with_int_ids and all(
        isinstance(job["id"], int) for p in simulator.state.projects.values() for job in p["jobs"]
    )
    for project in simulator.state.projects.values():
        for job in project["jobs"]:
            job["id"] = str(job["id"])
    assert materialize(instance, selection=["environments", "jobs"]).success
    assert_matches_simulator(warehouse, simulator, tables=("jobs",))
    # The same rows as the load of int ids it replaced: ids as text either way, no new column.
    assert warehouse.rows(JOB_ROWS) == with_int_ids
    columns = "SELECT column_name FROM information_schema.columns WHERE table_schema = 'coalesce_data' AND table_name = 'jobs' ORDER BY 1"
    assert not [c for (c,) in warehouse.rows(columns) if c.startswith("id__")]


def test_a_404_jobs_list_loads_every_other_table_and_no_jobs(
    simulator, instance_with_committed_logging, warehouse
):
    instance = instance_with_committed_logging
    simulator.faults.jobs_list_missing = True
    result = materialize(instance)
    assert result.success

    assert_matches_simulator(warehouse, simulator, tables=tuple(t for t in KEY_COLUMNS if t != "jobs"))
    # The table is there, empty, and the asset says so: a query of it works, and finds no job.
    assert "jobs" in warehouse.tables() and warehouse.count("jobs") == 0
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == "jobs"]
    assert event.materialization.metadata["dagster/row_count"].value == 0
    for env_id in simulator.state.environments:
        assert [r.status for r in simulator.requests if r.path == _jobs_path(env_id)] == [404]
    # Said in the Dagster run log, once per load, not once per environment.
    run_log = [entry.user_message for entry in instance.all_logs(result.run_id)]
    warnings = [message for message in run_log if "404 to the jobs list" in message]
    assert len(warnings) == 1, run_log


def test_the_jobs_table_follows_the_list_as_it_comes_and_goes(simulator, instance, warehouse):
    assert materialize(instance, selection=["environments", "jobs"]).success
    assert_matches_simulator(warehouse, simulator, tables=("jobs",))
    simulator.faults.jobs_list_missing = True
    assert materialize(instance, selection=["environments", "jobs"]).success
    assert warehouse.count("jobs") == 0  # replaced: Coalesce no longer lists any
    simulator.faults.jobs_list_missing = False
    assert materialize(instance, selection=["environments", "jobs"]).success
    assert_matches_simulator(warehouse, simulator, tables=("jobs",))
