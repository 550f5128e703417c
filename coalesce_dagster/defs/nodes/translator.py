"""Map a Coalesce node to a Dagster `AssetSpec`: the translator users subclass to change keys.

Default keys are the warehouse table, lower-cased: `analytics/marts/fct_orders` for the node that
builds `ANALYTICS.MARTS.FCT_ORDERS`. That is how other tools' assets (dlt, Fivetran, Airbyte,
Sigma) name the same tables, so assets downstream of a Coalesce table, and the tables a Coalesce
source node reads, line up with no extra mapping. A source node stands for a table Coalesce reads
but does not build: it gets its own key, `coalesce_source/<environment>/<database>/<schema>/<table>`
(the environments of one account often read the same raw tables), and depends on the table's key,
so it hangs off whatever asset already produces that table.

No link to the node in Coalesce's UI is given: its URL form is not known, and a guessed link would
pose as Coalesce's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import dagster as dg
from dagster._core.definitions.metadata.metadata_set import NamespacedMetadataSet, TableMetadataSet

from ...coalesce.nodes import CoalesceNode, EnvironmentNodes
from ...coalesce.nodes.column_lineage import ColumnSource

SOURCE_KEY_PREFIX = "coalesce_source"
RUN_CHECK_NAME = "coalesce_run"
DEFAULT_WAREHOUSE_KIND = "snowflake"


@dataclass(frozen=True)
class CoalesceNodeProps:
    """What the translator sees of a node: the node, its environment, the nodes it reads, and per
    column the node columns it is computed from (`coalesce/nodes/column_lineage.py`)."""

    node: CoalesceNode
    environment: EnvironmentNodes
    upstream: tuple[CoalesceNode, ...] = ()
    column_sources: Mapping[str, tuple[ColumnSource, ...]] = field(default_factory=dict)


class CoalesceNodeMetadataSet(NamespacedMetadataSet):
    """The Coalesce identity of a node asset, read back by the run-status sensor to report runs."""

    node_id: str | None = None
    environment_id: str | None = None
    environment_name: str | None = None
    location_name: str | None = None
    node_type: str | None = None
    materialization: str | None = None

    @classmethod
    def namespace(cls) -> str:
        return "coalesce"


class DagsterCoalesceTranslator:
    """Override any `get_*` method to change what a node asset looks like."""

    def __init__(self, warehouse_kind: str = DEFAULT_WAREHOUSE_KIND) -> None:
        self.warehouse_kind = warehouse_kind

    def get_table_key(self, node: CoalesceNode) -> dg.AssetKey:
        """The key of the warehouse table a node builds or reads."""
        return dg.AssetKey([_key_part(part) for part in (node.database, node.schema, node.name) if part])

    def get_asset_key(self, props: CoalesceNodeProps) -> dg.AssetKey:
        key = self.get_table_key(props.node)
        if props.node.is_source:
            return key.with_prefix([SOURCE_KEY_PREFIX, _environment_slug(props.environment)])
        return key

    def get_group_name(self, props: CoalesceNodeProps) -> str:
        return "coalesce_" + _environment_slug(props.environment)

    def get_description(self, props: CoalesceNodeProps) -> str:
        node = props.node
        return node.description or f"Coalesce {node.node_type or 'node'} {node.location_name}.{node.name}."

    def get_kinds(self, props: CoalesceNodeProps) -> set[str]:
        return {"coalesce", self.warehouse_kind}

    def get_deps(self, props: CoalesceNodeProps) -> Sequence[dg.AssetKey]:
        if props.node.is_source:
            return [self.get_table_key(props.node)]
        return [
            self.get_asset_key(CoalesceNodeProps(node=upstream, environment=props.environment))
            for upstream in props.upstream
        ]

    def get_metadata(self, props: CoalesceNodeProps) -> dict[str, object]:
        node = props.node
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn(
                    name=column.name,
                    type=column.data_type or "unknown",
                    description=column.description or None,
                    constraints=dg.TableColumnConstraints(nullable=column.nullable),
                )
                for column in node.columns
            ]
        )
        return {
            **_metadata_entries(
                TableMetadataSet,
                table_name=node.table_name,
                column_schema=schema,
                column_lineage=self.get_column_lineage(props),
            ),
            **_metadata_entries(
                CoalesceNodeMetadataSet,
                node_id=node.id,
                environment_id=props.environment.id,
                environment_name=props.environment.name,
                location_name=node.location_name,
                node_type=node.node_type,
                materialization=node.materialization or None,
            ),
        }

    def get_column_lineage(self, props: CoalesceNodeProps) -> dg.TableColumnLineage | None:
        """Dagster's `dagster/column_lineage`: each column's upstream columns, on the assets of the
        nodes they belong to (keyed by this translator). None when Coalesce states none."""
        if not props.column_sources:
            return None
        keys: dict[str, dg.AssetKey] = {}  # a node's columns often read several columns of one node

        def key_of(source: CoalesceNode) -> dg.AssetKey:
            if source.id not in keys:
                keys[source.id] = self.get_asset_key(
                    CoalesceNodeProps(node=source, environment=props.environment)
                )
            return keys[source.id]

        return dg.TableColumnLineage(
            deps_by_column={
                column: [
                    dg.TableColumnDep(asset_key=key_of(source), column_name=source_column)
                    for source, source_column in sources
                ]
                for column, sources in props.column_sources.items()
            }
        )

    def get_automation_condition(self, props: CoalesceNodeProps) -> dg.AutomationCondition | None:
        """When Dagster should build the node by itself (declarative automation), e.g.
        `dg.AutomationCondition.eager()`. None by default. Used only in environments Dagster
        orchestrates; the automation daemon's requests for several nodes of one environment in one
        tick become one Coalesce run."""
        return None

    def get_freshness_policy(self, props: CoalesceNodeProps) -> dg.FreshnessPolicy | None:
        """How late the node may be, e.g. `dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))`.
        None by default. Works in observed environments too: Coalesce's own runs keep it fresh."""
        return None

    def get_asset_spec(self, props: CoalesceNodeProps) -> dg.AssetSpec:
        return dg.AssetSpec(
            key=self.get_asset_key(props),
            deps=self.get_deps(props),
            group_name=self.get_group_name(props),
            description=self.get_description(props),
            kinds=self.get_kinds(props),
            metadata=self.get_metadata(props),
            automation_condition=None if props.node.is_source else self.get_automation_condition(props),
            freshness_policy=self.get_freshness_policy(props),
        )


def _metadata_entries(metadata_set: type[NamespacedMetadataSet], **values: object) -> dict[str, object]:
    """The entries `**metadata_set(**values)` gives (its namespace, its field order, no None), without
    building the set: Dagster validates each set's field types on every construction, a few hundred
    microseconds, two sets per node."""
    fields = metadata_set.model_fields
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f"{metadata_set.__name__} has no field(s) {sorted(unknown)}")
    namespace = metadata_set.namespace()
    return {f"{namespace}/{name}": values[name] for name in fields if values.get(name) is not None}


def _environment_slug(environment: EnvironmentNodes) -> str:
    return _key_part(environment.name) or _key_part(environment.id)


_NOT_A_KEY_CHARACTER = re.compile(r"[^a-z0-9_]")


# Cached: a workspace's nodes share a few databases and schemas, and each node's key is asked for
# again by every node that reads it (its deps and column lineage).
@lru_cache(maxsize=16384)
def _key_part(text: str) -> str:
    """A key or group part: lower case, anything but letters, digits and `_` as `_`."""
    return _NOT_A_KEY_CHARACTER.sub("_", text.strip().lower())
