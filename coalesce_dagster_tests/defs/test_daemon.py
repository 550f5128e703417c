"""Sensor-launched and manually launched runs under the real Dagster daemon, with the committed
dagster.yaml.

The daemon ticks the sensor, which launches one Dagster run per finished Coalesce run, while a run is
also launched by hand; the runs must queue behind each other (they write the same DuckDB file) and
all succeed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster.simulator import SimulatorConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SENSOR_RUNS = 3
LAUNCHED = SENSOR_RUNS + 1  # plus one launched by hand, as from the UI
DEADLINE_SECONDS = 300


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=8, runs=10, results_per_run=4)


def _wait_for_runs(instance: dg.DagsterInstance, daemon: subprocess.Popen, count: int) -> list[dg.DagsterRun]:
    """Poll the instance until `count` runs have finished (bounded; the daemon is a separate process)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "the Dagster daemon exited early"
        runs = instance.get_runs()
        if len(runs) >= count and all(run.is_finished for run in runs):
            return runs
        time.sleep(0.5)  # polling an external process's progress, not synchronising on a guess
    raise AssertionError(f"runs did not finish within {DEADLINE_SECONDS}s: {[r.status for r in instance.get_runs()]}")


def test_sensor_launched_runs_queue_and_all_succeed(simulator, tmp_path, warehouse):
    simulator.state.use_real_clock()
    coalesce_runs = []
    for env_id in ("1", "2", "1"):
        run_id = simulator.state.start_run(env_id)
        simulator.state.set_run_status(run_id, "running")
        simulator.state.set_run_status(run_id, "completed")
        coalesce_runs.append(run_id)

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # the committed settings
    # Create the instance's SQLite storage once, before the daemon and the CLI both try to.
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS": "running",
        "COALESCE_DAGSTER__SENSOR__MINIMUM_INTERVAL_SECONDS": "1",
        "COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST": "1",  # one Dagster run per Coalesce run
        "COALESCE_DAGSTER__SCHEDULES__DEFAULT_STATUS": "stopped",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # A manual launch (what the UI's Materialize does) goes through the same queue.
        launch = subprocess.run(
            [sys.executable, "-m", "dagster", "job", "launch", "-w", str(PROJECT_ROOT / "workspace.yaml"),
             "-j", "coalesce_organisation_job"],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert launch.returncode == 0, launch.stdout[-3000:] + launch.stderr[-3000:]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = _wait_for_runs(instance, daemon, LAUNCHED)
            stats = {run.run_id: instance.get_run_stats(run.run_id) for run in runs}
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    assert len(runs) == LAUNCHED
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), [run.status for run in runs]
    sensor_runs = [run for run in runs if run.tags.get("dagster/sensor_name") == "coalesce_run_status_sensor"]
    assert sorted(int(run.tags["coalesce/run_ids"]) for run in sensor_runs) == sorted(coalesce_runs)
    assert [run.job_name for run in runs if run not in sensor_runs] == ["coalesce_organisation_job"]
    # Queued one behind the other: no two runs were executing at the same time.
    spans = sorted((stats[run.run_id].start_time, stats[run.run_id].end_time) for run in runs)
    for (_, earlier_end), (later_start, _) in zip(spans, spans[1:]):
        assert later_start >= earlier_end
    assert sorted(r for (r,) in warehouse.keys("runs", "id")) == sorted(coalesce_runs)
    assert warehouse.count("users") == len(simulator.state.users)
