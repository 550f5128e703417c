"""Node assets in production: the snapshot is trusted only for the account and environments
configured now, and Dagster builds nodes only where a person opted in (`orchestrate`).

The definitions are loaded by the code location's own `build_definitions`; "materialize all" is
the Dagster CLI's `dagster asset materialize --select '*'`, as the reproduction of the bug ran it,
and what reached Coalesce is read from the simulator's request log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
from coalesce_dagster.configuration import resolve_source_settings
from coalesce_dagster.definitions import build_definitions
from coalesce_dagster.defs.nodes.state import local_state_path, store_snapshot
from coalesce_simulator import SimulatorConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=12, runs=3, results_per_run=3)


@pytest.fixture
def both_environments(simulator, monkeypatch) -> None:
    """A snapshot of environments 1 (Development) and 2, both configured for node assets."""
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps(["1", "2"]))
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), ["1", "2"]))


def node_environments(defs: dg.Definitions) -> dict[str, set[bool]]:
    """Environment id -> whether its node assets are executable (as a set: one value expected)."""
    graph = defs.resolve_asset_graph()
    found: dict[str, set[bool]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if "coalesce/node_id" in node.metadata and node.metadata["coalesce/node_type"] != "Source":
            found.setdefault(node.metadata["coalesce/environment_id"], set()).add(node.is_executable)
    return found


def test_environments_observed_by_default(both_environments, simulator):
    simulator.reset_request_log()
    defs = build_definitions()
    assert node_environments(defs) == {"1": {False}, "2": {False}}
    assert simulator.requests == []  # and the load asked Coalesce nothing


def test_orchestrate_opts_one_environment_in(both_environments, monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", "Development")
    assert node_environments(build_definitions()) == {"1": {True}, "2": {False}}


def test_unsetting_environments_removes_every_node_asset_with_no_refresh(
    both_environments, monkeypatch, caplog
):
    monkeypatch.delenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS")
    with caplog.at_level("WARNING"):
        defs = build_definitions()
    assert node_environments(defs) == {}
    assert "No Coalesce environment is configured for node assets" in caplog.text


def test_an_environment_removed_from_the_configuration_loses_its_assets(
    both_environments, monkeypatch, caplog
):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps(["2"]))
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", "1")
    with caplog.at_level("WARNING"):
        defs = build_definitions()
    assert node_environments(defs) == {"2": {False}}
    assert "no longer in [coalesce_dagster.nodes] environments" in caplog.text
    assert "Dagster builds nothing there" in caplog.text


def test_another_account_sees_none_of_the_snapshot(both_environments, simulator, monkeypatch, caplog):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", json.dumps(["1", "2"]))
    other = "https://other-account.app.coalescesoftware.io"
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", other)
    with caplog.at_level("WARNING"):
        defs = build_definitions()
    assert node_environments(defs) == {}
    assert simulator.base_url in caplog.text and other in caplog.text and "refresh-defs-state" in caplog.text


def test_a_snapshot_from_before_the_record_is_never_built(both_environments, monkeypatch, caplog):
    data = json.loads(local_state_path().read_text())
    data["version"] = 1
    del data["base_url"], data["requested"]
    local_state_path().write_text(json.dumps(data))
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", json.dumps(["1", "2"]))
    with caplog.at_level("WARNING"):
        defs = build_definitions()
    assert node_environments(defs) == {"1": {False}, "2": {False}}
    assert "predates" in caplog.text


def test_a_run_never_starts_in_an_account_other_than_the_snapshots(both_environments, simulator, monkeypatch):
    """The code location loaded for one account; the configuration then moved to another."""
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", "1")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "DAGSTER")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", "pw")
    defs = build_definitions()
    key = next(k for k, v in node_environments_by_key(defs).items() if v == "1")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", "http://127.0.0.1:9")  # nothing listens
    simulator.reset_request_log()
    result = dg.materialize(
        [defs.resolve_assets_def(key)],
        selection=[key],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "no run was started" in failure.message and simulator.base_url in failure.message
    assert simulator.requests == []


def node_environments_by_key(defs: dg.Definitions) -> dict[dg.AssetKey, str]:
    graph = defs.resolve_asset_graph()
    return {
        key: graph.get(key).metadata["coalesce/environment_id"]
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_executable and "coalesce/node_id" in graph.get(key).metadata
    }


def materialize_everything(tmp_path: Path) -> subprocess.CompletedProcess:
    """`dagster asset materialize --select '*'`, as a person or a schedule over `*` runs it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "coalesce_dagster.definitions"]
    return subprocess.run(
        [*command, "--select", "*"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.long(seconds=30)
def test_materializing_everything_starts_nothing_in_coalesce_when_observed(
    both_environments, simulator, tmp_path
):
    """The reproduction of issue 20: no warehouse credentials, node assets configured, `*`."""
    simulator.reset_request_log()
    run = materialize_everything(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    paths = [request.path for request in simulator.requests]
    assert "/scheduler/startRun" not in paths and "/scheduler/rerun" not in paths
    assert "/api/v1/environments" in paths  # the metadata was loaded
    assert "RUN_SUCCESS" in run.stderr


@pytest.mark.long(seconds=40)
def test_materializing_everything_builds_only_the_orchestrated_environment(
    both_environments, simulator, monkeypatch, coalesce_scheduler, tmp_path
):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", "Development")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "DAGSTER")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", "pw")
    coalesce_scheduler(("completed", None))
    simulator.reset_request_log()
    run = materialize_everything(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    starts = [request for request in simulator.requests if request.path == "/scheduler/startRun"]
    assert len(starts) == 1 and starts[0].body["runDetails"]["environmentID"] == "1"
