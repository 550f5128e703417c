"""Pins the code location: every asset key, dependency, group and resource."""

import functools
import json
import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
from coalesce_dagster.configuration import resolve_source_settings
from coalesce_dagster.definitions import defs
from coalesce_dagster_tests.conftest import ISOLATED_ENV
from coalesce_dagster_tests.project_copy import make_project_copy, newcomer_environment

PROJECT_ROOT = Path(__file__).resolve().parents[2]

HEALTH_VIEW_DEPS = {"coalesce/runs", "coalesce/run_results", "coalesce/environments", "coalesce/jobs"}
EXPECTED_DEPS = {
    "coalesce/environments": set(),
    "coalesce/environment": {"coalesce/environments"},
    "coalesce/environment_nodes": {"coalesce/environments"},
    "coalesce/jobs": {"coalesce/environments"},
    "coalesce/runs": set(),
    "coalesce/run_results": {"coalesce/runs"},
    "coalesce/run_status": {"coalesce/runs"},
    "coalesce/projects": set(),
    "coalesce/users": set(),
    # Health views (defs/health/views.py), downstream of the tables they read.
    "coalesce/health/run_health_daily": HEALTH_VIEW_DEPS,
    "coalesce/health/node_health": HEALTH_VIEW_DEPS,
}


def _asset_graph():
    return defs.get_repository_def().asset_graph


