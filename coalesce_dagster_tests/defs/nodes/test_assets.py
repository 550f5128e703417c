"""Coalesce's nodes as Dagster assets: built from the snapshot, with lineage, kept current by runs.

Everything runs through real Dagster against the simulator: the snapshot is fetched over HTTP, the
definitions are loaded by the same `build_definitions` the code location uses, and the sensor is
ticked with the code location's repository, as the daemon ticks it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster.coalesce.nodes import NodeSnapshot, resolve_lineage
from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
from coalesce_dagster.coalesce.types import FAILED_NODE_STATES
from coalesce_dagster.configuration import resolve_source_settings
from coalesce_dagster.definitions import build_definitions
from coalesce_dagster.defs.assets import LOAD_OP_NAME
from coalesce_dagster.defs.nodes.state import local_state_path, store_snapshot
from coalesce_dagster.defs.nodes.translator import RUN_CHECK_NAME
from coalesce_dagster.defs.sensors import RUN_IDS_TAG, SENSOR_NAME
from coalesce_dagster_tests.helpers import materialize, tick_run_status_sensor
from coalesce_dagster_tests.project_copy import make_project_copy
from coalesce_simulator import SimulatorConfig

# `dg` starts cold and loads the project's definitions: tens of seconds on a busy machine.
REFRESH_TIMEOUT_SECONDS = 240

ENVIRONMENT = "1"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=25, runs=5, results_per_run=4)


@pytest.fixture
def nodes_of_environment(simulator, monkeypatch) -> list[dict]:
    """The simulator's environment 1, configured for node assets, with its snapshot stored."""
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps([ENVIRONMENT]))
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), [ENVIRONMENT]))
    return list(simulator.state.nodes[ENVIRONMENT].values())


def table_key(node: dict) -> dg.AssetKey:
    return dg.AssetKey([node["database"].lower(), node["schema"].lower(), node["name"].lower()])


def node_asset_keys(defs: dg.Definitions) -> set[dg.AssetKey]:
    """The keys of the node assets (not the metadata tables, nor the tables source nodes read)."""
    graph = defs.resolve_asset_graph()
    return {key for key in graph.get_all_asset_keys() if "coalesce/node_id" in graph.get(key).metadata}


def node_key(node: dict) -> dg.AssetKey:
    key = table_key(node)
    return key.with_prefix(["coalesce_source", "development"]) if node["nodeType"] == "Source" else key


def test_no_snapshot_loads_the_metadata_assets_only_and_says_how_to_make_one(caplog):
    with caplog.at_level(logging.WARNING):
        defs = build_definitions()
    assert {key.path[0] for key in defs.resolve_all_asset_keys()} == {"coalesce"}
    assert "No Coalesce node snapshot yet" in caplog.text
    assert "dg utils refresh-defs-state" in caplog.text


def test_one_asset_per_node_with_the_lineage_coalesce_states(simulator, nodes_of_environment):
    simulator.reset_request_log()
    defs = build_definitions()
    assert simulator.requests == []  # the definitions load asks Coalesce nothing

    graph = defs.resolve_asset_graph()
    by_name = {(n["locationName"], n["name"]): n for n in nodes_of_environment}
    node_keys = node_asset_keys(defs)
    expected_tables = {table_key(n) for n in nodes_of_environment if n["nodeType"] == "Source"}
    assert node_keys == {node_key(n) for n in nodes_of_environment}
    for node in nodes_of_environment:
        asset = graph.get(node_key(node))
        if node["nodeType"] == "Source":
            assert set(asset.parent_keys) == {table_key(node)}
            assert not asset.is_executable
            continue
        dependencies = node["metadata"]["sourceMapping"][0]["dependencies"]
        assert set(asset.parent_keys) == {
            node_key(by_name[(d["locationName"], d["nodeName"])]) for d in dependencies
        }
        assert asset.group_name == "coalesce_development"
        assert asset.kinds == {"coalesce", "snowflake"}
        assert asset.metadata["dagster/table_name"] == f"{node['database']}.{node['schema']}.{node['name']}"
        schema = asset.metadata["dagster/column_schema"]
        columns = getattr(schema, "schema", schema).columns
        assert [(c.name, c.type) for c in columns] == [
            (c["name"], c["dataType"]) for c in node["metadata"]["columns"]
        ]
        assert dg.AssetCheckKey(node_key(node), RUN_CHECK_NAME) in graph.asset_check_keys
    # A source node hangs off its warehouse table, whoever produces it.
    assert expected_tables and expected_tables <= set(graph.get_all_asset_keys())
    # The simulator's lineage is a DAG across storage locations, with nothing dangling.
    snapshot = NodeSnapshot.from_json(local_state_path().read_text())
    assert resolve_lineage(snapshot.environments[0]).problems == []
    crossings = {
        (node["locationName"], dependency["locationName"])
        for node in nodes_of_environment
        for dependency in node["metadata"]["sourceMapping"][0]["dependencies"]
    }
    assert any(reader != read for reader, read in crossings)


