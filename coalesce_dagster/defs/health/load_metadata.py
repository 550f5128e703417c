"""Metadata a person reads on each load's materializations.

dagster-dlt's events carry rows loaded, the table's row count, the column schema and dlt's load
package (every load job with its file path). This puts first what a person reads: rows loaded next
to the table's total, and on the run tables the Coalesce runs the load covered, how many failed, with
their failed nodes and the scheduler's run links; then the column schema with each column's
description; dlt's load details last, its job list compacted to one line per job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

import dagster as dg
import dlt

from ...coalesce.runs import RUN_TABLES
from .column_docs import describe_columns
from .sql import FAILED, FAILED_NODE_STATES_SQL, rows

# The newest runs listed in the Markdown table; the counts cover all of them.
MAX_RUNS_LISTED = 25
_FIRST_KEYS = ("rows_loaded", "dagster/row_count")
_DLT_KEYS = ("first_run", "started_at", "finished_at", "dataset_name", "destination_name", "destination_type")
_LOAD_ID = re.compile(r"^[0-9.]+$")


def readable_events(
    context: dg.AssetExecutionContext, events: Iterator[Any], pipeline: dlt.Pipeline, run_ids: list[int]
) -> Iterator[Any]:
    """dagster-dlt's events, each with its metadata reordered and completed (every field kept)."""
    runs_metadata: dict[str, Any] | None = None
    for event in events:
        if isinstance(event, dg.MaterializeResult) and event.asset_key is not None:
            table = event.asset_key.path[-1]
            extra: dict[str, Any] = {}
            if table in RUN_TABLES:
                if runs_metadata is None:
                    runs_metadata = covered_runs_metadata(context, pipeline, run_ids)
                extra = runs_metadata
            event = event._replace(metadata=_readable(table, dict(event.metadata or {}), extra, pipeline))
        yield event


def _readable(
    table: str, given: dict[str, Any], extra: dict[str, Any], pipeline: dlt.Pipeline
) -> dict[str, Any]:
    first = {key: given.pop(key) for key in _FIRST_KEYS if key in given}
    dlt_details = {f"dlt/{key}": given.pop(key) for key in _DLT_KEYS if key in given}
    jobs = given.pop("jobs", None)
    if jobs is not None:
        dlt_details["dlt/load_jobs"] = dg.MetadataValue.text(_compact_jobs(jobs))
    if "dagster/table_name" in given:  # dagster-dlt names dlt's schema, not the dataset
        given["dagster/table_name"] = f"{pipeline.dataset_name}.{table}"
    schemas = {}
    for key, value in list(given.items()):
        schema = getattr(value, "value", value)
        if isinstance(schema, dg.TableSchema):
            name = table if key == "dagster/column_schema" else key  # child tables are keyed by name
            schemas[key] = describe_columns(name, schema)
            given.pop(key)
    return {**first, **extra, **schemas, **given, **dlt_details}


def _compact_jobs(jobs: Any) -> str:
    value = getattr(jobs, "value", jobs)
    lines = []
    for job in value if isinstance(value, list) else []:
        name = PurePath(str(job.get("file_path", ""))).name
        elapsed = job.get("elapsed")
        seconds = f"{float(elapsed):.2f} s" if isinstance(elapsed, int | float) else "-"
        lines.append(f"{name}: {job.get('state', '?')}, {job.get('file_size', '?')} bytes, {seconds}")
    return "\n".join(lines) or "no load jobs"


def covered_runs_metadata(
    context: dg.AssetExecutionContext, pipeline: dlt.Pipeline, run_ids: list[int]
) -> dict[str, Any]:
    """The Coalesce runs this load wrote (given ones, or those its load ids wrote): how many, how many
    failed, and the newest as a table with failed nodes and the scheduler's links."""
    metadata: dict[str, Any] = {}
    ids = sorted({int(run_id) for run_id in run_ids})
    if ids:
        metadata["coalesce/run_ids"] = dg.MetadataValue.json(ids)
        which = f"r.id IN ({', '.join(str(run_id) for run_id in ids)})"  # ints only: safe to inline
    else:
        trace = pipeline.last_trace
        load_ids = [
            i
            for i in (trace.last_load_info.loads_ids if trace and trace.last_load_info else [])
            if _LOAD_ID.match(i)
        ]
        if not load_ids:
            return metadata
        which = f"r._dlt_load_id IN ({', '.join(repr(i) for i in load_ids)})"  # digits and dots only
    try:
        with pipeline.sql_client() as client:
            runs, results, status = (client.make_qualified_table_name(t) for t in RUN_TABLES)
            failed_nodes = (
                f"SELECT run_id, count(*) AS failed, string_agg(name, ', ' ORDER BY name) AS names "
                f"FROM {results} WHERE lower(run_state) IN ({FAILED_NODE_STATES_SQL}) GROUP BY run_id"
            )
            found = rows(
                client,
                f"SELECT r.id, r.run_status, r.run_type, r.environment_id, s.run_link, "
                f"coalesce(f.failed, 0), f.names FROM {runs} r LEFT JOIN {status} s ON s.run_id = r.id "
                f"LEFT JOIN ({failed_nodes}) f ON f.run_id = r.id WHERE {which} ORDER BY r.id DESC",
            )
    except Exception as error:  # metadata is a courtesy: never fail a load over it
        context.log.warning(f"Could not read back the loaded Coalesce runs: {error}")
        return metadata
    statuses: dict[str, int] = {}
    for _, run_status, *_ in found:
        statuses[str(run_status)] = statuses.get(str(run_status), 0) + 1
    metadata["coalesce/runs_covered"] = dg.MetadataValue.int(len(found))
    metadata["coalesce/runs_failed"] = dg.MetadataValue.int(statuses.get(FAILED, 0))
    metadata["coalesce/failed_nodes"] = dg.MetadataValue.int(sum(int(row[5]) for row in found))
    metadata["coalesce/run_statuses"] = dg.MetadataValue.json(statuses)
    metadata["coalesce/runs"] = dg.MetadataValue.md(_runs_table(found))
    if len(found) == 1 and found[0][4]:
        metadata["coalesce/run_link"] = dg.MetadataValue.url(found[0][4])
    return metadata


def _runs_table(found: list[tuple[Any, ...]]) -> str:
    lines = [
        "| run | status | type | environment | failed nodes |",
        "|---|---|---|---|---|",
    ]
    for run_id, run_status, run_type, environment, link, failed, names in found[:MAX_RUNS_LISTED]:
        # Only the link Coalesce's scheduler gave; a run without one is named, not linked.
        name = f"[{run_id}]({link})" if link else str(run_id)
        nodes = f"{failed}: {names}" if failed else "0"
        lines.append(f"| {name} | {run_status} | {run_type} | {environment} | {nodes} |")
    if len(found) > MAX_RUNS_LISTED:
        lines.append(f"\n{len(found) - MAX_RUNS_LISTED} older runs of this load not listed.")
    return "\n".join(lines)
