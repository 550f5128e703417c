"""The dlt pipeline every load goes through: one pipeline, one dataset, one table per resource."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dlt
from dlt.common.destination.reference import Destination

from . import settings


def make_destination() -> Destination:
    name = settings.destination_name()
    if name == "duckdb":
        path = settings.duckdb_path()
        # With no credentials given, dlt resolves `destination.duckdb.credentials` when it loads.
        return dlt.destinations.duckdb(credentials=str(path)) if path else dlt.destinations.duckdb()
    return Destination.from_reference(name)


def make_pipeline(working_dir: Optional[Path] = None) -> dlt.Pipeline:
    """A fresh pipeline object.

    Build one per run: dagster-dlt mutates the schema of a pipeline it has run once (dagster#34052),
    and a separate working dir per run keeps concurrent runs from wiping each other's load packages
    (dagster#21022). State and schema come back from the destination at the start of each run.
    """
    return dlt.pipeline(
        pipeline_name=settings.PIPELINE_NAME,
        pipelines_dir=str(working_dir or settings.pipelines_dir()),
        destination=make_destination(),
        dataset_name=settings.dataset_name(),
    )
