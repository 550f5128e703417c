"""What real Coalesce accounts do that the reference did not say, and answers its spec allows.

Each test drives the real dlt source over real HTTP against the simulator taught that behaviour (its
switches are off by default), into DuckDB, and checks the destination against the simulator.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from coalesce_dagster.coalesce.errors import explain
from coalesce_dagster.coalesce.runs import MAX_UNCONFIRMED_SYNCS
from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.configuration import ConfigurationError, MissingTokenError
from coalesce_dagster.pipeline import make_pipeline, run_load
from coalesce_dagster_tests.coalesce.test_faults import contents
from coalesce_dagster_tests.expectations import TERMINAL, assert_matches_simulator
from coalesce_simulator import SimulatorConfig, real_account_quirks

PAGED_LISTS = ("/api/v1/environments", "/api/v1/runs", "/api/v1/users")


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(
        environments=5, nodes_per_environment=9, runs=14, results_per_run=3, users=7, projects=3
    )


def load(sim, **kwargs):
    run_load(coalesce_source(base_url=sim.base_url, access_token=sim.config.token, **kwargs))
    return make_pipeline()


def failed_load(sim, **kwargs) -> Exception:
    with pytest.raises(Exception) as failure:
        load(sim, **kwargs)
    return failure.value


def list_requests(sim):
    """Every paged list request: environments, each environment's nodes and jobs, runs, users."""
    return [r for r in sim.requests if r.path in PAGED_LISTS or r.path.endswith(("/nodes", "/jobs"))]


# -- page sizes -------------------------------------------------------------------------------


def test_default_page_sizes_are_accepted_by_a_real_account(simulator, warehouse):
    simulator.faults.update(real_account_quirks())
    load(simulator)  # the shipped defaults, from .dlt/config.toml
    assert_matches_simulator(warehouse, simulator)
    limits = {int(r.query["limit"]) for r in list_requests(simulator)}
    assert limits and max(limits) <= 500
    assert {r.status for r in list_requests(simulator)} == {200}


def test_a_refused_page_size_is_halved_once_per_list_and_the_sync_completes(simulator, warehouse, caplog):
    simulator.faults.max_page_size = 3
    with caplog.at_level(logging.WARNING):
        load(simulator, page_size=6, runs_page_size=6, nodes_page_size=6)
    assert_matches_simulator(warehouse, simulator)

    refused = [r for r in list_requests(simulator) if r.status == 400]
    assert {int(r.query["limit"]) for r in refused} == {6}
    assert {int(r.query["limit"]) for r in list_requests(simulator) if r.status == 200} == {3}
    # Learned once per list: all five environments' node lists share one lesson, as do their jobs lists.
    shrinks = [m for m in caplog.messages if "asking for pages of 3" in m]
    assert Counter(m.split(" for ")[1].split(" pages")[0] for m in shrinks) == {
        "environments": 1,
        "environment nodes": 1,
        "jobs": 1,
        "runs": 1,
        "deploy runs": 1,  # the node sync's question (`nodes/rereads.py`)
        "users": 1,
    }


def test_a_page_size_refused_again_after_halving_is_halved_until_accepted(simulator, warehouse, caplog):
    simulator.faults.max_page_size = 2
    with caplog.at_level(logging.WARNING):
        load(simulator, page_size=10, runs_page_size=10, nodes_page_size=10)
    assert_matches_simulator(warehouse, simulator)
    refused = {int(r.query["limit"]) for r in list_requests(simulator) if r.status == 400}
    assert refused == {10, 5}  # 10 -> 5, still refused -> 2, accepted
    assert {int(r.query["limit"]) for r in list_requests(simulator) if r.status == 200} == {2}
    users = [m for m in caplog.messages if " for users pages of " in m]
    assert [re.search(r"asking for pages of (\d+)", m)[1] for m in users] == ["5", "2"]  # each halving once


def test_a_page_size_coalesce_never_accepts_fails_with_its_message(simulator, warehouse):
    simulator.faults.status_override = {"/api/v1/environments": 400}
    error = failed_load(simulator, page_size=40)
    assert "(400)" in explain(error)
    assert warehouse.path.exists() is False or "environments" not in warehouse.tables()


