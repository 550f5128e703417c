"""Read-only queries against the destination a test loaded, the same for DuckDB and Postgres.

Tests write DuckDB-style SQL with `?` parameters against the product's dataset (`coalesce_data`);
each destination's connection lives for one call, so it never blocks the next load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

DATASET = "coalesce_data"


class Warehouse:
    # How the destination names dlt's column types in information_schema.columns.data_type.
    TYPE_NAMES: dict[str, str] = {}

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        raise NotImplementedError

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.rows(sql, *params)[0][0]

    def count(self, table: str, where: str = "") -> int:
        return self.scalar(f"SELECT count(*) FROM {DATASET}.{table} {where}")

    def tables(self) -> set[str]:
        return {
            name
            for (name,) in self.rows(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", DATASET
            )
        }

    def keys(self, table: str, *columns: str) -> list[tuple]:
        cols = ", ".join(columns)
        return sorted(self.rows(f"SELECT {cols} FROM {DATASET}.{table}"))

    def type_name(self, dlt_type: str) -> str:
        return self.TYPE_NAMES[dlt_type]


class DuckDbWarehouse(Warehouse):
    TYPE_NAMES = {"bigint": "BIGINT", "text": "VARCHAR"}

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()


class PostgresWarehouse(Warehouse):
    TYPE_NAMES = {"bigint": "bigint", "text": "character varying"}

    def __init__(self, url: str) -> None:
        self.url = url

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        import psycopg2

        connection = psycopg2.connect(self.url)
        try:
            with connection.cursor() as cursor:
                # psycopg2's placeholder is %s; the tests' SQL holds no other `?` or `%`.
                cursor.execute(sql.replace("?", "%s"), params or None)
                return cursor.fetchall()
        finally:
            connection.close()
