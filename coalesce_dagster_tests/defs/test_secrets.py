"""The access token never leaves the HTTP Authorization header.

Loads (successful and failing) and sensor ticks run with a recognisable token at DEBUG level; then
every byte they produced is searched for it: captured logs and output, the Dagster instance's
storage (event logs, run config, compute logs), the repository snapshot the UI shows, the dlt
pipelines folder, the DuckDB file, and `.dlt/`.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from coalesce_dagster.definitions import defs
from coalesce_dagster.defs.resources import CoalesceResource
from coalesce_dagster.defs.sensors import coalesce_run_status_sensor
from coalesce_dagster.simulator import SimulatorConfig
from coalesce_dagster_tests.conftest import materialize

TOKEN = f"SECRET-coalesce-token-{uuid.uuid4().hex}"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEBUG = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=5, runs=6, results_per_run=2, token=TOKEN)


def files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path))
    return hits


def test_the_token_appears_nowhere(simulator, instance, tmp_path, monkeypatch, caplog, capfd):
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    caplog.set_level(logging.DEBUG)
    dlt_dir_before = {p: p.read_bytes() for p in (PROJECT_ROOT / ".dlt").rglob("*") if p.is_file()}

    assert materialize(instance, run_config=DEBUG).success
    simulator.state.use_real_clock()
    finished = simulator.state.start_run("1")
    simulator.state.set_run_status(finished, "running")
    simulator.state.set_run_status(finished, "completed")
    with dg.build_sensor_context(instance=instance, resources={"coalesce": CoalesceResource()}) as context:
        tick = coalesce_run_status_sensor(context)
    (request,) = tick.run_requests
    assert materialize(instance, run_config={**DEBUG, **request.run_config},
                       selection=["runs", "run_results", "run_status"], tags=request.tags).success
    # Failures too: Coalesce refusing, erroring and a rejected call all carry request details.
    for fault in ({"status_override": {"/api/v1/runs": 403}}, {"fail_after_requests": 3}):
        simulator.faults.reset()
        simulator.faults.update(fault)
        assert not materialize(instance, run_config=DEBUG, raise_on_error=False).success
    simulator.faults.reset()
    simulator.faults.status_override = {"/api/v1/runs": 503}
    with dg.build_sensor_context(instance=instance, resources={"coalesce": CoalesceResource()}) as context:
        assert coalesce_run_status_sensor(context).skip_reason

    needle = TOKEN.encode()
    captured = capfd.readouterr()
    assert TOKEN not in caplog.text
    assert TOKEN not in captured.out and TOKEN not in captured.err
    assert files_containing(Path(instance.root_directory), needle) == []
    assert files_containing(tmp_path, needle) == []  # pipelines dir and DuckDB file live here
    for run in instance.get_runs():
        assert TOKEN not in repr(run.run_config) and TOKEN not in repr(run.tags)
    for record in instance.get_event_records(dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_FAILURE)):
        assert TOKEN not in serialize_value(record.event_log_entry)
    assert {p: p.read_bytes() for p in (PROJECT_ROOT / ".dlt").rglob("*") if p.is_file()} == dlt_dir_before
    # What the UI shows of the code location (resources, asset metadata) is built from this snapshot.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert TOKEN not in snapshot


def test_a_token_given_as_envvar_is_shown_only_by_name(monkeypatch):
    monkeypatch.setenv("MY_COALESCE_TOKEN", TOKEN)
    scoped = dg.Definitions(
        assets=defs.assets,
        resources={**defs.resources, "coalesce": CoalesceResource(access_token=dg.EnvVar("MY_COALESCE_TOKEN"))},
    )
    snapshot = serialize_value(RepositorySnap.from_def(scoped.get_repository_def()))
    assert "MY_COALESCE_TOKEN" in snapshot
    assert TOKEN not in snapshot