@pytest.mark.parametrize(
    "setting, value", [("runs_page_size", 1000), ("page_size", 0), ("nodes_page_size", "many")]
)
def test_a_page_size_outside_1_to_500_is_refused_before_any_request(simulator, setting, value):
    with pytest.raises(ConfigurationError) as refused:
        load(simulator, **{setting: value})
    assert f"[sources.coalesce_source] {setting} = {value!r}" in str(refused.value)
    assert simulator.request_count() == 0


# -- slow node detail pages ---------------------------------------------------------------------


def test_a_node_page_that_times_out_is_asked_again_smaller_from_the_same_cursor(simulator, warehouse, caplog):
    simulator.faults.update(
        {
            "detail_page_hang_above": 4,
            "detail_page_hang_seconds": 30.0,  # far past the timeout; the simulator's stop ends it
            "detail_page_hang_with_cursor_only": True,  # the first page is quick, the second is not
        }
    )
    with caplog.at_level(logging.WARNING):
        load(simulator, nodes_page_size=8, nodes_timeout=0.5)
    assert_matches_simulator(warehouse, simulator, tables=("environments", "environment_nodes"))

    first_env = sorted(simulator.state.environments, key=int)[0]
    pages = [r for r in simulator.requests if r.path == f"/api/v1/environments/{first_env}/nodes"]
    timed_out = next(
        r for r in pages if r.status == 0 or (r.query.get("startingFrom") and r.query["limit"] == "8")
    )
    resumed = pages[pages.index(timed_out) + 1]
    assert resumed.query["limit"] == "4"
    assert resumed.query["startingFrom"] == timed_out.query["startingFrom"]
    assert sum(1 for r in pages if "startingFrom" not in r.query) == 1  # page one was not read again
    assert any("did not answer within 0.5 s for environment nodes pages of 8" in m for m in caplog.messages)


def test_node_pages_have_their_own_page_size(simulator, warehouse):
    load(simulator, page_size=100, nodes_page_size=4)
    node_limits = {r.query["limit"] for r in simulator.requests if r.path.endswith("/nodes")}
    env_limits = {r.query["limit"] for r in simulator.requests if r.path == "/api/v1/environments"}
    assert node_limits == {"4"} and env_limits == {"100"}


# -- lists longer than a page, read concurrently -------------------------------------------------


def test_every_environment_project_and_user_loads_when_lists_span_pages(simulator, warehouse, monkeypatch):
    """One shared paginator used to end every list after the first page of another (5 environments
    with page_size=2 loaded 2). Each paging now has its own, across dlt's extract threads."""
    monkeypatch.setenv("EXTRACT__WORKERS", "8")
    load(simulator, page_size=2, runs_page_size=2, nodes_page_size=2)
    assert_matches_simulator(warehouse, simulator)
    assert warehouse.count("environment_nodes__columns") == sum(
        len(node["metadata"]["columns"])
        for nodes in simulator.state.nodes.values()
        for node in nodes.values()
    )


# -- optional fields the spec allows to be absent ------------------------------------------------


def test_a_run_status_without_run_status_loads_as_null_and_everything_else_loads(simulator, warehouse):
    simulator.faults.run_status_without_status = True
    load(simulator)
    assert_matches_simulator(warehouse, simulator, tables=("runs", "run_results", "environments"))
    assert warehouse.count("run_status") == len(simulator.state.runs)
    assert warehouse.count("run_status", "WHERE run_status IS NULL") == len(simulator.state.runs)
    links = dict(warehouse.rows("SELECT run_id, run_link FROM coalesce_data.run_status"))
    assert links == {run_id: simulator.state.run_link(run_id) for run_id in simulator.state.runs}


def test_an_environment_detail_without_id_takes_the_id_it_was_asked_for(simulator, warehouse):
    simulator.faults.environment_detail_without_id = True
    load(simulator)
    assert_matches_simulator(warehouse, simulator, tables=("environment",))
    names = dict(warehouse.rows("SELECT id, name FROM coalesce_data.environment"))
    assert names == {env_id: env["name"] for env_id, env in simulator.state.environments.items()}


