"""Coalesce's node tests and column references as the simulator serves them (API notes §11).

The generated nodes carry `appliedNodeTests` and V1 column references
(`sources[].columnReferences[]{nodeID, columnID}`) in the state; these views, switched by faults,
add what else the notes describe, on the way out:

* ``Faults.column_tests``: the first column of every node with node tests gets
  ``appliedColumnTests`` ``{"Unique": true, "Not Null": true}`` (§11.2);
* ``Faults.column_refs_by_name``: columns name their upstream as ``columnReferences[]`` =
  ``{tableName, columnName}`` instead (the other shape of §11.4);
* ``Faults.test_results``: each node result of a run that executed (complete or error) gains one
  query result per enabled test, named ``Test: <test>`` or ``Test: <test> <column>`` (§11.3 infers
  a test's outcome is the query naming it); ``Faults.failing_test`` names a test whose queries fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COLUMN_TESTS = {"Unique": True, "Not Null": True}
EXECUTED_STATES = ("complete", "error")


def node_view(
    node: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]], *, column_tests: bool, refs_by_name: bool
) -> dict[str, Any]:
    """A node's detail body with the switched-on extras (the state is never changed)."""
    if not (column_tests or refs_by_name) or "metadata" not in node:
        return dict(node)
    metadata = dict(node["metadata"])
    columns = [dict(column) for column in metadata.get("columns", [])]
    if column_tests and metadata.get("appliedNodeTests") and columns:
        columns[0]["appliedColumnTests"] = dict(COLUMN_TESTS)
    if refs_by_name:
        for column in columns:
            references = [
                ref for source in column.pop("sources", []) for ref in source.get("columnReferences", [])
            ]
            column["columnReferences"] = [_by_name(ref, nodes) for ref in references]
    metadata["columns"] = columns
    return {**node, "metadata": metadata}


def _by_name(ref: Mapping[str, Any], nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    upstream = nodes.get(ref.get("nodeID", ""))
    if upstream is None:
        return {"tableName": None, "columnName": ref.get("columnID")}
    column = next((c for c in upstream["metadata"]["columns"] if c["columnID"] == ref.get("columnID")), None)
    return {"tableName": upstream["name"], "columnName": column["name"] if column else ref.get("columnID")}


def tests_of(node: Mapping[str, Any], *, column_tests: bool) -> list[tuple[str, str]]:
    """(test name, column name or "") of every enabled test the node's body shows."""
    metadata = node.get("metadata", {})
    tests = [(t["name"], "") for t in metadata.get("appliedNodeTests", []) if t.get("enabled", True)]
    columns = metadata.get("columns", [])
    if column_tests and tests and columns:
        tests += [(name, columns[0]["name"]) for name in COLUMN_TESTS]
    return tests


def with_test_results(
    results: list[dict[str, Any]],
    nodes: Mapping[str, Mapping[str, Any]],
    *,
    column_tests: bool,
    failing_test: str | None,
) -> list[dict[str, Any]]:
    """Run results with a query result per test of each executed node."""
    served = []
    for result in results:
        node = nodes.get(result.get("nodeID", ""))
        if node is None or result.get("runState") not in EXECUTED_STATES or result.get("isRunning"):
            served.append(result)
            continue
        queries = list(result.get("queryResults", []))
        for name, column in tests_of(node, column_tests=column_tests):
            queries.append(_test_query(name, column, failing=(failing_test or "").lower() == name.lower()))
        served.append({**result, "queryResults": queries})
    return served


def _test_query(name: str, column: str, *, failing: bool) -> dict[str, Any]:
    query: dict[str, Any] = {
        "name": f"Test: {name} {column}".rstrip(),
        "sql": f"SELECT COUNT(*) AS FAILURES FROM ({name!r} test query)",
        "status": "Error" if failing else "Success",
        "success": not failing,
        "isRunning": False,
    }
    if failing:
        message = f"Test '{name}' failed: 3 rows did not pass"
        query["error"] = {
            "errorString": message,
            "errorDetail": f"{message}{' on column ' + column if column else ''}",
        }
    return query
