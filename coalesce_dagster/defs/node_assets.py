"""Coalesce's nodes as Dagster assets, built from a stored snapshot (never from a live API call).

Per configured environment, the nodes Coalesce builds become one multi-asset (so a later run can
build any subset of them), each with a `coalesce_run` asset check that says whether Coalesce's
last run of the node succeeded; source nodes become plain asset specs. Lineage comes from each
node's `sourceMapping`; problems in it (a dependency naming no node, a cycle, two nodes on one key)
are logged and left out, never fatal.

Materializations and check results arrive from Coalesce's own runs through the run-status sensor
(`sensors.py`), as dagster-dbt's polling sensor reports dbt Cloud runs, and from runs Dagster starts
when a selection is materialized (`node_runs.py`).
"""

import logging
import re
from collections.abc import Iterator

import dagster as dg

from .. import settings
from ..coalesce.nodes import EnvironmentNodes, NodeSnapshot, resolve_lineage
from .node_runs import CoalesceNodeRunConfig, run_selected_nodes
from .node_translator import (
    RUN_CHECK_NAME,
    CoalesceNodeMetadataSet,
    CoalesceNodeProps,
    DagsterCoalesceTranslator,
)
from .resources import DEFAULT_COALESCE_RESOURCE, CoalesceResource

logger = logging.getLogger(__name__)

NODE_ASSETS_PREFIX = "coalesce_nodes_"


def build_node_definitions(
    snapshot: NodeSnapshot,
    translator: DagsterCoalesceTranslator | None = None,
    coalesce: CoalesceResource = DEFAULT_COALESCE_RESOURCE,
) -> dg.Definitions:
    """The node assets of every environment in `snapshot`, with the `coalesce` resource their runs use."""
    translator = translator or DagsterCoalesceTranslator()
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = []
    taken: dict[dg.AssetKey, str] = {}
    for environment in snapshot.environments:
        assets.extend(_environment_assets(environment, translator, taken))
    return dg.Definitions(assets=assets, resources={"coalesce": coalesce})


def _environment_assets(
    environment: EnvironmentNodes, translator: DagsterCoalesceTranslator, taken: dict[dg.AssetKey, str]
) -> Iterator[dg.AssetsDefinition | dg.AssetSpec]:
    lineage = resolve_lineage(environment)
    for problem in lineage.problems:
        logger.warning("%s", problem)
    by_id = {node.id: node for node in environment.nodes}
    built: list[dg.AssetSpec] = []
    for node in environment.nodes:
        props = CoalesceNodeProps(
            node=node,
            environment=environment,
            upstream=tuple(by_id[node_id] for node_id in lineage.upstream.get(node.id, ())),
        )
        spec = translator.get_asset_spec(props)
        where = f"node {node.location_name}.{node.name} ({node.id}) of environment {environment.name!r}"
        if spec.key in taken:
            logger.warning(
                "%s has the asset key %s, already taken by %s; it is left out. Give it another key "
                "with a translator (README: node assets).",
                where,
                spec.key.to_user_string(),
                taken[spec.key],
            )
            continue
        taken[spec.key] = where
        if node.is_source:
            yield spec
        else:
            built.append(spec)
    if built:
        yield _built_nodes_asset(environment, translator, built)


def _built_nodes_asset(
    environment: EnvironmentNodes, translator: DagsterCoalesceTranslator, specs: list[dg.AssetSpec]
) -> dg.AssetsDefinition:
    group = translator.get_group_name(CoalesceNodeProps(node=environment.nodes[0], environment=environment))
    environment_part = re.sub(r"[^a-z0-9_]", "_", environment.id.strip().lower())
    keys = {
        str(CoalesceNodeMetadataSet.extract(spec.metadata).node_id): spec.key
        for spec in specs
        if CoalesceNodeMetadataSet.extract(spec.metadata).node_id
    }

    @dg.multi_asset(
        # Named by group and environment id: two environments can share a group (names that differ
        # only in case or punctuation, or a translator's own groups), and Dagster refuses two ops
        # of one name.
        name=f"{NODE_ASSETS_PREFIX}{group.removeprefix('coalesce_')}_{environment_part}",
        # A node Coalesce did not build (it failed, or was skipped) yields no materialization.
        specs=[spec.replace_attributes(skippable=True) for spec in specs],
        check_specs=[
            dg.AssetCheckSpec(
                RUN_CHECK_NAME,
                asset=spec.key,
                description="Whether Coalesce's last run of this node built it without error.",
            )
            for spec in specs
        ],
        can_subset=True,
        # It also loads the run tables at the end: one writer of the destination at a time.
        pool=settings.CONCURRENCY_POOL,
        description=f"The nodes Coalesce builds in environment {environment.name!r}: materializing a "
        "selection starts one Coalesce run for exactly those nodes.",
    )
    def _coalesce_nodes(
        context: dg.AssetExecutionContext, coalesce: CoalesceResource, config: CoalesceNodeRunConfig
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield from run_selected_nodes(context, coalesce, config, environment, keys)

    return _coalesce_nodes
