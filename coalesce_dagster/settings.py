"""Names and paths shared by the Dagster definitions, the demo command and the tests.

Nothing here reads secrets or calls Coalesce; the destination *name* is read from dlt config because
it decides the asset kinds shown in the UI, and it is not a secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dlt

PROJECT_ROOT = Path(__file__).resolve().parent.parent

PIPELINE_NAME = "coalesce_pipeline"
DEFAULT_DATASET_NAME = "coalesce_data"
DEFAULT_DESTINATION = "duckdb"
DEFAULT_DUCKDB_PATH = PROJECT_ROOT / "coalesce.duckdb"
# DuckDB's default memory limit is 80% of RAM; merging a million run results then holds a large part
# of it. A limit makes DuckDB spill to disk instead.
DEFAULT_DUCKDB_MEMORY_LIMIT = "128MB"
# Every dlt asset writing to the destination runs in this Dagster concurrency pool (limit 1), so a
# schedule, the sensor and a UI click never load into the same DuckDB file / dlt state at once.
CONCURRENCY_POOL = "coalesce_destination"

GROUP_NAME = "coalesce"
KEY_PREFIX = "coalesce"


def destination_name() -> str:
    """The dlt destination to load into: `[coalesce_dagster] destination` / COALESCE_DAGSTER__DESTINATION."""
    return str(dlt.config.get("coalesce_dagster.destination") or DEFAULT_DESTINATION)


def dataset_name() -> str:
    return str(dlt.config.get("coalesce_dagster.dataset_name") or DEFAULT_DATASET_NAME)


def pipelines_dir() -> Path:
    """Where dlt keeps pipeline working folders (state is restored from the destination each run)."""
    configured = os.environ.get("COALESCE_DAGSTER_PIPELINES_DIR")
    return Path(configured) if configured else PROJECT_ROOT / ".dlt_pipelines"


def setting(key: str, default: str) -> str:
    """A non-secret `[coalesce_dagster]` setting (e.g. `schedules.timezone`), as text.

    Read from `.dlt/config.toml` or COALESCE_DAGSTER__<SECTION>__<KEY>; used for schedule and sensor
    options, which Dagster needs when it loads definitions.
    """
    value: Any = dlt.config.get(f"coalesce_dagster.{key}")
    return default if value is None or str(value).strip() == "" else str(value).strip()
