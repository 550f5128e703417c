"""Loads launched by the sensor and by hand, under the Dagster daemon's own sensor and run-queue code
and the committed dagster.yaml.

The daemon's iterations are run here one at a time (its sensor tick, then its run queue, each
dequeued run executed as it is launched), against the code location `workspace.yaml` declares, so
every step is a point the test can look at: no polling, no waiting on a clock. Loads write one
DuckDB file and one dlt state, so they must go one at a time; each of the two guards in
dagster.yaml (the run-queue tag limit and the concurrency pool) must do that on its own.
"""

from __future__ import annotations

import copy
import logging
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.asset_daemon import AssetDaemon
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._time import get_current_datetime

from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
from coalesce_dagster.configuration import resolve_source_settings
from coalesce_dagster.definitions import defs
from coalesce_dagster.defs.nodes.state import store_snapshot
from coalesce_dagster.defs.sensors import SENSOR_NAME
from coalesce_simulator import SimulatorConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
COMMITTED_CONCURRENCY = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())["concurrency"]
(CODE_LOCATION,) = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
LOCATION_NAME = CODE_LOCATION["python_module"]["location_name"]
MODULE_NAME = CODE_LOCATION["python_module"]["module_name"]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=8, runs=10, results_per_run=4)


@contextmanager
def daemon_instance(empty_home: Path, home: Path, concurrency: dict | None) -> Iterator[dg.DagsterInstance]:
    """An instance that queues runs (as `dagster dev` and deployments do) with the given
    `concurrency` block, and executes each run in this process the moment the queue launches it."""
    shutil.copytree(empty_home, home)
    overrides = {
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_launcher": {
            "module": "dagster._core.launcher.sync_in_memory_run_launcher",
            "class": "SyncInMemoryRunLauncher",
        },
        **({"concurrency": concurrency} if concurrency else {}),
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(home)) as instance:
        yield instance


@contextmanager
def code_location(instance: dg.DagsterInstance, python_file: Path | None = None):
    """The workspace the daemon sees: `workspace.yaml`'s code location (or the code location of
    `python_file`), loaded in this process."""
    target = {"python_file": str(python_file)} if python_file else {"module_name": MODULE_NAME}
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, working_directory=str(PROJECT_ROOT), **target),
        location_name=LOCATION_NAME,
    )
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as workspace:
        yield workspace


def repository(workspace):
    location = workspace.create_request_context().get_code_location(LOCATION_NAME)
    (repo,) = location.get_repositories().values()
    return repo


def launch_by_hand(instance, workspace, job_name: str, run_config: dict | None = None) -> dg.DagsterRun:
    """What the UI's Materialize does: a run of the code location's job, submitted to the queue."""
    remote_job = repository(workspace).get_full_job(job_name)
    run = instance.create_run_for_job(
        defs.resolve_job_def(job_name),
        run_config=run_config,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
    )
    instance.submit_run(run.run_id, workspace.create_request_context())
    return run


def dequeue_once(workspace) -> None:
    """One iteration of the daemon's run queue: launch (here: execute) what the limits allow."""
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))


def statuses(instance) -> list[dg.DagsterRunStatus]:
    return [run.status for run in instance.get_runs()]


@pytest.mark.long
def test_sensor_and_manual_loads_queue_one_at_a_time_and_all_succeed(
    simulator, warehouse, tmp_path, monkeypatch, _empty_instance_home
):
    state = simulator.state
    state.use_real_clock()
    coalesce_runs = []
    for env_id in ("1", "2"):
        run_id = state.start_run(env_id)
        state.set_run_status(run_id, "running")
        state.set_run_status(run_id, "completed")
        coalesce_runs.append(run_id)
    monkeypatch.setenv(
        "COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST", "1"
    )  # one Dagster run per Coalesce run

    with (
        daemon_instance(_empty_instance_home, tmp_path / "home", COMMITTED_CONCURRENCY) as instance,
        code_location(instance) as workspace,
    ):
        instance.start_sensor(repository(workspace).get_sensor(SENSOR_NAME))  # the UI's toggle
        list(execute_sensor_iteration(workspace, logging.getLogger(__name__), None, None))
        launch_by_hand(instance, workspace, "coalesce_organisation_job")
        assert statuses(instance) == [dg.DagsterRunStatus.QUEUED] * 3

        # Each pass of the queue launches exactly one load; the rest wait their turn.
        for finished in range(1, 4):
            dequeue_once(workspace)
            assert sorted(statuses(instance), key=str) == sorted(
                [dg.DagsterRunStatus.SUCCESS] * finished + [dg.DagsterRunStatus.QUEUED] * (3 - finished),
                key=str,
            )
        runs = instance.get_runs()
        (tick,) = instance.get_ticks(
            repository(workspace).get_sensor(SENSOR_NAME).get_remote_origin_id(),
            repository(workspace).get_sensor(SENSOR_NAME).selector_id,
        )

    sensor_runs = [run for run in runs if run.tags.get("dagster/sensor_name") == SENSOR_NAME]
    assert sorted(int(run.tags["coalesce/run_ids"]) for run in sensor_runs) == sorted(coalesce_runs)
    # Each run carries the run_key its request had: what Dagster refuses to launch twice.
    assert sorted(run.tags["dagster/run_key"] for run in sensor_runs) == sorted(tick.run_keys)
    assert len(set(tick.run_keys)) == len(coalesce_runs)
    assert [run.job_name for run in runs if run not in sensor_runs] == ["coalesce_organisation_job"]
    assert all(run.tags["dagster/code_location"] == LOCATION_NAME for run in runs)
    assert sorted(r for (r,) in warehouse.keys("runs", "id")) == sorted(coalesce_runs)
    assert warehouse.count("users") == len(state.users)


