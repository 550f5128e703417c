"""One Dagster asset per Coalesce resource, all produced by one dlt pipeline run."""


import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from .. import settings
from ..coalesce.errors import explain
from ..coalesce.runs import RUN_TABLES
from ..coalesce.source import coalesce_source
from ..pipeline import in_process_normalize, make_pipeline, preferred_file_format
from .resources import CoalesceResource
from .translator import CoalesceTranslator

# The definition-time source only tells Dagster which assets exist; it is never extracted. Explicit
# placeholder arguments keep dlt from looking up config or secrets at import.
_SPEC_SOURCE = coalesce_source(base_url="https://coalesce.invalid", access_token="unused-at-definition-time")


# Run config of a load lives under this op name: {"ops": {"coalesce_load": {"config": {...}}}}.
LOAD_OP_NAME = "coalesce_load"


class CoalesceLoadConfig(dg.Config):
    """Run config of a Coalesce load."""

    run_ids: list[int] = Field(
        default_factory=list,
        description="Load exactly these Coalesce runs (with their results and status) instead of "
        "syncing every new run. Used by the run-status sensor; leave empty for a full sync.",
    )


@dlt_assets(
    dlt_source=_SPEC_SOURCE,
    dlt_pipeline=make_pipeline(),
    name=LOAD_OP_NAME,
    dagster_dlt_translator=CoalesceTranslator(),
    pool=settings.CONCURRENCY_POOL,
)
def coalesce_assets(
    context: dg.AssetExecutionContext,
    dagster_dlt: DagsterDltResource,
    coalesce: CoalesceResource,
    config: CoalesceLoadConfig,
) -> Iterator[dg.MaterializeResult]:
    source = coalesce.build_source(run_ids=config.run_ids or None)
    # A private working dir per run: dlt state and schema are restored from the destination.
    working_dir = Path(tempfile.mkdtemp(prefix=f"run-{context.run_id[:8]}-", dir=_ensure_pipelines_dir()))
    pipeline = make_pipeline(working_dir)
    # A load of given runs (the sensor's) is small: normalize it without worker processes.
    normalize_scope = in_process_normalize() if config.run_ids else contextlib.nullcontext()
    try:
        with normalize_scope:  # spans the iteration: dagster-dlt runs the pipeline lazily
            events = dagster_dlt.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                loader_file_format=preferred_file_format(pipeline),
            ).fetch_row_count()
            yield from _with_coalesce_run_metadata(context, events, pipeline, config.run_ids)
    except Exception as error:
        explanation = explain(error)
        if explanation is None:
            raise
        # One actionable sentence first; dlt's full chain stays attached as the cause.
        raise dg.Failure(description=explanation, allow_retries=True) from error
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)


def _with_coalesce_run_metadata(
    context: dg.AssetExecutionContext, events: Iterator[Any], pipeline: dlt.Pipeline, run_ids: list[int]
) -> Iterator[Any]:
    """When loading given Coalesce runs, name them, their status and UI links on each run asset."""
    extra: Optional[dict[str, Any]] = None
    for event in events:
        if run_ids and isinstance(event, dg.MaterializeResult) and event.asset_key.path[-1] in RUN_TABLES:
            if extra is None:
                extra = _loaded_runs_metadata(context, pipeline, run_ids)
            event = dg.MaterializeResult(
                asset_key=event.asset_key,
                metadata={**(event.metadata or {}), **extra},
                check_results=event.check_results,
                data_version=event.data_version,
                tags=event.tags,
            )
        yield event


def _loaded_runs_metadata(context: dg.AssetExecutionContext, pipeline: dlt.Pipeline, run_ids: list[int]) -> dict[str, Any]:
    ids = sorted({int(run_id) for run_id in run_ids})
    metadata: dict[str, Any] = {"coalesce/run_ids": dg.MetadataValue.json(ids)}
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("runs")
            placeholders = ", ".join(str(run_id) for run_id in ids)  # ints only: safe to inline
            rows = client.execute_sql(
                f"SELECT id, run_status, run_type, environment_id, run_link FROM {table} "
                f"WHERE id IN ({placeholders}) ORDER BY id"
            )
    except Exception as error:  # metadata is a courtesy: never fail a load over it
        context.log.warning(f"Could not read back the loaded Coalesce runs: {error}")
        return metadata
    lines = ["| run | status | type | environment |", "|---|---|---|---|"]
    lines += [f"| [{rid}]({link}) | {status} | {rtype} | {env} |" for rid, status, rtype, env, link in rows]
    metadata["coalesce/runs"] = dg.MetadataValue.md("\n".join(lines))
    statuses: dict[str, int] = {}
    for _, status, *_ in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    metadata["coalesce/run_statuses"] = dg.MetadataValue.json(statuses)
    if len(rows) == 1:
        metadata["coalesce/run_link"] = dg.MetadataValue.url(rows[0][4])
    return metadata


def _ensure_pipelines_dir() -> Path:
    path = settings.pipelines_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path