def test_a_stale_snapshot_still_loads_with_coalesce_down(simulator, nodes_of_environment):
    simulator.stop()
    defs = build_definitions()
    assert len(node_asset_keys(defs)) == len(nodes_of_environment)


def test_a_corrupt_snapshot_loads_no_node_assets_and_names_the_file(nodes_of_environment, caplog):
    local_state_path().write_text("{not json")
    with caplog.at_level(logging.ERROR):
        defs = build_definitions()
    assert {key.path[0] for key in defs.resolve_all_asset_keys()} == {"coalesce"}
    assert "Coalesce node snapshot" in caplog.text and str(local_state_path()) in caplog.text


def test_the_daily_environments_sync_refreshes_the_snapshot(simulator, instance, monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps(["Development"]))
    assert not local_state_path().exists()
    result = materialize(instance, selection=["environments", "environment", "environment_nodes"])
    assert result.success
    snapshot = json.loads(local_state_path().read_text())
    (environment,) = snapshot["environments"]
    assert environment["id"] == ENVIRONMENT and environment["name"] == "Development"
    assert {n["id"] for n in environment["nodes"]} == set(simulator.state.nodes[ENVIRONMENT])
    # The next definitions load has the nodes.
    assert len(node_asset_keys(build_definitions())) == len(simulator.state.nodes[ENVIRONMENT])


def test_the_environments_sync_reads_and_stores_the_snapshot_only_when_it_changed(
    simulator, instance, monkeypatch
):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps(["Development"]))
    for run_id, run in simulator.state.runs.items():  # a deploy in flight is read on every sync
        if run["runStatus"] not in ("completed", "failed", "canceled"):
            simulator.state.set_run_status(run_id, "completed")
    family = ["environments", "environment", "environment_nodes"]
    nodes_path = f"/api/v1/environments/{ENVIRONMENT}/nodes"

    def sync() -> None:
        simulator.reset_request_log()
        assert materialize(instance, selection=family).success

    def snapshot_nodes() -> set[str]:
        (environment,) = json.loads(local_state_path().read_text())["environments"]
        return {node["id"] for node in environment["nodes"]}

    sync()
    stored = local_state_path().read_text()

    # A deploy in another environment: the snapshot's is not read, and the snapshot not rewritten.
    other = next(env_id for env_id in simulator.state.environments if env_id != ENVIRONMENT)
    simulator.state.deploy(other, add=1)
    sync()
    assert nodes_path not in {r.path for r in simulator.requests}
    assert local_state_path().read_text() == stored

    # A deploy in it: read, and the snapshot follows.
    simulator.state.deploy(ENVIRONMENT, remove=[sorted(simulator.state.nodes[ENVIRONMENT])[0]])
    sync()
    assert nodes_path in {r.path for r in simulator.requests}
    assert snapshot_nodes() == set(simulator.state.nodes[ENVIRONMENT])

    # The snapshot lost: the environment it holds is read again, deploy or not.
    local_state_path().unlink()
    sync()
    assert {r.path for r in simulator.requests if r.path.endswith("/nodes")} == {nodes_path}
    assert snapshot_nodes() == set(simulator.state.nodes[ENVIRONMENT])


tick = tick_run_status_sensor


def outcomes(simulator, run_id: int) -> dict[str, dict]:
    return {result["nodeID"]: result for result in simulator.state.results[run_id]}


