"""Other shapes of the same data, as some deployments may send them (switched on in `faults.py`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def column_references_by_name(
    view: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A node detail body whose columns name their upstream columns by table and column name
    (doc §12.3: `columns[].columnReferences[]` {columnName, tableName}, `sources[]` {transform}
    only) instead of by node and column id. A copy: views share objects with the state."""
    body = copy.deepcopy(dict(view))
    columns = body.get("metadata", {}).get("columns", [])
    for column in columns:
        references = []
        for source in column.get("sources", []):
            for reference in source.pop("columnReferences", []):
                upstream = nodes.get(reference.get("nodeID"), {})
                names = {c.get("columnID"): c.get("name") for c in _columns(upstream)}
                references.append(
                    {"columnName": names.get(reference.get("columnID")), "tableName": upstream.get("name")}
                )
        column["columnReferences"] = references
    return body


def _columns(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    metadata = node.get("metadata")
    columns = metadata.get("columns") if isinstance(metadata, Mapping) else None
    return columns if isinstance(columns, list) else []
