"""The baseline: the plain pipeline a user would write from dlt's own Coalesce docs page.

One declarative `rest_api_source`: the Coalesce base URL with bearer auth, Coalesce's cursor paging
(`next` in the body, sent back as `startingFrom`), the `data` envelope, and one resource per
endpoint, child endpoints resolved from their parent (`{resources.environments.id}`,
`{resources.runs.id}`). Primary keys and `merge` everywhere. Nothing tuned: no page sizes (the
server's default, 25), no parallelism, no incremental loading (every run's results and status are
fetched on every load), dlt's default settings and loader file format, into DuckDB.

One addition the docs' snippet needs in practice: `orderBy=id` on the paged lists, because Coalesce
answers 400 to a `startingFrom` cursor sent without the sort it belongs to (API docs §4.2).

It imports nothing from `coalesce_dagster`, and the benchmark runs it with `DLT_PROJECT_DIR`
pointing at an empty folder, so the project's `.dlt/config.toml` does not apply either.
"""

from __future__ import annotations

from typing import Any

import dlt
from dlt.sources.rest_api import rest_api_source

PIPELINE_NAME = "coalesce_baseline"
DATASET_NAME = "coalesce_data"


def baseline_config(base_url: str, access_token: str) -> dict[str, Any]:
    return {
        "client": {
            "base_url": base_url.rstrip("/") + "/",
            "auth": {"type": "bearer", "token": access_token},
            "paginator": {"type": "cursor", "cursor_path": "next", "cursor_param": "startingFrom"},
        },
        "resource_defaults": {
            "write_disposition": "merge",
            "endpoint": {"data_selector": "data"},
        },
        "resources": [
            {
                "name": "environments",
                "primary_key": "id",
                "endpoint": {"path": "api/v1/environments", "params": {"orderBy": "id"}},
            },
            {
                "name": "environment",
                "primary_key": "id",
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}",
                    "data_selector": "$",
                    "paginator": "single_page",
                },
            },
            {
                "name": "environment_nodes",
                "primary_key": ["_environments_id", "id"],
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}/nodes",
                    "params": {"detail": "true", "orderBy": "id"},
                },
            },
            {
                "name": "jobs",
                "primary_key": ["_environments_id", "id"],
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}/jobs",
                    "params": {"orderBy": "id"},
                },
            },
            {
                "name": "runs",
                "primary_key": "id",
                "endpoint": {"path": "api/v1/runs", "params": {"detail": "true", "orderBy": "id"}},
            },
            {
                "name": "run_results",
                "primary_key": ["_runs_id", "node_id"],
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/runs/{resources.runs.id}/results",
                    "data_selector": "data",
                    "paginator": "single_page",
                },
            },
            {
                "name": "run_status",
                "primary_key": "_runs_id",
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "scheduler/runStatus",
                    "params": {"runCounter": "{resources.runs.id}"},
                    "data_selector": "$",
                    "paginator": "single_page",
                },
            },
            {
                "name": "projects",
                "primary_key": "id",
                "endpoint": {"path": "api/v1/projects"},
            },
            {
                "name": "users",
                "primary_key": "id",
                "endpoint": {"path": "api/v1/users", "params": {"orderBy": "id"}},
            },
        ],
    }


def baseline_source(base_url: str, access_token: str) -> Any:
    return rest_api_source(baseline_config(base_url, access_token), name="coalesce")


def baseline_pipeline(duckdb_path: str, pipelines_dir: str) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        pipelines_dir=pipelines_dir,
        destination=dlt.destinations.duckdb(credentials=duckdb_path),
        dataset_name=DATASET_NAME,
    )