def test_a_finished_run_reports_each_built_node_once_and_each_failure_as_a_failed_check(
    simulator, nodes_of_environment, instance
):
    simulator.state.use_real_clock()
    defs = build_definitions()
    cursor = tick(defs, instance).cursor
    run_id = simulator.state.start_run(ENVIRONMENT)
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "failed")

    result = tick(defs, instance, cursor)
    (request,) = result.run_requests
    assert request.run_config["ops"][LOAD_OP_NAME]["config"]["run_ids"] == [run_id]
    by_id = {n["id"]: n for n in nodes_of_environment}
    results = outcomes(simulator, run_id)
    built = {
        node_key(by_id[i])
        for i, r in results.items()
        if r["runState"] == "complete" and by_id[i]["nodeType"] != "Source"
    }
    failed = {node_key(by_id[i]) for i, r in results.items() if r["runState"] in FAILED_NODE_STATES}
    assert built and failed  # the simulator's failed run has both

    materializations = [e for e in result.asset_events if isinstance(e, dg.AssetMaterialization)]
    checks = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert sorted(m.asset_key for m in materializations) == sorted(built)
    # Lists, not sets: a node reported twice, or a failed check beside a passed one, must show.
    assert sorted(c.asset_key for c in checks if not c.passed) == sorted(failed)
    assert sorted(c.asset_key for c in checks if c.passed) == sorted(built)
    for materialization in materializations:
        metadata = materialization.metadata
        assert metadata["coalesce/run_id"].value == run_id
        assert metadata["coalesce/run_type"].value == "refresh"
        assert "coalesce/rows_inserted" in metadata and "coalesce/query_ids" in metadata
        assert metadata["coalesce/run_link"].value.startswith(simulator.base_url)
    for check in checks:
        if not check.passed:
            error = check.metadata["coalesce/error"].value
            node = next(n for i, n in by_id.items() if node_key(n) == check.asset_key)
            assert error.startswith(results[node["id"]]["queryResults"][-1]["error"]["errorString"][:20])
            assert f"Coalesce run {run_id}" in check.description

    # The next tick has nothing more to report.
    again = tick(defs, instance, result.cursor)
    assert not again.run_requests and not again.asset_events


@pytest.mark.parametrize("lost_cursor", [None, "not json {"])
def test_a_reset_cursor_reports_no_node_twice(simulator, nodes_of_environment, instance, lost_cursor):
    simulator.state.use_real_clock()
    defs = build_definitions()
    run_id = simulator.state.start_run(ENVIRONMENT)
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "completed")
    first = tick(defs, instance)
    assert first.asset_events
    (request,) = first.run_requests
    launched = materialize(
        instance,
        selection=["runs", "run_results", "run_status"],
        run_config=request.run_config,
        tags={**request.tags, "dagster/sensor_name": SENSOR_NAME},
    )
    assert launched.success

    after_reset = tick(defs, instance, lost_cursor)
    assert not after_reset.run_requests and not after_reset.asset_events


def test_runs_of_environments_without_node_assets_cost_one_request_and_report_nothing(
    simulator, nodes_of_environment, instance
):
    simulator.state.use_real_clock()
    defs = build_definitions()
    cursor = tick(defs, instance).cursor
    run_id = simulator.state.start_run("2")
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "completed")
    simulator.reset_request_log()
    result = tick(defs, instance, cursor)
    (request,) = result.run_requests
    assert request.tags[RUN_IDS_TAG] == str(run_id) and not result.asset_events
    # The run list's page and the run itself, as for any run: its results are never asked for.
    assert [r.path for r in simulator.requests] == ["/api/v1/runs", f"/api/v1/runs/{run_id}"]


REPO_STATE_FOLDER = Path(__file__).resolve().parents[3] / "coalesce_dagster" / "dg_defs" / ".local_defs_state"


def folder_state(folder: Path) -> dict[str, int]:
    """Each state file under `folder` with the time it was last written (nanoseconds). Dagster's
    own `.gitignore` is left out: Dagster writes it whenever it makes the state folder, which a
    developer's refresh may have done, and it holds no snapshot."""
    return {
        str(path): path.stat().st_mtime_ns
        for path in folder.rglob("*")
        if path.is_file() and path.name != ".gitignore"
    }


@pytest.mark.long(seconds=20)
@pytest.mark.timeout(REFRESH_TIMEOUT_SECONDS + 60)
def test_refresh_defs_state_writes_the_snapshot_dagster_loads(simulator, monkeypatch, tmp_path: Path):
    """`dg utils refresh-defs-state`, the command the README gives, in a copy of the project (it
    writes the project's own state folder): the component reads the nodes from Coalesce and stores
    the snapshot the definitions load (here at `snapshot_path`, set by the test's environment)."""
    project = make_project_copy(tmp_path / "project")
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", "Development")
    checkout_state = folder_state(REPO_STATE_FOLDER)  # a developer's own snapshot, if any, stays as it is
    refresh = subprocess.run(
        [str(project / ".venv" / "bin" / "dg"), "utils", "refresh-defs-state"],
        cwd=project,
        # The copy's package, not the checkout's (the shared .venv's editable install points at the
        # checkout): dg writes the state folder beside the package it loads.
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        timeout=REFRESH_TIMEOUT_SECONDS,
    )
    assert folder_state(REPO_STATE_FOLDER) == checkout_state, (
        "the refresh wrote into the checkout, not the copy"
    )
    assert refresh.returncode == 0, refresh.stdout[-3000:] + refresh.stderr[-3000:]
    stored = json.loads(local_state_path().read_text())
    assert [env["name"] for env in stored["environments"]] == ["Development"]
    (development,) = [i for i, env in simulator.state.environments.items() if env["name"] == "Development"]
    nodes = stored["environments"][0]["nodes"]
    assert sorted(node["id"] for node in nodes) == sorted(simulator.state.nodes[development])
    assert len(node_asset_keys(build_definitions())) == len(nodes)


