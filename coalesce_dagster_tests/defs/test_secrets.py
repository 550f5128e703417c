"""Secrets never leave where they belong.

The access token only ever travels in the HTTP Authorization header. Loads (successful and failing)
and sensor ticks run with a recognisable token at DEBUG level; then every byte they produced is
searched for it: captured logs and output, the Dagster instance's storage (event logs, run config,
compute logs), the repository snapshot the UI shows, each run's dlt working folder as it was when
the run deleted it, the DuckDB file (every text column, and dlt's compressed pipeline state), and
`.dlt/`.

Secret `userCredentials` a run object might echo (the simulator's `echo_credentials`) are stripped
before anything is stored.
"""

from __future__ import annotations

import logging
import shutil
import types
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from coalesce_dagster.definitions import defs
from coalesce_dagster.defs import assets
from coalesce_dagster.defs.resources import CoalesceResource
from coalesce_dagster.defs.sensors import coalesce_run_status_sensor
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_dagster_tests.helpers import files_containing, materialize, stored_text_containing
from coalesce_simulator import ECHOED_SECRET_VALUES, SimulatorConfig

TOKEN = f"SECRET-coalesce-token-{uuid.uuid4().hex}"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEBUG = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}
RUN_ASSETS = ["runs", "run_results", "run_status"]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=5, runs=6, results_per_run=2, token=TOKEN)


@pytest.fixture
def deleted_working_dirs(monkeypatch, tmp_path) -> Path:
    """Where a copy of each run's dlt working folder lands at the moment the run deletes it (the
    asset removes its folder when it ends, so a scan afterwards would find nothing to scan)."""
    kept = tmp_path / "deleted_working_dirs"

    def copy_then_delete(path, *args, **kwargs):
        shutil.copytree(path, kept / Path(path).name)
        shutil.rmtree(path, *args, **kwargs)

    monkeypatch.setattr(assets, "shutil", types.SimpleNamespace(rmtree=copy_then_delete))
    return kept


def assert_working_dirs_were_scanned(kept: Path, runs: int) -> None:
    """The copies hold what dlt writes (schema, state, trace, load packages), one folder per run."""
    assert len(list(kept.iterdir())) == runs
    for name in ("state.json", "trace.pickle", "schemas", "load"):
        assert list(kept.glob(f"*/coalesce_pipeline/{name}")), f"no {name} in the working folders"


@pytest.mark.long
def test_the_token_appears_nowhere(
    simulator, instance, warehouse, tmp_path, monkeypatch, caplog, capfd, deleted_working_dirs
):
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
    assert materialize(
        instance,
        run_config={**DEBUG, **request.run_config},
        selection=["runs", "run_results", "run_status"],
        tags=request.tags,
    ).success
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
    assert files_containing(Path(instance.root_directory), [needle]) == []
    assert_working_dirs_were_scanned(deleted_working_dirs, runs=4)
    assert files_containing(tmp_path, [needle]) == []  # the working folders' copies and DuckDB live here
    assert stored_text_containing(warehouse, [TOKEN]) == []
    for run in instance.get_runs():
        assert TOKEN not in repr(run.run_config) and TOKEN not in repr(run.tags)
    for record in instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.STEP_FAILURE)
    ):
        assert TOKEN not in serialize_value(record.event_log_entry)
    assert {p: p.read_bytes() for p in (PROJECT_ROOT / ".dlt").rglob("*") if p.is_file()} == dlt_dir_before
    # What the UI shows of the code location (resources, asset metadata) is built from this snapshot.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert TOKEN not in snapshot


def test_a_token_given_as_envvar_is_shown_only_by_name(monkeypatch):
    monkeypatch.setenv("MY_COALESCE_TOKEN", TOKEN)
    scoped = dg.Definitions(
        assets=defs.assets,
        resources={
            **defs.resources,
            "coalesce": CoalesceResource(access_token=dg.EnvVar("MY_COALESCE_TOKEN")),
        },
    )
    snapshot = serialize_value(RepositorySnap.from_def(scoped.get_repository_def()))
    assert "MY_COALESCE_TOKEN" in snapshot
    assert TOKEN not in snapshot


def test_secret_run_credentials_are_never_stored(
    simulator, instance, warehouse, tmp_path, deleted_working_dirs
):
    """Run objects that carry `userCredentials` secrets: a full sync (the run list) and a sensor's
    load (runs read by id) store who ran each run, never a password or key."""
    simulator.faults.echo_credentials = True
    assert materialize(instance).success
    given = sorted(simulator.state.runs)[:2]
    assert materialize(
        instance, selection=RUN_ASSETS, run_config={"ops": {"coalesce_load": {"config": {"run_ids": given}}}}
    ).success
    assert any(r.path == f"/api/v1/runs/{given[0]}" for r in simulator.requests)

    secrets = list(ECHOED_SECRET_VALUES.values())
    assert stored_text_containing(warehouse, secrets) == []
    assert_working_dirs_were_scanned(deleted_working_dirs, runs=2)
    assert files_containing(tmp_path, [secret.encode() for secret in secrets]) == []
    columns = {
        name
        for (name,) in warehouse.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'coalesce_data' "
            "AND table_name = 'runs' AND column_name LIKE 'user_credentials%'"
        )
    }
    assert "user_credentials__snowflake_username" in columns  # who ran it is kept
    assert not [c for c in columns if "password" in c or "key_pair" in c], columns
    assert_matches_simulator(warehouse, simulator)
