"""Integrity checks on the loaded tables, evaluated by the load itself right after it loads (same
Dagster run, same step: no extra process), in SQL in the destination.

Unique keys on every table, and no orphans where a row names its parent. A duplicate key, or a
result or status of a run that is not in `runs`, would make every count downstream wrong, so those
checks are blocking: the load's step fails after its materializations are recorded, and the health
views downstream are not computed from corrupt data. A node or job whose environment is gone is
reported (WARN) without blocking: the node and job tables are replaced whole each sync, so the next
sync sets them right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ..translator import asset_key
from .sql import existing_tables, rows

# Each table's key, as merged or replaced by dlt (docs/architecture.md, "Assets and tables").
KEYS: dict[str, tuple[str, ...]] = {
    "environments": ("id",),
    "environment": ("id",),
    "environment_nodes": ("environment_id", "id"),
    "jobs": ("environment_id", "id"),
    "runs": ("id",),
    "run_results": ("run_id", "node_id"),
    "run_status": ("run_id",),
    "projects": ("id",),
    "users": ("id",),
}
UNIQUE_CHECK = "unique_key"
# How many offending keys a failed check names.
SAMPLE = 5


@dataclass(frozen=True)
class ParentLink:
    """Rows of `table` name a row of `parent` in `column` (its key `parent_column`)."""

    table: str
    column: str
    parent: str
    parent_column: str
    blocking: bool

    @property
    def check_name(self) -> str:
        return f"no_orphans_in_{self.parent}"


PARENT_LINKS = (
    ParentLink("run_results", "run_id", "runs", "id", blocking=True),
    ParentLink("run_status", "run_id", "runs", "id", blocking=True),
    ParentLink("environment_nodes", "environment_id", "environment", "id", blocking=False),
    ParentLink("jobs", "environment_id", "environments", "id", blocking=False),
)
_BLOCKING_UNIQUE = {"runs", "run_results", "run_status", "environments", "jobs"}


def table_check_specs() -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            UNIQUE_CHECK,
            asset=asset_key(table),
            blocking=table in _BLOCKING_UNIQUE,
            description=f"No two rows of `{table}` share its key ({', '.join(key)}).",
        )
        for table, key in KEYS.items()
    ]
    specs += [
        dg.AssetCheckSpec(
            link.check_name,
            asset=asset_key(link.table),
            additional_deps=[asset_key(link.parent)],
            blocking=link.blocking,
            description=f"Every row of `{link.table}` names a row of `{link.parent}` "
            f"(`{link.column}` = `{link.parent}.{link.parent_column}`).",
        )
        for link in PARENT_LINKS
    ]
    return specs


def evaluate_table_checks(client: Any, selected: set[dg.AssetCheckKey]) -> Iterator[dg.AssetCheckResult]:
    """The selected integrity checks, against the destination as it is now."""
    present = existing_tables(client)
    for table, key in KEYS.items():
        check = dg.AssetCheckKey(asset_key(table), UNIQUE_CHECK)
        if check in selected:
            yield _unique(client, table, key, present)
    for link in PARENT_LINKS:
        check = dg.AssetCheckKey(asset_key(link.table), link.check_name)
        if check in selected:
            yield _no_orphans(client, link, present)


def _unique(client: Any, table: str, key: tuple[str, ...], present: set[str]) -> dg.AssetCheckResult:
    if table not in present:
        return _result(table, UNIQUE_CHECK, True, "Not loaded yet: no rows, no duplicates.", {})
    columns = ", ".join(key)
    duplicates = rows(
        client,
        f"SELECT {columns}, count(*) FROM {client.make_qualified_table_name(table)} "
        f"GROUP BY {columns} HAVING count(*) > 1 ORDER BY count(*) DESC",
    )
    sample = [", ".join(str(value) for value in row[:-1]) for row in duplicates[:SAMPLE]]
    description = (
        f"Every key ({columns}) is unique."
        if not duplicates
        else f"{len(duplicates)} keys ({columns}) of `{table}` appear more than once, e.g. {sample}."
    )
    return _result(
        table,
        UNIQUE_CHECK,
        not duplicates,
        description,
        {"duplicate_keys": dg.MetadataValue.int(len(duplicates))},
    )


def _no_orphans(client: Any, link: ParentLink, present: set[str]) -> dg.AssetCheckResult:
    if link.table not in present:
        return _result(link.table, link.check_name, True, f"`{link.table}` is not loaded yet.", {})
    child = client.make_qualified_table_name(link.table)
    if link.parent not in present:
        orphans = rows(client, f"SELECT DISTINCT {link.column} FROM {child} ORDER BY 1")
    else:
        parent = client.make_qualified_table_name(link.parent)
        orphans = rows(
            client,
            f"SELECT DISTINCT c.{link.column} FROM {child} c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {parent} p WHERE p.{link.parent_column} = c.{link.column}) ORDER BY 1",
        )
    sample = [str(row[0]) for row in orphans[:SAMPLE]]
    description = (
        f"Every `{link.column}` of `{link.table}` is in `{link.parent}`."
        if not orphans
        else f"{len(orphans)} `{link.column}` values of `{link.table}` are not in `{link.parent}`, e.g. {sample}."
    )
    return _result(
        link.table,
        link.check_name,
        not orphans,
        description,
        {"orphan_keys": dg.MetadataValue.int(len(orphans))},
        severity=dg.AssetCheckSeverity.ERROR if link.blocking else dg.AssetCheckSeverity.WARN,
    )


def _result(
    table: str,
    name: str,
    passed: bool,
    description: str,
    metadata: dict[str, Any],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key(table),
        check_name=name,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata,
    )
