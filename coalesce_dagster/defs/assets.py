"""One Dagster asset per Coalesce resource, all produced by one dlt pipeline run."""

import contextlib
from collections.abc import Iterator

import dagster as dg
from dagster_dlt import DagsterDltResource, build_dlt_asset_specs
from pydantic import Field

from ..coalesce.errors import explain, is_transient
from ..coalesce.nodes.snapshot import NodeCollector
from ..coalesce.source import spec_source
from ..configuration import names as settings
from ..pipeline import (
    definition_pipeline,
    in_process_normalize,
    loading_pipeline,
    make_pipeline,
    preferred_file_format,
    private_working_dir,
)
from ..progress import LoadProgress
from ..runtime import freeze_long_lived_objects
from .health.load_checks import evaluate_load_checks, health_settings_for, load_check_specs
from .health.load_metadata import readable_events
from .nodes.state import configured_environments, store_snapshot, stored_snapshot_of
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


# dagster-dlt's `@dlt_assets` is this multi-asset without checks: the load evaluates the checks on
# its tables itself, right after loading (defs/health/), in the same step.
@dg.multi_asset(
    specs=build_dlt_asset_specs(
        dlt_source=_SPEC_SOURCE,
        dlt_pipeline=definition_pipeline(),
        dagster_dlt_translator=CoalesceTranslator(),
    ),
    check_specs=load_check_specs(),
    name=LOAD_OP_NAME,
    can_subset=True,
    pool=settings.CONCURRENCY_POOL,
)
def coalesce_assets(
    context: dg.AssetExecutionContext,
    dagster_dlt: DagsterDltResource,
    coalesce: CoalesceResource,
    config: CoalesceLoadConfig,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    health_settings = health_settings_for(context)  # a bad value stops the run before any request
    freeze_long_lived_objects()
    if not context.selected_asset_keys:  # a checks-only run (the hourly freshness checks): no load
        yield from evaluate_load_checks(context, make_pipeline(), health_settings)
        return
    # A sync of environment nodes also refreshes the node assets' snapshot, from the same answers;
    # without node assets configured there is no snapshot to refresh, and no node worth keeping.
    loads_nodes = asset_key("environment_nodes") in context.selected_asset_keys
    wants_snapshot = loads_nodes and not config.run_ids and bool(configured_environments())
    collector = node_collector(coalesce) if wants_snapshot else None
    source = coalesce.build_source(run_ids=config.run_ids or None, node_collector=collector)
    # A private working dir per run: dlt state and schema are restored from the destination.
    with private_working_dir(f"run-{context.run_id[:8]}-") as working_dir:
        # A load of given runs (the sensor's) is small: normalize it without worker processes.
        normalize_scope = in_process_normalize() if config.run_ids else contextlib.nullcontext()
        try:
            # Both span the lazy iteration of the events, and the checks on the loaded tables.
            with normalize_scope, loading_pipeline(working_dir, LoadProgress(context.log)) as pipeline:
                events = dagster_dlt.run(
                    context=context,
                    dlt_source=source,
                    dlt_pipeline=pipeline,
                    loader_file_format=preferred_file_format(pipeline),
                ).fetch_row_count()
                yield from readable_events(context, events, pipeline, config.run_ids)
                yield from evaluate_load_checks(context, pipeline, health_settings)
            if collector is not None:
                refresh_node_snapshot(context, collector, coalesce.resolved_base_url())
        except Exception as error:
            explanation = explain(error)
            if explanation is None:
                raise
            # One actionable sentence first; dlt's full chain stays attached as the cause. Only a
            # transient failure (429, 5xx, network) may be retried: a refused token fails again.
            raise dg.Failure(description=explanation, allow_retries=is_transient(error)) from error


def node_collector(coalesce: CoalesceResource) -> NodeCollector:
    """Collects the nodes the load reads for the snapshot; an environment it does not re-read keeps
    the stored snapshot's nodes, and one the stored snapshot lacks is read."""
    wanted = configured_environments()
    return NodeCollector(wanted, stored_snapshot_of(coalesce.resolved_base_url()) if wanted else None)


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
        if collector.unchanged(snapshot):
            context.log.info("Node snapshot unchanged: no environment it holds changed since it was stored.")
            return
        path = store_snapshot(snapshot, context.instance)
        context.log.info(
            f"Node snapshot refreshed: {snapshot.node_count} nodes of "
            f"{len(snapshot.environments)} environment(s) in {path}; reload the code location to see them."
        )
    except Exception as error:  # the snapshot is a by-product: never fail a load that succeeded
        context.log.warning(f"Could not refresh the node snapshot: {type(error).__name__}: {error}")
