"""Building node assets from Dagster: one Coalesce run for exactly the selected nodes.

Real Dagster materializes the node multi-asset of the code location's definitions; the op talks
to the simulator over HTTP. A thread plays Coalesce's scheduler: it waits for the run Dagster
starts (the simulator's condition, no sleeps) and moves it to the outcome the test wants.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
from coalesce_dagster.configuration import resolve_source_settings
from coalesce_dagster.definitions import build_definitions
from coalesce_dagster.defs.nodes.runs import STARTED_RUN_TAG_PREFIX
from coalesce_dagster.defs.nodes.state import store_snapshot
from coalesce_dagster.defs.nodes.translator import RUN_CHECK_NAME
from coalesce_dagster.defs.sensors import RUN_IDS_TAG
from coalesce_dagster_tests.helpers import tick_run_status_sensor
from coalesce_simulator import SimulatorConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENT = "1"
# Every run these tests start has a bound: a run the simulator never advances fails the step
# (and is canceled) after RUN_TIMEOUT_SECONDS instead of polling forever.
RUN_TIMEOUT_SECONDS = 60
FAST_POLLS = {
    "poll_interval_seconds": 0.02,
    "max_poll_interval_seconds": 0.1,
    "timeout_seconds": RUN_TIMEOUT_SECONDS,
}
PASSWORD = "s3cret-warehouse-password"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=15, runs=3, results_per_run=3)


@pytest.fixture
def defs(simulator, monkeypatch) -> dg.Definitions:
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps([ENVIRONMENT]))
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", json.dumps([ENVIRONMENT]))
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "DAGSTER")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", PASSWORD)
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), [ENVIRONMENT]))
    return build_definitions()


def built_nodes(simulator) -> dict[str, dict]:
    return {n["id"]: n for n in simulator.state.nodes[ENVIRONMENT].values() if n["nodeType"] != "Source"}


def key_of(node: dict) -> dg.AssetKey:
    return dg.AssetKey([node["database"].lower(), node["schema"].lower(), node["name"].lower()])


def node_op_name(defs) -> str:
    job = defs.resolve_implicit_global_asset_job_def()
    return next(node.name for node in job.graph.node_defs if node.name.startswith("coalesce_nodes_"))


def materialize_nodes(defs, instance, keys, config=None, raise_on_error=True, resource_config=None):
    run_config: dict = {"ops": {node_op_name(defs): {"config": {**FAST_POLLS, **(config or {})}}}}
    if resource_config:
        run_config["resources"] = {"coalesce": {"config": resource_config}}
    return dg.materialize(
        [defs.resolve_assets_def(keys[0])],
        instance=instance,
        selection=keys,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def names(keys) -> list[str]:
    """Asset keys as a sorted list, duplicates kept: a node reported twice must show."""
    return sorted(key.to_user_string() for key in keys)


def test_a_selection_starts_one_run_of_exactly_those_nodes(
    simulator, defs, instance, coalesce_scheduler, warehouse
):
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:3]
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(
        defs, instance, [key_of(n) for n in chosen], config={"parallelism": 3, "parameters": {"TARGET": "qa"}}
    )
    assert result.success

    starts = [r for r in simulator.requests if r.path == "/scheduler/startRun"]
    assert len(starts) == 1
    body = starts[0].body
    assert body["runDetails"]["environmentID"] == ENVIRONMENT
    # The run config's parallelism and parameters reach Coalesce with the run.
    assert body["runDetails"]["parallelism"] == 3 and body["parameters"] == {"TARGET": "qa"}
    run_id = simulator.state.started_run_ids[0]
    assert {r["nodeID"] for r in simulator.state.results[run_id]} == {n["id"] for n in chosen}
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    run_tables = [dg.AssetKey(["coalesce", table]) for table in ("runs", "run_results", "run_status")]
    # Exactly the chosen nodes, each once, and the run tables loaded with this run in the same
    # Dagster run.
    assert names(materialized) == names([key_of(n) for n in chosen] + run_tables)
    checks = [(c.asset_key.to_user_string(), c.passed) for c in result.get_asset_check_evaluations()]
    assert sorted(checks) == [(name, True) for name in names(key_of(n) for n in chosen)]
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key_of(chosen[0])]
    metadata = event.materialization.metadata
    assert metadata["coalesce/run_id"].value == run_id
    assert "coalesce/rows_inserted" in metadata
    assert warehouse.count("run_results", f"WHERE run_id = {run_id}") == len(chosen)
    assert warehouse.count("runs", f"WHERE id = {run_id} AND run_status = 'completed'") == 1
    # The sensor, seeing that run finish, does not report its nodes again.
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[f"{STARTED_RUN_TAG_PREFIX}{run_id}"] == "true"


def test_a_run_the_scheduler_does_not_know_yet_is_asked_about_again(
    simulator, defs, instance, coalesce_scheduler
):
    # Right after startRun the scheduler may answer 404 for the run (real clients wait before they
    # first ask): that is not a run gone, within NOT_YET_KNOWN_SECONDS of its start.
    simulator.faults.started_run_status_404s = 3
    (chosen,) = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:1]
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(defs, instance, [key_of(chosen)])
    assert result.success
    run_id = simulator.state.started_run_ids[0]
    answers = [r.status for r in simulator.requests if r.path == "/scheduler/runStatus"]
    assert answers[:3] == [404, 404, 404] and answers[-1] == 200
    assert key_of(chosen) in [e.asset_key for e in result.get_asset_materialization_events()]
    assert simulator.state.runs[run_id]["runStatus"] == "completed"


def test_a_failed_node_fails_the_step_with_its_error_and_a_failed_check(
    simulator, defs, instance, coalesce_scheduler
):
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:3]
    victim = chosen[1]
    coalesce_scheduler(("failed", victim["id"]))
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert victim["name"] in description and "SQL compilation error" in description
    checks = result.get_asset_check_evaluations()
    # The victim's check failed, once, and nothing passed beside it; each node built (those the run
    # reached before the victim) is materialized once with a passed check; skipped ones report nothing.
    (failed_check,) = [c for c in checks if not c.passed]
    assert failed_check.asset_key == key_of(victim)
    assert "SQL compilation error" in failed_check.metadata["coalesce/error"].value
    built = [
        e.asset_key for e in result.get_asset_materialization_events() if e.asset_key.path[0] != "coalesce"
    ]
    assert key_of(victim) not in built
    assert names(c.asset_key for c in checks if c.passed) == names(built)
    assert len(set(built)) == len(built)


def test_a_rerun_completes_the_failed_nodes(simulator, defs, instance, coalesce_scheduler):
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:3]
    victim = chosen[0]
    coalesce_scheduler(("failed", victim["id"]), ("completed", None))
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen], config={"reruns": 1})
    assert result.success
    first, rerun = simulator.state.started_run_ids[:2]
    assert simulator.state.runs[rerun]["reRunID"] == str(first)
    assert [r.path for r in simulator.requests].count("/scheduler/rerun") == 1
    materialized = [e.asset_key for e in result.get_asset_materialization_events()]
    assert names(k for k in materialized if k.path[0] != "coalesce") == names(key_of(n) for n in chosen)
    # Every node passed its check once, the one the rerun built included.
    checks = [(c.asset_key.to_user_string(), c.passed) for c in result.get_asset_check_evaluations()]
    assert sorted(checks) == [(name, True) for name in names(key_of(n) for n in chosen)]


def test_no_credential_reaches_dagster_events_or_logs(simulator, defs, instance, coalesce_scheduler, caplog):
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:2]
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen])
    assert result.success
    body = next(r for r in simulator.requests if r.path == "/scheduler/startRun").body
    assert body["userCredentials"]["snowflakePassword"] == PASSWORD  # it was sent...
    records = instance.get_records_for_run(result.run_id).records
    everything = json.dumps([str(r.event_log_entry) for r in records]) + caplog.text
    assert PASSWORD not in everything and simulator.config.token not in everything  # ...and never shown


def test_the_sensor_does_not_report_nodes_of_a_run_dagster_started(
    simulator, defs, instance, coalesce_scheduler
):
    simulator.state.use_real_clock()
    cursor = tick_run_status_sensor(defs, instance).cursor
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:2]
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen])
    assert result.success
    assert len([c for c in result.get_asset_check_evaluations() if c.check_name == RUN_CHECK_NAME]) == 2
    (run_id,) = simulator.state.started_run_ids
    after = tick_run_status_sensor(defs, instance, cursor)
    # The tick saw the run finish (it requests its load) and reported none of its nodes.
    requested = [request.tags[RUN_IDS_TAG].split(",") for request in after.run_requests]
    assert any(str(run_id) in run_ids for run_ids in requested), requested
    assert not after.asset_events


# A cold `dagster asset materialize` is two interpreter starts (the CLI, then the step's process),
# each loading the definitions: tens of seconds on a busy 2-core machine.
COLD_START_SECONDS = 180


@pytest.mark.long(seconds=30)
@pytest.mark.timeout(2 * COLD_START_SECONDS + 120)
@pytest.mark.parametrize("when", ["while_running", "while_starting"])
def test_terminating_the_dagster_run_cancels_the_coalesce_run(simulator, defs, tmp_path, when):
    """The Dagster run executes in a process of its own (`dagster asset materialize`), as a run
    worker does, and is terminated with SIGTERM while Coalesce is still running the nodes, or while
    its startRun request is still unanswered (then the run's id arrives after the termination, and
    the run must be canceled all the same, not orphaned)."""
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:2]
    home = tmp_path / "dagster_home"
    home.mkdir()
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "coalesce_dagster.definitions",
        "--select",
        ",".join(key_of(n).to_user_string() for n in chosen),
        "--config-json",
        json.dumps({"ops": {node_op_name(defs): {"config": FAST_POLLS}}}),
    ]
    if when == "while_starting":  # startRun is answered only seconds after the SIGTERM is sent
        simulator.faults.fault_path_prefix = "/scheduler/startRun"
        simulator.faults.hang_seconds = 8.0
        simulator.faults.hang_burst = 1
    worker = subprocess.Popen(command, env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=PROJECT_ROOT)
    try:
        if when == "while_starting":
            simulator.wait_for_request(lambda r: r.path == "/scheduler/startRun", timeout=COLD_START_SECONDS)
            worker.send_signal(signal.SIGTERM)
            run_id = simulator.state.wait_for_started_run(1, timeout=30)
        else:
            run_id = simulator.state.wait_for_started_run(1, timeout=COLD_START_SECONDS)
            simulator.state.set_run_status(run_id, "running")  # and it stays running: Coalesce is busy
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=COLD_START_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`dagster asset materialize` did not end within {COLD_START_SECONDS} s of SIGTERM")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    cancels = [r for r in simulator.requests if r.path == "/scheduler/cancelRun"]
    assert len(cancels) == 1
    assert cancels[0].body["runID"] == run_id and cancels[0].body["environmentID"] == ENVIRONMENT
    assert simulator.state.runs[run_id]["runStatus"] == "canceled"
    assert worker.returncode != 0


@pytest.mark.parametrize("cancel_on_termination", [True, False])
def test_a_run_that_outlasts_timeout_seconds_fails_and_is_canceled_unless_told_not_to(
    simulator, defs, instance, cancel_on_termination
):
    """Coalesce never moves the run along: the step gives up after `timeout_seconds`, cancelling the
    run (with the resource's `org_id`), or leaving it running with `cancel_on_termination = false`."""
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:2]
    result = materialize_nodes(
        defs,
        instance,
        [key_of(n) for n in chosen],
        config={"timeout_seconds": 0.5, "cancel_on_termination": cancel_on_termination},
        resource_config={"org_id": "org-7"},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    (run_id,) = simulator.state.started_run_ids
    assert (
        f"Coalesce run {run_id} did not finish within 0.5 s"
        in failure.step_failure_data.user_failure_data.description
    )
    cancels = [r.body for r in simulator.requests if r.path == "/scheduler/cancelRun"]
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    if cancel_on_termination:
        assert cancels == [{"runID": run_id, "environmentID": ENVIRONMENT, "orgID": "org-7"}]
        assert simulator.state.runs[run_id]["runStatus"] == "canceled"
    else:
        assert cancels == []
        assert simulator.state.runs[run_id]["runStatus"] == "waitingToRun"
        assert any(f"Coalesce run {run_id} keeps running" in message for message in logged), logged


def test_a_saved_job_runs_and_only_what_it_built_is_reported(simulator, defs, instance, coalesce_scheduler):
    project = simulator.state.environments[ENVIRONMENT]["project"]
    (marts_job,) = [j for j in simulator.state.projects[project]["jobs"] if j["name"] == "Marts only"]
    marts = [n for n in built_nodes(simulator).values() if n["locationName"] == "MART"]
    outside = next(n for n in built_nodes(simulator).values() if n["locationName"] != "MART")
    # One mart selected (the job builds every mart) and one node the job does not build.
    chosen = [key_of(marts[0]), key_of(outside)]
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(defs, instance, chosen, config={"job_id": str(marts_job["id"])})
    assert result.success
    body = next(r for r in simulator.requests if r.path == "/scheduler/startRun").body
    assert (
        body["runDetails"]["jobID"] == str(marts_job["id"])
        and "includeNodesSelector" not in body["runDetails"]
    )
    reported = [
        e.asset_key for e in result.get_asset_materialization_events() if e.asset_key.path[0] != "coalesce"
    ]
    # The selected mart and the rest the job built, each once; never the selected node it did not build.
    assert names(reported) == names(key_of(n) for n in marts)
    assert key_of(outside) not in reported
    checks = [(c.asset_key, c.passed) for c in result.get_asset_check_evaluations()]
    assert checks == [(key_of(marts[0]), True)]


@pytest.mark.parametrize(
    ("status", "says"), [(503, "may or may not have started"), (403, "nothing was started")]
)
def test_a_failed_start_fails_the_step_with_one_sentence_and_is_not_retried(
    simulator, defs, instance, status, says
):
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:2]
    simulator.faults.status_override = {"/scheduler/startRun": status}
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert says in description.lower()
    assert simulator.request_count("/scheduler/startRun") == 1


