"""A load killed with SIGKILL leaves the destination consistent; the next run completes it exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coalesce_dagster.simulator import SimulatorConfig
from coalesce_dagster_tests.conftest import materialize, on_every_destination
from coalesce_dagster_tests.expectations import assert_matches_simulator

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=3, nodes_per_environment=10, runs=20, results_per_run=4)


def start_load(mode: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "coalesce_dagster_tests.crash_load", mode],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for_hung_request(simulator, prefix: str, load: subprocess.Popen, timeout: float = 120) -> None:
    """Until the load is blocked inside a request the simulator is holding open (status 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert load.poll() is None, "the load ended before reaching the hung request"
        if any(r.path.startswith(prefix) and r.status == 0 for r in simulator.requests):
            return
        time.sleep(0.05)  # polling another process's progress
    raise AssertionError("the load never reached the hung request")


def change_coalesce(sim) -> None:
    sim.state.add_runs(4)
    env_id = next(iter(sim.state.nodes))
    sim.state.delete_node(env_id, next(iter(sim.state.nodes[env_id])))


def test_sigkill_during_extract(simulator, instance, warehouse):
    assert materialize(instance).success
    change_coalesce(simulator)
    before = {table: warehouse.count(table) for table in ("runs", "run_results", "environment_nodes")}
    # The second new run's results never come back: the load is stuck mid-extract, then killed.
    hung = f"/api/v1/runs/{max(simulator.state.runs) - 1}/results"
    simulator.faults.update({"hang_burst": 1, "hang_seconds": 120, "fault_path_prefix": hung})
    load = start_load("dagster")
    wait_for_hung_request(simulator, hung, load)
    load.send_signal(signal.SIGKILL)
    load.wait(timeout=30)

    assert {table: warehouse.count(table) for table in before} == before  # nothing half-written
    simulator.faults.reset()
    assert materialize(instance).success
    assert_matches_simulator(warehouse, simulator)


@on_every_destination
@pytest.mark.parametrize("mode", ["after-normalize"])
def test_sigkill_between_steps(simulator, instance, warehouse, mode):
    assert materialize(instance).success
    change_coalesce(simulator)
    before = {table: warehouse.count(table) for table in ("runs", "run_results", "environment_nodes")}
    load = start_load(mode)
    assert load.wait(timeout=120) == -signal.SIGKILL

    assert {table: warehouse.count(table) for table in before} == before
    assert materialize(instance).success
    # ...including the new runs: the killed load's frontier was never committed.
    assert_matches_simulator(warehouse, simulator)


def _jobs(pipelines_dir: Path, state: str) -> list[Path]:
    return list(pipelines_dir.glob(f"*/coalesce_pipeline/load/normalized/*/{state}/*"))


def _kill_mid_load(pipelines_dir: Path, load: subprocess.Popen, fraction: float, timeout: float = 120) -> bool:
    """Freeze the loader once `fraction` of its load jobs (at least one) completed, then kill it.

    True when jobs were still waiting at that moment, i.e. the kill really landed mid-load."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and load.poll() is None:
        done = len(_jobs(pipelines_dir, "completed_jobs"))
        waiting = len(_jobs(pipelines_dir, "new_jobs") + _jobs(pipelines_dir, "started_jobs"))
        if done and done >= fraction * (done + waiting):
            load.send_signal(signal.SIGSTOP)
            pending = _jobs(pipelines_dir, "new_jobs") + _jobs(pipelines_dir, "started_jobs")
            load.send_signal(signal.SIGKILL)
            load.wait(timeout=30)
            return bool(pending)
        time.sleep(0.001)  # polling another process's progress
    load.kill()
    load.wait(timeout=30)
    return False


@on_every_destination
@pytest.mark.parametrize("fraction", [0.6], ids=["most_jobs_done"])
def test_sigkill_during_load(simulator, instance, warehouse, tmp_path, fraction):
    """Killed between load jobs (some tables written, others not), the next run repairs everything."""
    assert materialize(instance).success
    for _attempt in range(5):  # the load is fast; retry until the kill lands between its jobs
        change_coalesce(simulator)
        # One load worker: jobs run one after another, so there is a "between" to land in.
        load = start_load("dagster", LOAD__WORKERS="1")
        if _kill_mid_load(tmp_path / "pipelines", load, fraction):
            break
    else:
        pytest.fail("could not kill the load between its jobs in 5 attempts")

    assert materialize(instance).success
    assert_matches_simulator(warehouse, simulator)
