"""`./scripts/demo.sh` as a newcomer meets it: a mistake costs no data, and the reason comes last.

Each test runs the real command in a throwaway copy of the project (`project_copy.py`). The
successful run, with its progress lines and clean files, is checked where the README runs it
(`test_readme.py`).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from coalesce_dagster_tests.project_copy import make_project_copy, newcomer_environment
from coalesce_simulator import SimulatorConfig

BAD_SETTINGS = {
    "SOURCES__COALESCE_SOURCE__PAGE_SIZE": "two-fifty",
    "COALESCE_DAGSTER__SCHEDULES__RUNS_CRON": "every morning",
    "COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST": "0",
}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=4, runs=5, results_per_run=2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project_copy(tmp_path / "coalesce-dagster")


def demo(project: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["./scripts/demo.sh"],
        cwd=project,
        env=newcomer_environment(**env),
        capture_output=True,
        text=True,
        timeout=240,  # inside pytest's per-test 300 s, so a hung demo fails here, naming the command
    )


def test_a_bad_setting_is_named_and_nothing_is_touched(project):
    demo_file = project / "coalesce_demo.duckdb"
    with duckdb.connect(str(demo_file)) as con:
        con.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    history = project / ".dagster_home" / "demo" / "kept.txt"
    history.parent.mkdir(parents=True)
    history.write_text("earlier demo history")

    result = demo(project, **BAD_SETTINGS)

    assert result.returncode == 2, result.stdout + result.stderr
    assert "nothing was loaded or changed" in result.stderr
    assert "[sources.coalesce_source] page_size = 'two-fifty' is not a whole number" in result.stderr
    assert (
        "[coalesce_dagster.schedules] runs_cron = 'every morning' is not a cron expression" in result.stderr
    )
    assert (
        "[coalesce_dagster.sensor] max_runs_per_request = '0' must be a whole number of at least 1"
        in result.stderr
    )
    assert "simulator" not in result.stdout  # refused before starting anything
    with duckdb.connect(str(demo_file), read_only=True) as con:
        assert con.sql("SELECT answer FROM kept").fetchall() == [(42,)]
    assert history.read_text() == "earlier demo history"


def test_bad_settings_never_stop_the_definitions_from_loading(project, tmp_path):
    env = newcomer_environment(DAGSTER_HOME=str(tmp_path), **BAD_SETTINGS)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = subprocess.run(
        [str(project / ".venv/bin/dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "runs_cron = 'every morning' is not a cron expression" in output  # said, not fatal


def test_a_failed_load_ends_with_its_reason_and_leaves_no_file(project, simulator):
    result = demo(
        project,
        SOURCES__COALESCE_SOURCE__BASE_URL=simulator.base_url,
        SOURCES__COALESCE_SOURCE__ACCESS_TOKEN="revoked-token",
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("FAILED: Coalesce rejected the access token (401)"), result.stderr[-2000:]
    assert "revoked-token" not in result.stdout + result.stderr
    assert not (project / "coalesce.duckdb").exists()  # a failed first load leaves no empty file

    # A file that is there already is never touched by a load that fails.
    with duckdb.connect(str(project / "coalesce.duckdb")) as connection:
        connection.execute("CREATE TABLE kept AS SELECT 42 AS answer")
    kept = (project / "coalesce.duckdb").read_bytes()
    again = demo(
        project,
        SOURCES__COALESCE_SOURCE__BASE_URL=simulator.base_url,
        SOURCES__COALESCE_SOURCE__ACCESS_TOKEN="revoked-token",
    )
    assert again.returncode == 1
    assert (project / "coalesce.duckdb").read_bytes() == kept