# -- run links and node failure states ---------------------------------------------------------------


def test_every_stored_run_link_is_the_one_the_scheduler_returned(simulator, warehouse):
    simulator.faults.run_link_style = "uuid"
    load(simulator)
    links = dict(warehouse.rows("SELECT run_id, run_link FROM coalesce_data.run_status"))
    assert links == {run_id: simulator.state.run_link(run_id) for run_id in simulator.state.runs}
    assert all(str(simulator.state.run_uuid(run_id)) in link for run_id, link in links.items())
    # No other column anywhere holds a link of our own making.
    scheduler_links = set(links.values())
    with warehouse.session():  # a query per text column: one connection for all of them
        for table in warehouse.tables() - {"run_status"}:
            for (column,) in warehouse.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'coalesce_data' "
                "AND table_name = ? AND data_type = 'VARCHAR'",
                table,
            ):
                stray = warehouse.rows(
                    f'SELECT "{column}" FROM coalesce_data."{table}" WHERE "{column}" LIKE \'%/runs/%\''
                )
                assert not [value for (value,) in stray if value not in scheduler_links], (table, column)


def test_failed_nodes_keep_the_state_coalesce_reported(simulator, warehouse):
    simulator.faults.failed_run_state = "failed"
    failing = simulator.state.add_runs(2, status="failed")
    load(simulator)
    states = warehouse.rows(
        f"SELECT DISTINCT run_state FROM coalesce_data.run_results WHERE run_id IN ({failing[0]}, {failing[1]})"
    )
    assert ("failed",) in states and ("error",) not in states


# -- results while a run is going ---------------------------------------------------------------


def test_results_loaded_mid_run_are_replaced_by_the_final_ones(simulator, warehouse):
    state = simulator.state
    queued = state.start_run("1")
    load(simulator)
    assert warehouse.count("run_results", f"WHERE run_id = {queued}") == 0  # 200 with data: []

    state.set_run_status(queued, "running")
    load(simulator)
    assert (
        warehouse.count("run_results", f"WHERE run_id = {queued} AND is_running")
        == len(state.results[queued])
        > 0
    )

    state.set_run_status(queued, "completed")
    load(simulator)
    assert_matches_simulator(warehouse, simulator)
    assert warehouse.count("run_results", f"WHERE run_id = {queued} AND is_running") == 0
    final_queries = sum(len(result["queryResults"]) for result in state.results[queued])
    assert (
        warehouse.scalar(
            "SELECT count(*) FROM coalesce_data.run_results__query_results q JOIN coalesce_data.run_results r "
            f"ON q._dlt_parent_id = r._dlt_id WHERE r.run_id = {queued}"
        )
        == final_queries
    )


# -- run results in an envelope nobody documents; the frontier never skips a run -------------------


def test_results_in_an_unknown_envelope_stop_the_load_naming_the_run_and_shape(simulator, warehouse):
    load(simulator)
    before = contents(warehouse)
    new_run = simulator.state.add_runs(1)[0]
    simulator.faults.results_envelope = "items"

    # The sync fetches results for the new run and for the runs still in flight; whichever answer
    # arrives first stops it, named.
    fetched = {new_run} | {
        rid for rid, run in simulator.state.runs.items() if run["runStatus"] not in TERMINAL
    }
    message = explain(failed_load(simulator))
    named = re.search(r"the results of run (\d+)", message)
    assert named and int(named.group(1)) in fetched and "['items']" in message
    assert contents(warehouse) == before

    simulator.faults.results_envelope = "data"
    load(simulator)
    assert_matches_simulator(warehouse, simulator)


def test_results_whose_key_comes_late_in_the_body_load(simulator, warehouse):
    simulator.faults.results_envelope = "results_late"
    load(simulator)
    assert_matches_simulator(warehouse, simulator)


PARTIAL_OR_FAILED = {
    # The sync commits, but the run's results or status did not arrive.
    "results_not_found": ("commits", {"status_override": {"/api/v1/runs/{run}/results": 404}}),
    "status_not_found": ("commits", {"status_override": {"/scheduler/runStatus": 404}}),
    # The sync fails part-way.
    "results_unknown_envelope": ("fails", {"results_envelope": "items"}),
    "results_outage": ("fails", {"status_override": {"/api/v1/runs/{run}/results": 503}}),
}


