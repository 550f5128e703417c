"""Column-level lineage of a node: for each of its columns, the node columns it is computed from.

Coalesce states it in two shapes (API notes §11.4), both accepted (`nodes.ColumnRef`):

* by id, `columns[].sources[].columnReferences[]` = `{nodeID, columnID}`: a node of the same
  environment and one of its columns;
* by name, `columns[].columnReferences[]` = `{tableName, columnName}`: a table, named as the node
  that builds it (possibly qualified, or null), and a column. A null table is looked for among the
  nodes the node reads.

A reference that names no node or column, or fits more than one, is a problem: described in
`problems` and left out, as node lineage leaves dangling dependencies out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .model import CoalesceNode, ColumnRef, EnvironmentNodes

ColumnSource = tuple[CoalesceNode, str]  # a node and the name of one of its columns


@dataclass(frozen=True)
class ColumnLineage:
    """Per column name, the node columns it reads, in the order Coalesce lists them."""

    sources: dict[str, tuple[ColumnSource, ...]]
    problems: list[str] = field(default_factory=list)


def resolve_column_lineage(
    environment: EnvironmentNodes, node: CoalesceNode, upstream: Sequence[CoalesceNode] = ()
) -> ColumnLineage:
    problems: list[str] = []
    sources: dict[str, tuple[ColumnSource, ...]] = {}
    for column in node.columns:
        found: list[ColumnSource] = []
        for ref in column.sources:
            source = _by_id(environment, ref) if ref.node_id else _by_name(environment, ref, upstream)
            if isinstance(source, str):
                problems.append(
                    f"Column {node.location_name}.{node.name}.{column.name} in environment "
                    f"{environment.name!r} reads {source}; that column dependency is left out."
                )
            elif source not in found:
                found.append(source)
        if found:
            sources[column.name] = tuple(found)
    return ColumnLineage(sources=sources, problems=problems)


def _by_id(environment: EnvironmentNodes, ref: ColumnRef) -> ColumnSource | str:
    source = environment.by_id.get(ref.node_id)
    if source is None:
        return f"node id {ref.node_id}, which is not a node of that environment"
    column = next((c.name for c in source.columns if c.id == ref.column), None)
    if column is None:
        return f"column id {ref.column} of {source.location_name}.{source.name}, which has no such column"
    return source, column


def _by_name(
    environment: EnvironmentNodes, ref: ColumnRef, upstream: Sequence[CoalesceNode]
) -> ColumnSource | str:
    wanted = ref.column.lower()
    if ref.table:
        table = ref.table.replace('"', "").split(".")[-1].strip().lower()
        named = [n for n in upstream if n.name.lower() == table] or [
            n for n in environment.nodes if n.name.lower() == table
        ]
        what = f"table {ref.table}"
    else:
        named = [n for n in upstream if any(c.name.lower() == wanted for c in n.columns)]
        what = "an unnamed table"
    candidates = [(n, c.name) for n in named for c in n.columns if c.name.lower() == wanted]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return f"column {ref.column} of {what}, which matches no node column"
    return f"column {ref.column} of {what}, which matches {len(candidates)} node columns"
