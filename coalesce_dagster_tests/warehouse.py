"""Read-only queries against the destination a test loaded, the same for DuckDB and Postgres.

Tests write DuckDB-style SQL with `?` parameters against the product's dataset (`coalesce_data`);
each destination's connection lives for one call, so it never blocks the next load, or for one
`with warehouse.session():` block, which checks reading many tables at once use: opening a DuckDB
connection costs about 20 ms of CPU (measured 2026-12-07), and a whole-destination check made
dozens of them per call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

DATASET = "coalesce_data"


class Warehouse:
    # How the destination names dlt's column types in information_schema.columns.data_type.
    TYPE_NAMES: dict[str, str] = {}

    _connection: Any = None  # the open session's, if any

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        if self._connection is not None:
            return self._execute(self._connection, sql, params)
        with self._connected() as connection:
            return self._execute(connection, sql, params)

    @contextmanager
    def session(self) -> Iterator[Warehouse]:
        """Every query in the block on one read-only connection, closed when the block ends (so
        a load after it is not blocked). Nested sessions share the outer one's connection."""
        if self._connection is not None:
            yield self
            return
        with self._connected() as connection:
            self._connection = connection
            try:
                yield self
            finally:
                self._connection = None

    def _connected(self) -> Any:
        raise NotImplementedError

    def _execute(self, connection: Any, sql: str, params: tuple) -> list[tuple]:
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

    def _connected(self) -> Any:
        return duckdb.connect(str(self.path), read_only=True)

    def _execute(self, connection: Any, sql: str, params: tuple) -> list[tuple]:
        return connection.execute(sql, list(params)).fetchall()


class PostgresWarehouse(Warehouse):
    TYPE_NAMES = {"bigint": "bigint", "text": "character varying"}

    def __init__(self, url: str) -> None:
        self.url = url

    @contextmanager
    def _connected(self) -> Iterator[Any]:
        import psycopg2

        connection = psycopg2.connect(self.url)
        # Autocommit: in a session each query sees what was committed before it, as a connection
        # of its own would.
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.close()

    def _execute(self, connection: Any, sql: str, params: tuple) -> list[tuple]:
        with connection.cursor() as cursor:
            # psycopg2's placeholder is %s; the tests' SQL holds no other `?` or `%`.
            cursor.execute(sql.replace("?", "%s"), params or None)
            return cursor.fetchall()
