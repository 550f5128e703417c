"""A load killed with SIGKILL leaves every table of the destination whole; the next run completes it
exactly.

The kill lands at a known point each time, never by racing the load: mid-extract once the simulator
holds one of the load's requests (it signals the arrival), after normalize and in the middle of the
load step by the killed process itself (`coalesce_dagster_tests/crash_load.py`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coalesce_dagster_tests.crash_load import LAST_TABLE
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_dagster_tests.helpers import contents, materialize, on_every_destination
from coalesce_simulator import SimulatorConfig

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


def change_coalesce(sim) -> None:
    """Changes to runs, nodes and users, so the next load has something new for every kind of table."""
    sim.state.add_runs(4)
    env_id = next(iter(sim.state.nodes))
    sim.state.deploy(env_id, remove=[next(iter(sim.state.nodes[env_id]))])
    for user in sim.state.users.values():
        user["lastName"] += " (renamed)"


@pytest.mark.long
def test_sigkill_during_extract(simulator, instance, warehouse):
    assert materialize(instance).success
    change_coalesce(simulator)
    before = contents(warehouse)
    # The second new run's results never come back: the load is stuck mid-extract, then killed.
    hung = f"/api/v1/runs/{max(simulator.state.runs) - 1}/results"
    simulator.faults.update({"hang_burst": 1, "hang_seconds": 120, "fault_path_prefix": hung})
    load = start_load("dagster")
    try:
        simulator.wait_for_request(lambda r: r.path == hung and r.status == 0, timeout=120)
    finally:
        load.send_signal(signal.SIGKILL)
        load.wait(timeout=30)

    assert contents(warehouse) == before  # nothing half-written, in any table
    simulator.faults.reset()
    assert materialize(instance).success
    assert_matches_simulator(warehouse, simulator)


@on_every_destination
def test_sigkill_between_normalize_and_load(simulator, instance, warehouse):
    assert materialize(instance).success
    change_coalesce(simulator)
    before = contents(warehouse)
    load = start_load("after-normalize")
    assert load.wait(timeout=120) == -signal.SIGKILL

    assert contents(warehouse) == before
    assert materialize(instance).success
    # ...including the new runs: the killed load's frontier was never committed.
    assert_matches_simulator(warehouse, simulator)


@on_every_destination
def test_sigkill_during_load_leaves_every_table_old_or_new(simulator, instance, warehouse):
    """Killed in the load step with every table loaded but one: each table holds either all of its
    old rows or all of its new ones (replaced tables are swapped in from staging, merged tables
    merged from it, one transaction each), and the next run completes the rest."""
    assert materialize(instance).success
    old = contents(warehouse)
    change_coalesce(simulator)
    # One load worker: jobs run one after another, so "all but one table" is a point in the load.
    load = start_load("before-users-load", LOAD__WORKERS="1")
    assert load.wait(timeout=120) == -signal.SIGKILL
    killed = contents(warehouse)

    assert materialize(instance).success
    new = contents(warehouse)
    assert_matches_simulator(warehouse, simulator)
    assert killed[LAST_TABLE] == old[LAST_TABLE] != new[LAST_TABLE], (
        "a table whose load never started changed"
    )
    changed = [table for table in new if table != LAST_TABLE and killed.get(table) != new[table]]
    assert not changed, f"tables neither old nor new after the kill: {changed}"
    assert [table for table in new if old.get(table) != new[table]] != [LAST_TABLE], (
        "the kill was not mid-load"
    )


def test_sigkill_after_the_nodes_merged_reads_the_deployed_environment_again(simulator, instance, warehouse):
    """The node rows of a deployed environment are merged before the kill, but the state saying they
    were read is stored only with a complete load: the next run reads that environment again (and
    only it), and its rows end exactly Coalesce's, once each."""
    for run_id, run in simulator.state.runs.items():  # a deploy in flight is read on every sync
        if run["runStatus"] not in ("completed", "failed", "canceled"):
            simulator.state.set_run_status(run_id, "completed")
    assert materialize(instance).success
    env_id = sorted(simulator.state.nodes)[0]
    _, (added,) = simulator.state.deploy(env_id, add=1, remove=[sorted(simulator.state.nodes[env_id])[0]])

    load = start_load("before-users-load", LOAD__WORKERS="1")
    assert load.wait(timeout=120) == -signal.SIGKILL
    assert (env_id, added) in set(warehouse.keys("environment_nodes", "environment_id", "id"))

    simulator.reset_request_log()
    assert materialize(instance).success
    assert {r.path for r in simulator.requests if r.path.endswith("/nodes")} == {
        f"/api/v1/environments/{env_id}/nodes"
    }
    assert_matches_simulator(warehouse, simulator)
    assert warehouse.count("environment_nodes__columns") == sum(
        len(node["metadata"]["columns"])
        for nodes in simulator.state.nodes.values()
        for node in nodes.values()
    )
