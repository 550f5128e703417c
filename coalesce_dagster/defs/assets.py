"""One Dagster asset per Coalesce resource, all produced by one dlt pipeline run."""


import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import dagster as dg
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from .. import settings
from ..coalesce.source import coalesce_source
from ..pipeline import make_pipeline
from .resources import CoalesceResource
from .translator import CoalesceTranslator

# The definition-time source only tells Dagster which assets exist; it is never extracted. Explicit
# placeholder arguments keep dlt from looking up config or secrets at import.
_SPEC_SOURCE = coalesce_source(base_url="https://coalesce.invalid", access_token="unused-at-definition-time")


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
    name="coalesce_load",
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
    try:
        yield from dagster_dlt.run(
            context=context, dlt_source=source, dlt_pipeline=make_pipeline(working_dir)
        ).fetch_row_count()
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)


def _ensure_pipelines_dir() -> Path:
    path = settings.pipelines_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path