def test_an_environment_that_does_not_exist_is_named_before_any_node_is_read(simulator):
    from coalesce_dagster.configuration import ConfigurationError

    with pytest.raises(ConfigurationError, match="'Nope'.*Development"):
        fetch_node_snapshot(resolve_source_settings(), ["Nope"])
    assert simulator.request_count("/api/v1/environments/") == 0


@pytest.mark.parametrize("served", [True, False], ids=["outcomes-served", "no-outcomes"])
def test_coalesce_tests_are_checks_the_sensor_reports_only_when_results_say(
    simulator, monkeypatch, instance, served
):
    """Tests and column tests on; with outcomes in the run results, each test's check gets its
    result ("Not Null" fails: WARN or ERROR as Coalesce's continueOnFailure says); without them,
    the checks exist but nothing is reported for them."""
    simulator.faults.column_tests = True
    simulator.faults.test_results = served
    simulator.faults.failing_test = "Not Null"
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps([ENVIRONMENT]))
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), [ENVIRONMENT]))
    simulator.state.use_real_clock()
    defs = build_definitions()
    tested = [n for n in simulator.state.nodes[ENVIRONMENT].values() if n["metadata"]["appliedNodeTests"]]
    graph = defs.resolve_asset_graph()
    test_checks = {k for k in graph.asset_check_keys if k.name.startswith("coalesce_test_")}
    assert {k.asset_key for k in test_checks} == {node_key(n) for n in tested} and len(
        test_checks
    ) == 3 * len(tested)

    cursor = tick(defs, instance).cursor
    run_id = simulator.state.start_run(ENVIRONMENT)
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "completed")
    result = tick(defs, instance, cursor)
    reported = [
        e
        for e in result.asset_events
        if isinstance(e, dg.AssetCheckEvaluation) and e.check_name.startswith("coalesce_test_")
    ]
    ran = {r["nodeID"] for r in simulator.state.results[run_id] if r["runState"] == "complete"}
    ran_tested = [n for n in tested if n["id"] in ran]
    if not served:
        assert ran_tested and reported == []  # no outcome is never a guessed pass
        return
    assert len(reported) == 3 * len(ran_tested)  # each test once
    assert {(e.asset_key, e.check_name) for e in reported} == {
        (k.asset_key, k.name) for k in test_checks if k.asset_key in {node_key(n) for n in ran_tested}
    }
    for evaluation in reported:
        failing = evaluation.check_name.endswith("_not_null")
        assert evaluation.passed is not failing
        assert evaluation.severity == dg.AssetCheckSeverity.ERROR
        if failing:
            assert "Test 'Not Null' failed" in evaluation.metadata["coalesce/error"].value


@pytest.mark.parametrize("by_name", [False, True], ids=["by-id", "by-table-name"])
def test_column_lineage_is_the_same_in_either_reference_shape(simulator, monkeypatch, by_name, caplog):
    simulator.faults.column_refs_by_name = by_name
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps([ENVIRONMENT]))
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), [ENVIRONMENT]))
    with caplog.at_level(logging.WARNING):
        graph = build_definitions().resolve_asset_graph()
    nodes = simulator.state.nodes[ENVIRONMENT]
    checked = 0
    for node in nodes.values():
        expected = {
            column["name"]: [
                dg.TableColumnDep(
                    asset_key=node_key(nodes[ref["nodeID"]]),
                    column_name=next(
                        c["name"]
                        for c in nodes[ref["nodeID"]]["metadata"]["columns"]
                        if c["columnID"] == ref["columnID"]
                    ),
                )
                for source in column.get("sources", [])
                for ref in source["columnReferences"]
            ]
            for column in node["metadata"]["columns"]
            if column.get("sources")
        }
        lineage = graph.get(node_key(node)).metadata.get("dagster/column_lineage")
        if not expected:
            assert lineage is None
            continue
        assert lineage.deps_by_column == expected
        checked += 1
    assert checked > 10
    assert "column lineage" not in caplog.text  # nothing dangling in the simulator's references