def _without(concurrency: dict, guard: str) -> dict:
    kept = copy.deepcopy(concurrency)
    if guard in ("tag_limit", "both"):
        kept["runs"].pop("tag_concurrency_limits")
    if guard in ("pool", "both"):
        kept.pop("pools")
    return kept


@pytest.mark.parametrize(
    "removed, launched_together",
    [("pool", 1), ("tag_limit", 1), ("both", 2)],
    ids=["tag_limit_alone", "pool_alone", "neither_guard"],
)
def test_each_guard_alone_launches_one_load_at_a_time(
    simulator, tmp_path, _empty_instance_home, removed, launched_together
):
    """Two loads queued at once (a schedule and a click, say): with either guard of the committed
    dagster.yaml on its own, the queue launches one and holds the other; with neither, both go."""
    concurrency = _without(COMMITTED_CONCURRENCY, removed)
    with (
        daemon_instance(_empty_instance_home, tmp_path / "home", concurrency) as instance,
        code_location(instance) as workspace,
    ):
        # A first load: Dagster creates a pool's limit (`default_limit`) when it first sees the pool.
        launch_by_hand(instance, workspace, "coalesce_organisation_job")
        dequeue_once(workspace)
        for _ in range(2):
            launch_by_hand(instance, workspace, "coalesce_organisation_job")

        dequeue_once(workspace)

        assert statuses(instance).count(dg.DagsterRunStatus.QUEUED) == 2 - launched_together
        assert dg.DagsterRunStatus.FAILURE not in statuses(instance)


@pytest.mark.long(seconds=30)
@pytest.mark.parametrize("simulator_config", [SimulatorConfig()], ids=["the-demo-data"])  # the example's keys
def test_the_automation_daemon_builds_the_nodes_a_raw_table_feeds_in_one_coalesce_run(
    simulator, tmp_path, monkeypatch, _empty_instance_home, coalesce_scheduler
):
    """The README's automation example under the daemon: the raw table the Development source node
    reads is loaded; one daemon tick requests every Development node downstream of it (through the
    source node) and the report downstream of those; the queue runs them; Coalesce gets one run."""
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", "Development")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "DAGSTER")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", "pw")
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), ["Development"]))
    nodes = simulator.state.nodes["1"]
    source = next(n for n in nodes.values() if n["name"] == "SRC_SHIPMENT")
    readers = reachable_from(source["id"], nodes)
    assert len(readers) >= 2  # several nodes: the point is that they make one Coalesce run
    coalesce_scheduler(("completed", None))

    with (
        daemon_instance(_empty_instance_home, tmp_path / "home", COMMITTED_CONCURRENCY) as instance,
        code_location(instance, PROJECT_ROOT / "examples" / "node_automation.py") as workspace,
    ):
        daemon = AssetDaemon(settings={}, pre_sensor_interval_seconds=0)

        def automation_tick() -> None:
            daemon._run_iteration_impl(
                workspace, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={}
            )

        automation_tick()  # the first tick: nothing updated, nothing built (unlike eager())
        assert instance.get_runs() == []
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["raw", "tpch", "src_shipment"]))
        )
        # The next tick, once the sensor's interval has passed on Dagster's clock (no waiting).
        with freeze_time(get_current_datetime() + timedelta(minutes=1)):
            automation_tick()
        (run,) = instance.get_runs()
        requested = {key.path[-1] for key in run.asset_selection or ()}
        assert requested == {nodes[i]["name"].lower() for i in readers} | {"shipments"}
        dequeue_once(workspace)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS

    starts = [request for request in simulator.requests if request.path == "/scheduler/startRun"]
    assert len(starts) == 1
    (started,) = simulator.state.started_run_ids
    assert {r["nodeID"] for r in simulator.state.results[started]} == readers


def reachable_from(node_id: str, nodes: dict) -> set[str]:
    """Ids of the nodes that read `node_id`, directly or through other nodes."""
    by_name = {(n["locationName"], n["name"]): n["id"] for n in nodes.values()}
    readers: dict[str, set[str]] = {}
    for node in nodes.values():
        for dependency in node["metadata"]["sourceMapping"][0]["dependencies"]:
            readers.setdefault(by_name[(dependency["locationName"], dependency["nodeName"])], set()).add(
                node["id"]
            )
    found: set[str] = set()
    frontier = [node_id]
    while frontier:
        for reader in readers.get(frontier.pop(), ()):
            if reader not in found:
                found.add(reader)
                frontier.append(reader)
    return found
