"""The small SQL vocabulary the health checks and views share: plain SQL that DuckDB and Postgres
both run, through dlt's SQL client of the project's pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...coalesce.types import FAILED_NODE_STATES

# Run statuses as Coalesce reports them (docs/coalesce-api.md).
SUCCEEDED = "completed"
FAILED = "failed"
FAILED_NODE_STATES_SQL = ", ".join(f"'{state}'" for state in sorted(FAILED_NODE_STATES))


def literal(text: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def existing_tables(client: Any) -> set[str]:
    """Tables (and views) of the client's dataset, lower-cased."""
    rows = client.execute_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        + literal(client.dataset_name)
    )
    return {str(name).lower() for (name,) in rows or []}


def existing_columns(client: Any, table: str) -> set[str]:
    rows = client.execute_sql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        f"{literal(client.dataset_name)} AND table_name = {literal(table)}"
    )
    return {str(name).lower() for (name,) in rows or []}


def tables(client: Any, names: Iterable[str]) -> dict[str, str]:
    """`{name: qualified name}` for each table."""
    return {name: client.make_qualified_table_name(name) for name in names}


def rows(client: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in client.execute_sql(sql) or []]
