"""Coalesce's nodes as Dagster assets, built from a stored snapshot (never from a live API call).

Each environment is in one of two modes (`[coalesce_dagster.nodes] orchestrate`):

* observed (the default): its nodes are external assets. Dagster cannot materialize them (no
  Materialize button, never part of a `*` run), and their checks do not run from Dagster; the
  run-status sensor reports what Coalesce's own runs built, failed and tested.
* orchestrated: the nodes Coalesce builds are one multi-asset (so a run can build any subset of
  them); materializing a selection starts one Coalesce run for exactly those nodes (`runs.py`).

Every built node has a `coalesce_run` check and one check per Coalesce test (`checks.py`);
source nodes are plain asset specs. Lineage comes from each node's `sourceMapping`; problems in it
(a dependency naming no node, a cycle, two nodes on one key) are logged and left out, never fatal.
"""

import logging
import re
from collections.abc import Collection, Iterator

import dagster as dg

from ...coalesce.nodes import CoalesceNode, EnvironmentNodes, NodeSnapshot, resolve_lineage
from ...coalesce.nodes.column_lineage import resolve_column_lineage
from ...configuration import names
from ..resources import DEFAULT_COALESCE_RESOURCE, CoalesceResource
from .checks import node_check_specs
from .runs import CoalesceNodeRunConfig, run_selected_nodes
from .translator import CoalesceNodeProps, DagsterCoalesceTranslator

logger = logging.getLogger(__name__)

NODE_ASSETS_PREFIX = "coalesce_nodes_"
OBSERVED_CHECKS_PREFIX = "coalesce_checks_"

NodeAsset = dg.AssetsDefinition | dg.AssetSpec


def build_node_definitions(
    snapshot: NodeSnapshot,
    translator: DagsterCoalesceTranslator | None = None,
    coalesce: CoalesceResource = DEFAULT_COALESCE_RESOURCE,
    orchestrated: Collection[str] = (),
) -> dg.Definitions:
    """The node assets of every environment in `snapshot`, with the `coalesce` resource their runs
    use. `orchestrated`: ids of the environments Dagster may build; the others are observed only."""
    translator = translator or DagsterCoalesceTranslator()
    assets: list[NodeAsset] = []
    checks: list[dg.AssetChecksDefinition] = []
    taken: dict[dg.AssetKey, str] = {}
    for environment in snapshot.environments:
        nodes = list(_environment_specs(environment, translator, taken))
        sources = [spec for node, spec in nodes if node.is_source]
        built = [(node, spec) for node, spec in nodes if not node.is_source]
        assets.extend(sources)
        if not built:
            continue
        group = translator.get_group_name(CoalesceNodeProps(node=built[0][0], environment=environment))
        name = (
            f"{group.removeprefix('coalesce_')}_{re.sub(r'[^a-z0-9_]', '_', environment.id.strip().lower())}"
        )
        if environment.id in orchestrated:
            assets.append(_built_nodes_asset(environment, name, built, snapshot.base_url))
        else:
            assets.extend(_observed(environment, spec) for _, spec in built)
            checks.append(_observed_checks(environment, name, built))
    return dg.Definitions(assets=assets, asset_checks=checks, resources={"coalesce": coalesce})


