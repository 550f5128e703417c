"""`coalesce_dagster.pipeline`: how loads are configured."""

import os

import dlt

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
