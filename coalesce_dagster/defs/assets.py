"""One Dagster asset per Coalesce resource, all produced by one dlt pipeline run."""

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, dlt_assets
from pydantic import Field

from .. import settings
from ..coalesce.errors import explain, is_transient
from ..coalesce.node_snapshot import NodeCollector
from ..coalesce.runs import RUN_TABLES
from ..coalesce.source import spec_source
from ..coalesce.types import FAILED_NODE_STATES
from ..pipeline import (
    definition_pipeline,
    in_process_normalize,
    make_pipeline,
    no_new_file_left_on_failure,
    preferred_file_format,
)
from ..progress import LoadProgress
from .node_state import configured_environments, store_snapshot
from .resources import CoalesceResource
from .translator import CoalesceTranslator, asset_key

# The definition-time source only tells Dagster which assets exist; it is never extracted, and
# building it reads no config or secrets.
_SPEC_SOURCE = spec_source()


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
    dlt_pipeline=definition_pipeline(),
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
    # A sync of environment nodes also refreshes the node assets' snapshot, from the same answers.
    loads_nodes = asset_key("environment_nodes") in context.selected_asset_keys
    collector = NodeCollector() if loads_nodes and not config.run_ids else None
    source = coalesce.build_source(run_ids=config.run_ids or None, node_collector=collector)
    # A private working dir per run: dlt state and schema are restored from the destination.
    working_dir = Path(tempfile.mkdtemp(prefix=f"run-{context.run_id[:8]}-", dir=_ensure_pipelines_dir()))
    pipeline = make_pipeline(working_dir, progress=LoadProgress(context.log))
    # A load of given runs (the sensor's) is small: normalize it without worker processes.
    normalize_scope = in_process_normalize() if config.run_ids else contextlib.nullcontext()
    try:
        with normalize_scope, no_new_file_left_on_failure(pipeline):  # span the lazy iteration
            events = dagster_dlt.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                loader_file_format=preferred_file_format(pipeline),
            ).fetch_row_count()
            yield from _with_coalesce_run_metadata(context, events, pipeline, config.run_ids)
        if collector is not None:
            refresh_node_snapshot(context, collector, coalesce.resolved_base_url())
    except Exception as error:
        explanation = explain(error)
        if explanation is None:
            raise
        # One actionable sentence first; dlt's full chain stays attached as the cause. Only a
        # transient failure (429, 5xx, network) may be retried: a refused token fails again.
        raise dg.Failure(description=explanation, allow_retries=is_transient(error)) from error
    finally:
        shutil.rmtree(working_dir, ignore_errors=True)


def _with_coalesce_run_metadata(
    context: dg.AssetExecutionContext, events: Iterator[Any], pipeline: dlt.Pipeline, run_ids: list[int]
) -> Iterator[Any]:
    """When loading given Coalesce runs, name them, their status and UI links on each run asset.

    Metadata is added to dagster-dlt's own events (as its `fetch_row_count` does), keeping every
    field they carry."""
    extra: dict[str, Any] | None = None
    for event in events:
        if (
            run_ids
            and isinstance(event, dg.MaterializeResult)
            and event.asset_key is not None
            and event.asset_key.path[-1] in RUN_TABLES
        ):
            if extra is None:
                extra = _loaded_runs_metadata(context, pipeline, run_ids)
            event = event._replace(metadata={**(event.metadata or {}), **extra})
        yield event


def _loaded_runs_metadata(
    context: dg.AssetExecutionContext, pipeline: dlt.Pipeline, run_ids: list[int]
) -> dict[str, Any]:
    ids = sorted({int(run_id) for run_id in run_ids})
    metadata: dict[str, Any] = {"coalesce/run_ids": dg.MetadataValue.json(ids)}
    id_list = ", ".join(str(run_id) for run_id in ids)  # ints only: safe to inline
    failed_states = ", ".join(f"'{state}'" for state in sorted(FAILED_NODE_STATES))
    try:
        with pipeline.sql_client() as client:
            runs, results, status = (
                client.make_qualified_table_name(t) for t in ("runs", "run_results", "run_status")
            )
            rows = (
                client.execute_sql(
                    f"SELECT r.id, r.run_status, r.run_type, r.environment_id, s.run_link FROM {runs} r "
                    f"LEFT JOIN {status} s ON s.run_id = r.id WHERE r.id IN ({id_list}) ORDER BY r.id"
                )
                or []
            )
            failed_nodes: dict[int, int] = {
                int(run_id): int(count)
                for run_id, count in client.execute_sql(
                    f"SELECT run_id, count(*) FROM {results} WHERE run_id IN ({id_list}) "
                    f"AND lower(run_state) IN ({failed_states}) GROUP BY run_id"
                )
                or []
            }
    except Exception as error:  # metadata is a courtesy: never fail a load over it
        context.log.warning(f"Could not read back the loaded Coalesce runs: {error}")
        return metadata
    lines = ["| run | status | type | environment | failed nodes |", "|---|---|---|---|---|"]
    for run_id, status, run_type, env, link in rows:
        # Only the link Coalesce's scheduler gave; a run without one is named, not linked.
        name = f"[{run_id}]({link})" if link else str(run_id)
        lines.append(f"| {name} | {status} | {run_type} | {env} | {failed_nodes.get(run_id, 0)} |")
    metadata["coalesce/runs"] = dg.MetadataValue.md("\n".join(lines))
    statuses: dict[str, int] = {}
    for _, status, *_ in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    metadata["coalesce/run_statuses"] = dg.MetadataValue.json(statuses)
    metadata["coalesce/failed_nodes"] = dg.MetadataValue.int(sum(failed_nodes.values()))
    if len(rows) == 1 and rows[0][4]:
        metadata["coalesce/run_link"] = dg.MetadataValue.url(rows[0][4])
    return metadata


def refresh_node_snapshot(context: dg.AssetExecutionContext, collector: NodeCollector, base_url: str) -> None:
    """Store the nodes this load read from the account at `base_url` as the node assets' snapshot
    (they appear at the next definitions reload). Never fails the load: the tables are in already."""
    try:
        wanted = configured_environments()
        if not wanted:
            return
        snapshot, unmatched = collector.snapshot(wanted, base_url)
        if unmatched:
            context.log.warning(
                f"[coalesce_dagster.nodes] environments {unmatched} matched no environment this load "
                "read; their node assets are left as they were."
            )
        if snapshot is None:
            return
        path = store_snapshot(snapshot, context.instance)
        context.log.info(
            f"Node snapshot refreshed: {snapshot.node_count} nodes of "
            f"{len(snapshot.environments)} environment(s) in {path}; reload the code location to see them."
        )
    except Exception as error:  # the snapshot is a by-product: never fail a load that succeeded
        context.log.warning(f"Could not refresh the node snapshot: {type(error).__name__}: {error}")


def _ensure_pipelines_dir() -> Path:
    path = settings.pipelines_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path