def _environment_specs(
    environment: EnvironmentNodes, translator: DagsterCoalesceTranslator, taken: dict[dg.AssetKey, str]
) -> Iterator[tuple[CoalesceNode, dg.AssetSpec]]:
    lineage = resolve_lineage(environment)
    for problem in lineage.problems:
        logger.warning("%s", problem)
    column_problems: list[str] = []
    for node in environment.nodes:
        upstream = tuple(environment.by_id[node_id] for node_id in lineage.upstream.get(node.id, ()))
        columns = resolve_column_lineage(environment, node, upstream)
        column_problems.extend(columns.problems)
        props = CoalesceNodeProps(
            node=node, environment=environment, upstream=upstream, column_sources=columns.sources
        )
        spec = translator.get_asset_spec(props)
        where = f"node {node.location_name}.{node.name} ({node.id}) of environment {environment.name!r}"
        if spec.key in taken:
            logger.warning(
                "%s has the asset key %s, already taken by %s; it is left out. Give it another key "
                "with a translator (docs/node-assets.md).",
                where,
                spec.key.to_user_string(),
                taken[spec.key],
            )
            continue
        taken[spec.key] = where
        yield node, spec
    if column_problems:
        # One line per environment: a large workspace can have thousands of such references.
        logger.warning(
            "%d column reference(s) in environment %r name no node column and are left out of column "
            "lineage, e.g. %s",
            len(column_problems),
            environment.name,
            " | ".join(column_problems[:3]),
        )


def _observed(environment: EnvironmentNodes, spec: dg.AssetSpec) -> dg.AssetSpec:
    if spec.automation_condition is not None:
        logger.warning(
            "Node asset %s has an automation condition, but environment %r is observed only, so "
            "Dagster never builds it; the condition is left out. Add the environment to "
            "[coalesce_dagster.nodes] orchestrate to build it from Dagster.",
            spec.key.to_user_string(),
            environment.name,
        )
        return spec.replace_attributes(automation_condition=None)
    return spec


def _observed_checks(
    environment: EnvironmentNodes, name: str, built: list[tuple[CoalesceNode, dg.AssetSpec]]
) -> dg.AssetChecksDefinition:
    """The checks of an observed environment's nodes. Their results come from the run-status sensor;
    Dagster has nothing to run for them (observed assets are never in a `*` run, so neither are
    these), and running one by hand says so instead of touching Coalesce."""

    @dg.multi_asset_check(
        name=f"{OBSERVED_CHECKS_PREFIX}{name}",
        specs=[check for node, spec in built for check in node_check_specs(spec.key, node)],
        can_subset=True,
        description=f"Coalesce's runs and tests of the nodes of observed environment {environment.name!r}, "
        "reported by the run-status sensor.",
    )
    def _coalesce_checks(
        context: dg.AssetCheckExecutionContext,
    ):  # no annotation: Dagster reads it as outputs
        raise dg.Failure(
            description=f"Environment {environment.name!r} is observed only: these checks are reported "
            "from Coalesce's own runs by the run-status sensor, and Dagster runs nothing in Coalesce "
            "for them. To build its nodes from Dagster, add it to [coalesce_dagster.nodes] orchestrate.",
            allow_retries=False,
        )

    return _coalesce_checks


def _built_nodes_asset(
    environment: EnvironmentNodes,
    name: str,
    built: list[tuple[CoalesceNode, dg.AssetSpec]],
    account: str | None,
) -> dg.AssetsDefinition:
    keys = {node.id: spec.key for node, spec in built}

    @dg.multi_asset(
        # Named by group and environment id: two environments can share a group (names that differ
        # only in case or punctuation, or a translator's own groups), and Dagster refuses two ops
        # of one name.
        name=f"{NODE_ASSETS_PREFIX}{name}",
        # A node Coalesce did not build (it failed, or was skipped) yields no materialization.
        specs=[spec.replace_attributes(skippable=True) for _, spec in built],
        check_specs=[check for node, spec in built for check in node_check_specs(spec.key, node)],
        can_subset=True,
        # It also loads the run tables at the end: one writer of the destination at a time.
        pool=names.CONCURRENCY_POOL,
        description=f"The nodes Coalesce builds in environment {environment.name!r}: materializing a "
        "selection starts one Coalesce run for exactly those nodes.",
    )
    def _coalesce_nodes(
        context: dg.AssetExecutionContext, coalesce: CoalesceResource, config: CoalesceNodeRunConfig
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        yield from run_selected_nodes(context, coalesce, config, environment, keys, account)

    return _coalesce_nodes