def test_asset_keys_and_dependencies_are_pinned():
    graph = _asset_graph()
    actual = {
        key.to_user_string(): {parent.to_user_string() for parent in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    # No stray external `coalesce_*` keys: every key in the graph is one of ours.
    assert actual == EXPECTED_DEPS


def test_assets_are_grouped_described_and_kinded():
    graph = _asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.is_materializable
        assert node.description, key
        if key.path[1] == "health":
            assert node.group_name == "coalesce_health"
            assert node.automation_condition is not None  # refreshed after the loads they read
            continue
        assert node.group_name == "coalesce"
        assert {"coalesce", "dlt", "duckdb"} <= set(node.kinds)
        # Dagster's freshness: synced daily, so late after 25 hours and stale after 26.
        policy = node.freshness_policy
        assert (policy.warn_window.to_timedelta(), policy.fail_window.to_timedelta()) == (
            timedelta(hours=25),
            timedelta(hours=26),
        )


def test_every_metadata_table_has_its_checks():
    checks = {(key.asset_key.path[-1], key.name) for key in _asset_graph().asset_check_keys}
    tables = [k.path[-1] for k in _asset_graph().get_all_asset_keys() if k.path[1] != "health"]
    assert all((table, "unique_key") in checks for table in tables)
    assert {
        ("run_results", "no_orphans_in_runs"),
        ("run_status", "no_orphans_in_runs"),
        ("environment_nodes", "no_orphans_in_environment"),
        ("jobs", "no_orphans_in_environments"),
        ("runs", "coalesce_freshness"),
        ("runs", "coalesce_failures_in_a_row"),
    } <= checks


def test_resources_jobs_schedules_and_sensors_are_pinned():
    repo = defs.get_repository_def()
    assert set(defs.resources) == {"dagster_dlt", "coalesce"}
    assert {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")} == {
        "coalesce_environments_job",
        "coalesce_organisation_job",
        "coalesce_runs_job",
        "coalesce_freshness_checks_job",
    }
    assert {s.name for s in repo.schedule_defs} == {
        "coalesce_daily_environments",
        "coalesce_daily_organisation",
        "coalesce_daily_runs",
        "coalesce_hourly_freshness_checks",
    }
    # An automation-condition sensor, on by default, refreshes the health views after loads.
    assert {s.name for s in repo.sensor_defs} == {"coalesce_run_status_sensor", "coalesce_health_automation"}
    health = repo.get_sensor_def("coalesce_health_automation")
    assert health.default_status == dg.DefaultSensorStatus.RUNNING
    # It targets the two views by key: never a node asset, whatever a Coalesce environment is named.
    targeted = health.asset_selection.resolve(repo.asset_graph)
    assert {key.to_user_string() for key in targeted} == {
        "coalesce/health/run_health_daily",
        "coalesce/health/node_health",
    }


def test_definitions_validate_without_credentials(tmp_path):
    """`dagster definitions validate` passes with no secrets, no env vars and another cwd."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DAGSTER_HOME"] = str(tmp_path)
    env.pop("DLT_PROJECT_DIR", None)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-w",
            str(PROJECT_ROOT / "workspace.yaml"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


# What a process that loads the code location imports, asked once for the tests below (an interpreter
# that loads the definitions costs seconds of CPU): the destination drivers once the definitions are
# loaded and again once a run's pipeline is built, and the simulator's modules once the assets'
# module is imported too.
LOADED_MODULES_PROBE = """
import gc, json, sys
import coalesce_dagster.definitions
collector = {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
drivers = ("duckdb", "sqlalchemy")
at_load = [name for name in drivers if name in sys.modules]
import coalesce_dagster.defs.assets
simulator = sorted(m for m in sys.modules if m.startswith("coalesce_simulator"))
from coalesce_dagster.pipeline import make_pipeline
make_pipeline()
print(json.dumps({"collector": collector, "drivers_at_load": at_load, "simulator": simulator,
                  "drivers_after_a_run_pipeline": [name for name in drivers if name in sys.modules]}))
"""


@functools.cache
def probe_loaded_modules() -> dict[str, list[str]]:
    """The probe's findings, in a process configured as the tests' own are (conftest.py): nothing
    inherited that points at an account or a shared file, dlt's folders in a temporary one. Cached
    in the test process, not a fixture: xdist may tear a module's fixtures down between two tests."""
    with tempfile.TemporaryDirectory(prefix="loaded-modules-") as folder:
        env = {name: value for name, value in os.environ.items() if name not in ISOLATED_ENV}
        env.update(
            RUNTIME__DLTHUB_TELEMETRY="false",
            COALESCE_DAGSTER_PIPELINES_DIR=str(Path(folder) / "pipelines"),
            DESTINATION__DUCKDB__CREDENTIALS=str(Path(folder) / "coalesce.duckdb"),
        )
        result = subprocess.run(
            [sys.executable, "-c", LOADED_MODULES_PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=PROJECT_ROOT,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.xdist_group("definitions-loaded-modules")
def test_loading_the_definitions_freezes_what_it_made_and_collects_again_after():
    """The definitions load pauses Python's garbage collector and freezes the objects it made
    (`runtime.collections_paused`): the collector is on again once the module is loaded."""
    collector = probe_loaded_modules()["collector"]
    assert collector["enabled"] is True
    assert collector["frozen"] > 100_000


@pytest.mark.xdist_group("definitions-loaded-modules")  # one worker, one probe (--dist loadgroup)
def test_the_product_never_imports_the_simulator():
    """The simulator is a package of its own, for the demo and the tests: loading the code location
    (what a deployment runs) does not import it."""
    assert probe_loaded_modules()["simulator"] == []


@pytest.mark.xdist_group("definitions-loaded-modules")
def test_loading_the_definitions_imports_no_destination_driver():
    """Every process that loads the code location (webserver, daemon, each run) pays for what the
    definitions import: the destination's driver (DuckDB's, and SQLAlchemy, which dlt uses to parse
    its path) waits until a run builds its pipeline. The same probe sees both once it builds one."""
    loaded = probe_loaded_modules()
    assert loaded["drivers_at_load"] == []
    assert loaded["drivers_after_a_run_pipeline"] == ["duckdb", "sqlalchemy"]


# Two definitions loads in a copy of the project, as a newcomer's process runs them: the files of the
# project each load added or rewrote, and how many assets it built. The first finds no node snapshot;
# then the snapshot is stored as the daily sync stores it (Dagster's state folder is created then),
# and the second load builds the node assets from it.
LOAD_PROBE = """
import json, os, sys
from pathlib import Path

def files():
    return {os.path.join(folder, name): os.stat(os.path.join(folder, name)).st_mtime_ns
            for folder, _, names in os.walk(".") for name in names}  # the .venv link is not followed

def changed(before):
    return sorted(name for name, written in files().items() if before.get(name) != written)

before = files()
from coalesce_dagster.definitions import build_definitions, defs
first = {"assets": len(list(defs.resolve_all_asset_keys())), "written": changed(before)}
from coalesce_dagster.coalesce.nodes import NodeSnapshot
from coalesce_dagster.defs.nodes.state import store_snapshot
store_snapshot(NodeSnapshot.from_json(Path(sys.argv[1]).read_text()))
before = files()
second = {"assets": len(list(build_definitions().resolve_all_asset_keys())), "written": changed(before)}
print(json.dumps({"without_snapshot": first, "with_snapshot": second}))
"""


@pytest.mark.long(seconds=10)
@pytest.mark.timeout(180)
def test_loading_the_definitions_writes_nothing_into_the_project(simulator, tmp_path: Path):
    """Every process that loads the code location (webserver, daemon, each run, `dg` commands)
    leaves the project as it found it: dlt's pipeline for the asset specs writes no first-run state
    under `.dlt_pipelines/`, and the node component creates no empty `.local_defs_state/` folder,
    with no node snapshot stored and with one. Nothing asks Coalesce either."""
    project = make_project_copy(tmp_path / "project")
    snapshot = fetch_node_snapshot(resolve_source_settings(), ["Development"])
    (tmp_path / "snapshot.json").write_text(snapshot.to_json())
    requests_before = len(simulator.requests)
    env = newcomer_environment(
        # Python's bytecode cache is Python's own, not the load's (a deployment that wants none sets
        # this variable too): without it the copy would gain __pycache__ folders.
        PYTHONDONTWRITEBYTECODE="1",
        # The copy's package, not the checkout's (the shared .venv's editable install points at the
        # checkout): the state folder and dlt's folders it would write are the copy's.
        PYTHONPATH=str(project),
        SOURCES__COALESCE_SOURCE__BASE_URL=simulator.base_url,  # the snapshot's account
        # A token that works and an environment opted in: everything a load would need to ask
        # Coalesce is there, so "nothing asked" below means nothing was asked, not nothing could be.
        SOURCES__COALESCE_SOURCE__ACCESS_TOKEN=simulator.config.token,
        COALESCE_DAGSTER__NODES__ENVIRONMENTS='["Development"]',
        COALESCE_DAGSTER__NODES__ORCHESTRATE='["Development"]',
    )
    result = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-c", LOAD_PROBE, str(tmp_path / "snapshot.json")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loads = json.loads(result.stdout.strip().splitlines()[-1])
    assert loads["without_snapshot"] == {"assets": len(EXPECTED_DEPS), "written": []}
    assert loads["with_snapshot"]["written"] == []
    assert loads["with_snapshot"]["assets"] >= len(EXPECTED_DEPS) + snapshot.node_count  # an asset per node
    assert len(simulator.requests) == requests_before
