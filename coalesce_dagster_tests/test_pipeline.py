"""`coalesce_dagster.pipeline`: how loads are configured."""

import os
import subprocess
import sys

import dlt
import pytest

from coalesce_dagster.pipeline import in_process_normalize


def test_loads_normalize_in_process_as_shipped(monkeypatch):
    monkeypatch.delenv("NORMALIZE__WORKERS")  # the suite's override (conftest): see the shipped value
    assert dlt.config.get("normalize.workers", int) == 1


def test_in_process_normalize_leaves_no_setting_of_its_own_behind(monkeypatch):
    monkeypatch.delenv("NORMALIZE__WORKERS")
    with in_process_normalize():
        assert os.environ["NORMALIZE__WORKERS"] == "1"
    assert "NORMALIZE__WORKERS" not in os.environ


def test_in_process_normalize_restores_a_users_own_setting(monkeypatch):
    monkeypatch.setenv("NORMALIZE__WORKERS", "4")
    with in_process_normalize():
        assert dlt.config.get("normalize.workers", int) == 1
    assert dlt.config.get("normalize.workers", int) == 4


def test_postgres_loads_csv_and_duckdb_parquet(monkeypatch):
    """The file formats measured fastest (docs/benchmark.md); parquet on Postgres would need the ADBC
    driver and otherwise falls back to INSERT statements table by table, with a warning each."""
    from coalesce_dagster.pipeline import make_pipeline, preferred_file_format

    assert preferred_file_format(make_pipeline()) == "parquet"
    monkeypatch.setenv("COALESCE_DAGSTER__DESTINATION", "postgres")
    assert preferred_file_format(make_pipeline()) == "csv"


def test_duckdb_loads_one_job_at_a_time_on_one_thread(simulator, warehouse):
    """The load settings measured to lower a sync's peak memory (docs/benchmark.md, "Memory"): dlt
    runs DuckDB's load jobs one after another, and DuckDB runs each statement on one thread within
    the configured memory limit. A real load (replaced tables, the run results' merge with nested
    rows) goes through with them, and the connections dlt opens carry them."""
    from coalesce_dagster.coalesce.source import coalesce_source
    from coalesce_dagster.pipeline import make_pipeline, run_load
    from coalesce_dagster_tests.expectations import assert_matches_simulator

    assert make_pipeline().destination.capabilities().loader_parallelism_strategy == "sequential"
    run_load(coalesce_source(base_url=simulator.base_url, access_token=simulator.config.token))
    pipeline = make_pipeline()
    with pipeline.sql_client() as client:
        threads, memory_limit = client.execute_sql(
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        )[0]
    assert threads == 1
    assert memory_limit == "91.5 MiB"  # DuckDB's rendering of the shipped 96MB
    assert_matches_simulator(warehouse, simulator)


def test_a_load_runs_on_one_duckdb_connection_closed_and_checkpointed_after(simulator, duckdb_file):
    """`loading_pipeline`: the whole load (dlt's state sync, every load job, a look at the tables
    after) goes through the block's one connection, which carries the load settings; when the block
    ends the file is closed and checkpointed: no write-ahead log is left, and a read-only connection
    (what a user's query opens) sees every row."""
    import duckdb

    from coalesce_dagster.coalesce.source import coalesce_source
    from coalesce_dagster.pipeline import loading_pipeline

    with loading_pipeline() as pipeline:
        held = pipeline.destination.config_params["credentials"].external_conn()
        assert held is not None and duckdb_file.exists()
        pipeline.run(
            coalesce_source(base_url=simulator.base_url, access_token=simulator.config.token),
            loader_file_format="parquet",
        ).raise_on_failed_jobs()
        with pipeline.sql_client() as client:
            (memory_limit,) = client.execute_sql("SELECT current_setting('memory_limit')")[0]
        assert memory_limit == "91.5 MiB"
        assert held.execute("SELECT count(*) FROM coalesce_data.runs").fetchone() == (simulator.config.runs,)
    assert not duckdb_file.with_name(duckdb_file.name + ".wal").exists()
    with duckdb.connect(str(duckdb_file), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM coalesce_data.runs").fetchone() == (
            simulator.config.runs,
        )


def test_a_duckdb_file_given_as_a_url_is_loaded_on_one_connection(simulator, tmp_path, monkeypatch):
    """dlt takes the DuckDB file as a path or as a `duckdb:///` URL: the load opens the file the URL
    names (not a file named after the URL), and loads it."""
    import duckdb

    from coalesce_dagster.coalesce.source import coalesce_source
    from coalesce_dagster.pipeline import run_load

    target = tmp_path / "by-url.duckdb"
    monkeypatch.chdir(tmp_path)  # the URL names a path relative to the working directory
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", "duckdb:///by-url.duckdb")
    run_load(coalesce_source(base_url=simulator.base_url, access_token=simulator.config.token))
    with duckdb.connect(str(target), read_only=True) as reader:
        assert reader.execute("SELECT count(*) FROM coalesce_data.runs").fetchone() == (
            simulator.config.runs,
        )
    assert sorted(path.name for path in tmp_path.iterdir() if "duckdb" in path.name) == ["by-url.duckdb"]


ARENAS_AFTER_A_LOAD = """
import ctypes
from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import run_load
run_load(coalesce_source())
ctypes.CDLL(None).malloc_stats()  # glibc: one "Arena N:" block per arena, on stderr
"""


def _arenas_after_a_load(**env: str) -> int:
    done = subprocess.run([sys.executable, "-c", ARENAS_AFTER_A_LOAD], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc arenas")
def test_a_load_allocates_from_two_malloc_arenas_unless_the_environment_says(simulator):
    """The extract's threads would each take an arena of glibc's, which hold on to what they free
    (docs/benchmark.md, "Memory"); `MALLOC_ARENA_MAX` given to the process wins."""
    assert _arenas_after_a_load() == 2
    assert _arenas_after_a_load(MALLOC_ARENA_MAX="64") > 2
