"""Coalesce's runs reported on the node assets, as dagster-dbt's polling sensor reports dbt Cloud runs.

For each finished run in an environment with node assets: one materialization per node the run
built (`complete`), carrying the run's figures, and one `coalesce_run` check result per node:
passed when it was built, failed (with Coalesce's error text) when it failed; and one result per
Coalesce test of the node that the run results report (`checks.py`). Skipped nodes, nodes
still marked running and source nodes (Coalesce reads them, never builds them) report nothing. A node Coalesce ran that has no asset (the
snapshot is older than the node) is counted in the log, not reported.

Exactly once per run and node: these events ride in the same sensor result as the run's load
request, which the sensor makes once per run (its cursor, and after a reset the loads it already
requested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg

from ...coalesce.nodes import SOURCE_NODE_TYPE, NodeTest
from ...coalesce.run_report import NodeOutcome, RunReport
from .checks import CoalesceTestMetadataSet, coalesce_test_results
from .translator import RUN_CHECK_NAME, CoalesceNodeMetadataSet

NodeEvent = dg.AssetMaterialization | dg.AssetCheckEvaluation


@dataclass(frozen=True)
class NodeIndex:
    """The node assets Coalesce builds (not source nodes), by (environment id, node id)."""

    keys: dict[tuple[str, str], dg.AssetKey]
    checked: frozenset[dg.AssetKey]  # assets that have the `coalesce_run` check
    sources: frozenset[str] = frozenset()  # node ids of source nodes: known, never reported
    tests: Mapping[dg.AssetKey, Mapping[str, NodeTest]] = field(default_factory=dict)  # check -> test

    @property
    def environments(self) -> frozenset[str]:
        return frozenset(environment for environment, _ in self.keys)

    @classmethod
    def empty(cls) -> NodeIndex:
        return cls(keys={}, checked=frozenset())

    @classmethod
    def of(cls, repository: dg.RepositoryDefinition | None) -> NodeIndex:
        """Read from the assets' Coalesce metadata (`CoalesceNodeMetadataSet`)."""
        if repository is None:
            return cls.empty()
        keys: dict[tuple[str, str], dg.AssetKey] = {}
        checked: set[dg.AssetKey] = set()
        sources: set[str] = set()
        tests: dict[dg.AssetKey, dict[str, NodeTest]] = {}
        graph = repository.asset_graph
        for key in graph.get_all_asset_keys():
            identity = CoalesceNodeMetadataSet.extract(graph.get(key).metadata)
            if (identity.node_type or "").lower() == SOURCE_NODE_TYPE:
                sources.add(identity.node_id or "")
                continue  # Coalesce reads source nodes; it never builds them
            if identity.node_id and identity.environment_id:
                keys[(identity.environment_id, identity.node_id)] = key
        # Checks of orchestrated nodes sit on their multi-asset, of observed ones on a check
        # definition of their own: the graph has both.
        for check_key in graph.asset_check_keys:
            if check_key.name == RUN_CHECK_NAME:
                checked.add(check_key.asset_key)
                continue
            test = CoalesceTestMetadataSet.extract(graph.get_check_spec(check_key).metadata).as_test()
            if test is not None:
                tests.setdefault(check_key.asset_key, {})[check_key.name] = test
        return cls(keys=keys, checked=frozenset(checked), sources=frozenset(sources), tests=tests)


def node_events(report: RunReport, index: NodeIndex) -> tuple[list[NodeEvent], int]:
    """The events of one finished run, and how many of its nodes have no asset."""
    events: list[NodeEvent] = []
    unknown = 0
    for outcome in report.outcomes:
        key = index.keys.get((report.environment_id or "", outcome.node_id))
        if key is None:
            unknown += outcome.node_id not in index.sources
            continue
        if outcome.is_running or not (outcome.completed or outcome.failed):
            continue  # skipped, canceled before it started, or still marked running: nothing happened
        metadata = node_metadata(report, outcome)
        if outcome.completed:
            events.append(dg.AssetMaterialization(asset_key=key, metadata=metadata))
        if key in index.checked:
            events.append(
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=RUN_CHECK_NAME,
                    passed=outcome.completed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata=(
                        metadata
                        if outcome.completed
                        else {**metadata, "coalesce/error": dg.MetadataValue.text(outcome.error or "")}
                    ),
                    description=None if outcome.completed else _failure_description(report, outcome),
                )
            )
        results = coalesce_test_results(report.run_id, outcome, index.tests.get(key, {}))
        events.extend(result.as_evaluation(key) for result in results)
    return events, unknown


def _failure_description(report: RunReport, outcome: NodeOutcome) -> str:
    error = (outcome.error or "no error text given").splitlines()[0][:300]
    return f"Coalesce run {report.run_id}: node {outcome.name or outcome.node_id} {outcome.state}: {error}"


def node_metadata(report: RunReport, outcome: NodeOutcome) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "coalesce/run_id": dg.MetadataValue.int(report.run_id),
        "coalesce/run_status": dg.MetadataValue.text(report.status or "unknown"),
        "coalesce/run_type": dg.MetadataValue.text(report.run_type or "unknown"),
        "coalesce/node_state": dg.MetadataValue.text(outcome.state),
        "coalesce/rows_inserted": dg.MetadataValue.int(outcome.rows_inserted),
        "coalesce/rows_updated": dg.MetadataValue.int(outcome.rows_updated),
        "coalesce/rows_deleted": dg.MetadataValue.int(outcome.rows_deleted),
    }
    if report.job_id:
        metadata["coalesce/job_id"] = dg.MetadataValue.text(report.job_id)
    if report.link:
        metadata["coalesce/run_link"] = dg.MetadataValue.url(report.link)
    if outcome.warehouses:
        metadata["coalesce/warehouse"] = dg.MetadataValue.text(", ".join(outcome.warehouses))
    if outcome.query_ids:
        metadata["coalesce/query_ids"] = dg.MetadataValue.json(list(outcome.query_ids))
    if outcome.started_at:
        metadata["coalesce/started_at"] = dg.MetadataValue.timestamp(outcome.started_at)
    if outcome.ended_at:
        metadata["coalesce/ended_at"] = dg.MetadataValue.timestamp(outcome.ended_at)
    if outcome.duration_seconds is not None:
        metadata["coalesce/duration_seconds"] = dg.MetadataValue.float(outcome.duration_seconds)
    return metadata


def count_kinds(events: Iterable[NodeEvent]) -> tuple[int, int]:
    """(materializations, failed checks) among `events`."""
    events = list(events)
    materialized = sum(isinstance(event, dg.AssetMaterialization) for event in events)
    failed = sum(isinstance(event, dg.AssetCheckEvaluation) and not event.passed for event in events)
    return materialized, failed
