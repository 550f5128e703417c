"""What the benchmark's runner and its Dagster scenarios share: the simulator's token, the tables
checked, the children's environment and the row counts of a DuckDB file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

TOKEN = "bench-token"
DATASET = "coalesce_data"
MAIN_TABLES = ("environments", "environment", "environment_nodes", "jobs", "runs", "run_results",
               "run_status", "projects", "users")  # fmt: skip


def log(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.update(extra)
    return env


def table_counts(duckdb_path: Path) -> dict[str, int | None]:
    import duckdb

    counts: dict[str, int | None] = {}
    with duckdb.connect(str(duckdb_path), read_only=True) as connection:
        present = {
            name
            for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET]
            ).fetchall()
        }
        for table in MAIN_TABLES:
            counts[table] = (
                connection.execute(f'SELECT count(*) FROM {DATASET}."{table}"').fetchone()[0]  # type: ignore[index]
                if table in present
                else None
            )
    return counts


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table_lines(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[Any, ...]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    return [line(header), line(tuple("-" * w for w in widths)), *[line(row) for row in rows]]