def result_run_ids(warehouse) -> set[int]:
    return {run_id for (run_id,) in warehouse.rows("SELECT DISTINCT run_id FROM coalesce_data.run_results")}


def status_run_ids(warehouse) -> set[int]:
    return {run_id for (run_id,) in warehouse.rows("SELECT run_id FROM coalesce_data.run_status")}


@pytest.mark.parametrize("outcome, fault", list(PARTIAL_OR_FAILED.values()), ids=list(PARTIAL_OR_FAILED))
def test_after_a_partial_or_failed_sync_the_next_one_ends_with_every_result_row(
    simulator, warehouse, outcome, fault
):
    load(simulator)
    before = contents(warehouse)
    new_runs = simulator.state.add_runs(3)
    missing = new_runs[1]
    for name, value in fault.items():
        if isinstance(value, dict):
            value = {path.format(run=missing): status for path, status in value.items()}
        setattr(simulator.faults, name, value)

    if outcome == "fails":
        failed_load(simulator)
        assert contents(warehouse) == before  # nothing of the failed sync landed
    else:
        load(simulator)  # the rest loads: every new run, and what did answer of the one that did not
        loaded_runs = {run_id for (run_id,) in warehouse.rows("SELECT id FROM coalesce_data.runs")}
        assert set(new_runs) <= loaded_runs
        if "/scheduler/runStatus" in fault["status_override"]:  # every status 404s, results answer
            assert not set(new_runs) & status_run_ids(warehouse)
            assert set(new_runs) <= result_run_ids(warehouse)
        else:  # one run's results 404, the rest answer
            assert set(new_runs) - result_run_ids(warehouse) == {missing}
            assert set(new_runs) <= status_run_ids(warehouse)

    # Once Coalesce answers, the next sync reads what was missing again and ends with every row.
    simulator.faults.reset()
    simulator.reset_request_log()
    load(simulator)
    assert_matches_simulator(warehouse, simulator)
    asked = {int(r.query["runCounter"]) for r in simulator.requests if r.path == "/scheduler/runStatus"}
    assert simulator.request_count(f"/api/v1/runs/{missing}/results") == 1 and missing in asked


def test_a_run_whose_results_never_arrive_is_given_up_after_a_few_syncs(simulator, warehouse, caplog):
    # A scheduler that never knew an old run must not cost every later sync requests for it.
    load(simulator)
    (stuck,) = simulator.state.add_runs(1)
    simulator.faults.status_override = {f"/api/v1/runs/{stuck}/results": 404}
    asked = []
    for _ in range(MAX_UNCONFIRMED_SYNCS + 1):
        simulator.reset_request_log()
        load(simulator)
        asked.append(simulator.request_count(f"/api/v1/runs/{stuck}/results"))
    assert asked == [1] * MAX_UNCONFIRMED_SYNCS + [0]
    assert f"run {stuck} in {MAX_UNCONFIRMED_SYNCS} syncs" in caplog.text
    assert_matches_simulator(warehouse, simulator, tables=("runs", "run_status"))


# -- the token comes from the documented places only -------------------------------------------------


def test_a_token_meant_for_another_tool_is_never_sent(simulator, monkeypatch):
    monkeypatch.delenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN")
    monkeypatch.setenv("ACCESS_TOKEN", simulator.config.token)
    monkeypatch.setenv("SOURCES__ACCESS_TOKEN", simulator.config.token)
    with pytest.raises(MissingTokenError) as missing:
        coalesce_source(base_url=simulator.base_url)
    assert "SOURCES__COALESCE_SOURCE__ACCESS_TOKEN" in str(missing.value)
    assert simulator.request_count() == 0


def test_the_documented_variable_is_used(simulator, warehouse):
    run_load(coalesce_source())  # base URL and token from SOURCES__COALESCE_SOURCE__*
    assert_matches_simulator(warehouse, simulator, tables=("environments",))