@pytest.mark.parametrize("change", ["renamed", "gone"])
def test_an_environment_renamed_or_gone_since_the_snapshot_starts_nothing(simulator, defs, instance, change):
    # The same id may now be another environment (a rename, or another organisation's token on the
    # same host): Coalesce is asked for it just before starting work, and nothing starts.
    chosen = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:1]
    if change == "renamed":
        simulator.state.environments[ENVIRONMENT]["name"] = "Someone else's"
    else:
        simulator.faults.status_override = {f"/api/v1/environments/{ENVIRONMENT}": 404}
    result = materialize_nodes(defs, instance, [key_of(n) for n in chosen], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert "no run was started" in description and "refresh-defs-state" in description
    assert (
        ('is named "Someone else\'s" now' in description)
        if change == "renamed"
        else ("any more" in description)
    )
    assert simulator.request_count("/scheduler/startRun") == 0


def test_a_build_that_loses_sight_of_its_running_run_is_not_retried(simulator, defs, instance, monkeypatch):
    # Under a retry policy, a transient failure is retried, but not while the Coalesce run it started
    # may still be going: the retry would start a second one beside it.
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    (chosen,) = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])[:1]
    simulator.faults.status_override = {"/scheduler/runStatus": 503}
    job = dg.define_asset_job(
        "retried_build", [key_of(chosen)], op_retry_policy=dg.RetryPolicy(max_retries=1)
    )
    retried = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    result = retried.resolve_job_def("retried_build").execute_in_process(
        instance=instance,
        run_config={"ops": {node_op_name(defs): {"config": FAST_POLLS}}},
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert simulator.request_count("/scheduler/startRun") == 1
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "may still be running" in failure.step_failure_data.user_failure_data.description


def test_coalesce_tests_of_the_selected_nodes_report_their_outcomes_once(
    simulator, defs, instance, coalesce_scheduler
):
    """Column tests and test outcomes switched on; the "Not Null" test fails in every run."""
    simulator.faults.column_tests = True
    simulator.faults.test_results = True
    simulator.faults.failing_test = "Not Null"
    store_snapshot(fetch_node_snapshot(resolve_source_settings(), [ENVIRONMENT]))
    defs = build_definitions()
    nodes = sorted(built_nodes(simulator).values(), key=lambda n: n["name"])
    tested = [n for n in nodes if n["metadata"]["appliedNodeTests"]][:1]
    untested = [n for n in nodes if not n["metadata"]["appliedNodeTests"]][:1]
    assert tested and untested
    coalesce_scheduler(("completed", None))
    result = materialize_nodes(defs, instance, [key_of(n) for n in tested + untested], raise_on_error=False)

    column = tested[0]["metadata"]["columns"][0]["name"].lower()
    evaluations = sorted(
        (c.asset_key == key_of(tested[0]), c.check_name, c.passed, c.severity.value)
        for c in result.get_asset_check_evaluations()
    )
    assert evaluations == [  # every check once, none guessed
        (False, "coalesce_run", True, "ERROR"),
        (True, "coalesce_run", True, "ERROR"),
        (True, f"coalesce_test_{column}_not_null", False, "ERROR"),
        (True, f"coalesce_test_{column}_unique", True, "ERROR"),
        (True, "coalesce_test_row_count_greater_than_zero", True, "ERROR"),
    ]
    failed = next(c for c in result.get_asset_check_evaluations() if not c.passed)
    assert "Test 'Not Null' failed" in failed.metadata["coalesce/error"].value
    assert failed.description.startswith(
        f"Coalesce run {simulator.state.started_run_ids[0]}: test 'Not Null'"
    )
    # A failed test that stops Coalesce's run (no continueOnFailure) is a blocking check: it fails
    # the Dagster step too, after the node was reported built (tests are checks, not the build).
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert not result.success and "coalesce_test_" in failure.message and "not_null" in failure.message
    assert {e.asset_key for e in result.get_asset_materialization_events()} >= {
        key_of(n) for n in tested + untested
    }
