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
import subprocess
import types
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from coalesce_dagster import pipeline
from coalesce_dagster.definitions import defs
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
def instance(instance_on_disk):
    """On disk: these tests search the instance's files for secrets, besides what its API returns."""
    return instance_on_disk


@pytest.fixture
def deleted_working_dirs(monkeypatch, tmp_path) -> Path:
    """Where a copy of each run's dlt working folder lands at the moment the run deletes it (the
    load removes its folder when it ends (`pipeline.private_working_dir`), so a scan afterwards would
    find nothing to scan)."""
    kept = tmp_path / "deleted_working_dirs"

    def copy_then_delete(path, *args, **kwargs):
        shutil.copytree(path, kept / Path(path).name)
        shutil.rmtree(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "shutil", types.SimpleNamespace(rmtree=copy_then_delete))
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

    # Coalesce was sent it in the Authorization header only (the simulator answered: it was there),
    # never in a URL or a request body.
    assert simulator.requests and not [
        r.path
        for r in simulator.requests
        if TOKEN in r.path or TOKEN in repr(r.query) or TOKEN in repr(r.body)
    ]
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


PRIVATE_KEY = (
    "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    f"SECRETKEYMATERIAL{uuid.uuid4().hex}\n"
    "-----END ENCRYPTED PRIVATE KEY-----"
)
PASSPHRASE = f"SECRET-passphrase-{uuid.uuid4().hex}"
PASSWORD = f"SECRET-password-{uuid.uuid4().hex}"


@pytest.mark.long(seconds=20)
@pytest.mark.parametrize("variant", ["keypair_as_envvar", "basic_from_dlt_secrets"])
def test_warehouse_credentials_appear_nowhere(
    simulator, instance, warehouse, tmp_path, monkeypatch, caplog, capfd, coalesce_scheduler, variant
):
    """Runs Dagster starts send the warehouse credentials to Coalesce, and nowhere else: not the
    logs, the instance's storage (events, run config, tags), the destination or the UI's snapshot;
    nor when Coalesce refuses the run."""
    from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
    from coalesce_dagster.configuration import resolve_source_settings
    from coalesce_dagster.definitions import build_definitions
    from coalesce_dagster.defs.nodes.state import store_snapshot
    from coalesce_dagster.defs.resources import WarehouseCredentialsConfig

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", "1")
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", "1")  # executable: runs start from Dagster
    if variant == "keypair_as_envvar":
        monkeypatch.setenv("MY_SNOWFLAKE_KEY", PRIVATE_KEY)
        monkeypatch.setenv("MY_SNOWFLAKE_PASSPHRASE", PASSPHRASE)
        credentials = WarehouseCredentialsConfig(
            auth_type="KeyPair",
            username="DAGSTER",
            private_key=dg.EnvVar("MY_SNOWFLAKE_KEY"),
            private_key_passphrase=dg.EnvVar("MY_SNOWFLAKE_PASSPHRASE"),
        )
        secrets, sent = [PRIVATE_KEY, PASSPHRASE, "SECRETKEYMATERIAL"], "snowflakeKeyPairKey"
    else:
        monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "DAGSTER")
        monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", PASSWORD)
        credentials = None
        secrets, sent = [PASSWORD], "snowflakePassword"
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), ["1"]))
    built = build_definitions()
    scoped = dg.Definitions(
        assets=built.assets,
        asset_checks=built.asset_checks,
        resources={**built.resources, "coalesce": CoalesceResource(warehouse_credentials=credentials)},
    )
    graph = scoped.resolve_asset_graph()
    nodes = sorted(k for k in graph.get_all_asset_keys() if "coalesce/node_id" in graph.get(k).metadata)
    chosen = [k for k in nodes if graph.get(k).is_executable][:2]
    job = scoped.resolve_implicit_global_asset_job_def()
    node_op = next(n.name for n in job.graph.node_defs if n.name.startswith("coalesce_nodes_"))
    run_config = {
        **DEBUG,
        "ops": {node_op: {"config": {"poll_interval_seconds": 0.02, "max_poll_interval_seconds": 0.1}}},
    }

    coalesce_scheduler(("completed", None))
    assert job.execute_in_process(instance=instance, run_config=run_config, asset_selection=chosen).success
    body = next(r for r in simulator.requests if r.path == "/scheduler/startRun").body
    assert body["userCredentials"][sent] in secrets  # sent to Coalesce...
    simulator.faults.status_override = {"/scheduler/startRun": 403}  # ...and refused: still not shown
    assert not job.execute_in_process(
        instance=instance, run_config=run_config, asset_selection=chosen, raise_on_error=False
    ).success

    captured = capfd.readouterr()
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in captured.out and secret not in captured.err
    assert files_containing(Path(instance.root_directory), [s.encode() for s in secrets]) == []
    assert files_containing(tmp_path, [s.encode() for s in secrets]) == []
    assert stored_text_containing(warehouse, secrets) == []
    for run in instance.get_runs():
        assert not any(s in repr(run.run_config) or s in repr(run.tags) for s in secrets)
    snapshot = serialize_value(RepositorySnap.from_def(scoped.get_repository_def()))
    assert not any(secret in snapshot for secret in secrets)
    if variant == "keypair_as_envvar":
        assert "MY_SNOWFLAKE_KEY" in snapshot  # shown by name only


def test_the_files_that_hold_secrets_or_data_are_git_ignored():
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [
        ".dlt/secrets.toml",
        ".env",
        "coalesce.duckdb",
        "coalesce_demo.duckdb",
        ".dagster_home/dagster.yaml",
    ]
    # --no-index: by the ignore rules alone, whatever happens to be tracked.
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert sorted(ignored.stdout.split()) == sorted(paths), ignored.stderr
