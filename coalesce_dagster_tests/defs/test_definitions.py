"""Pins the code location: every asset key, dependency, group and resource."""

import os
import subprocess
import sys
from pathlib import Path

from coalesce_dagster.definitions import defs

PROJECT_ROOT = Path(__file__).resolve().parents[2]

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
        assert node.group_name == "coalesce"
        assert node.is_materializable
        assert {"coalesce", "dlt", "duckdb"} <= set(node.kinds)
        assert node.description, key


def test_resources_jobs_schedules_and_sensors_are_pinned():
    repo = defs.get_repository_def()
    assert set(defs.resources) == {"dagster_dlt", "coalesce"}
    assert {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")} == {
        "coalesce_environments_job",
        "coalesce_organisation_job",
        "coalesce_runs_job",
    }
    assert {s.name for s in repo.schedule_defs} == {
        "coalesce_daily_environments",
        "coalesce_daily_organisation",
        "coalesce_daily_runs",
    }
    assert {s.name for s in repo.sensor_defs} == {"coalesce_run_status_sensor"}


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


def test_the_product_never_imports_the_simulator():
    """The simulator is a package of its own, for the demo and the tests: loading the code location
    (what a deployment runs) does not import it."""
    probe = (
        "import sys, coalesce_dagster.definitions, coalesce_dagster.defs.assets; "
        "print(sorted(m for m in sys.modules if m.startswith('coalesce_simulator')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
