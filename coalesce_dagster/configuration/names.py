"""Fixed names and paths shared by the Dagster definitions, the demo command and the tests.

Nothing here reads dlt configuration or secrets, or calls Coalesce: settings are resolved by
`sections.py`. The one value read from the environment, the pipelines folder, is read when asked.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # coalesce_dagster/configuration/names.py
# A checkout (or the Docker image's editable install) has its committed `.dlt/` beside the package.
IN_CHECKOUT = (PROJECT_ROOT / ".dlt").is_dir()
# The project whose data and node snapshot these are: this checkout, or, installed as a package into
# another dg project (docs/components.md), the folder its Dagster and dg commands run in (that
# project's root), never the environment's site-packages.
USER_PROJECT_ROOT = PROJECT_ROOT if IN_CHECKOUT else Path.cwd()

PIPELINE_NAME = "coalesce_pipeline"
DEFAULT_DUCKDB_PATH = USER_PROJECT_ROOT / "coalesce.duckdb"
# Every dlt asset writing to the destination runs in this Dagster concurrency pool (limit 1), so a
# schedule, the sensor and a UI click never load into the same DuckDB file / dlt state at once.
CONCURRENCY_POOL = "coalesce_destination"

GROUP_NAME = "coalesce"
KEY_PREFIX = "coalesce"


# dlt's working folders: an environment variable only, read before dlt's config is (see `pipeline.py`).
PIPELINES_DIR_ENV = "COALESCE_DAGSTER_PIPELINES_DIR"
DEFAULT_PIPELINES_DIR = USER_PROJECT_ROOT / ".dlt_pipelines"


def pipelines_dir() -> Path:
    """Where dlt keeps pipeline working folders (state is restored from the destination each run)."""
    configured = os.environ.get(PIPELINES_DIR_ENV)
    return Path(configured) if configured else DEFAULT_PIPELINES_DIR
