"""Reading a list's first page the way the load reads it, and naming what the answer shows:
status, time, the page size accepted, the envelope and its variants (doc §4), new fields (§12.2),
and for node detail pages the column reference shape (§12.3) and what a full sync would cost."""

from __future__ import annotations

import math
from typing import Any

import dlt
from dlt.sources.helpers.rest_client.client import RESTClient

from ..coalesce.lists import PageSize, read_pages
from .known import ENVELOPE_FIELDS, ITEM_FIELDS
from .record import CheckResult, Exchange, Line

# dlt's default `[extract] workers`, when none is configured.
DEFAULT_EXTRACT_WORKERS = 5


def first_page(
    client: RESTClient, path: str, params: dict[str, Any], page_size: PageSize, **kwargs: Any
) -> list[Any]:
    """The first page of a list, read the way the load reads it (page size halved on a 400)."""
    return first_pages(client, path, params, page_size, 1, **kwargs)[0]


def first_pages(
    client: RESTClient, path: str, params: dict[str, Any], page_size: PageSize, count: int, **kwargs: Any
) -> list[list[Any]]:
    """Up to `count` pages of a list (at least one, empty when the list is), as the load reads them."""
    pages = read_pages(client, path, params, page_size, **kwargs)
    try:
        read = [page for _, page in zip(range(count), pages)]
        return read or [[]]
    finally:
        close = getattr(pages, "close", None)  # a generator: stop it before it asks for page two
        if close is not None:
            close()


def describe_list(
    result: CheckResult, line: Line, endpoint: str, kind: str, asked: int, page_size: PageSize, items: list
) -> Exchange | None:
    """Status, time, page size accepted and envelope of a list's first page; new item fields."""
    exchange = result.recorder.last_ok(endpoint)
    if exchange is None:
        return None
    line.note(f"{exchange.status} in {exchange.seconds:.2f} s")
    _retried(result, line, endpoint)
    if page_size.value < asked:
        line.variant("page size refused (400), halved until accepted", "WARN")
        line.warn(
            f"pages of {asked} refused, {page_size.value} accepted: configure {page_size.value} or less"
        )
    else:
        line.note(f"pages of {asked} accepted")
    body = exchange.body if isinstance(exchange.body, dict) else {}
    _envelope_variants(line, body, len(items), page_size.value, runs=kind == "runs")
    new_keys = sorted(set(body) - ENVELOPE_FIELDS)
    if new_keys:
        line.variant(f"envelope keys the notes do not describe: {', '.join(new_keys)}", "WARN")
    new_fields(line, endpoint, kind, items)
    return exchange


def _retried(result: CheckResult, line: Line, endpoint: str) -> None:
    """Name the transient answers the load's retry policy rode out on this endpoint."""
    statuses = {e.status for e in result.recorder.exchanges if e.endpoint == endpoint}
    if 429 in statuses:
        line.variant("rate-limited (429), retried")
    if any(status >= 500 for status in statuses):
        line.variant("failing (5xx), retried")


def _envelope_variants(line: Line, body: dict[str, Any], count: int, limit: int, *, runs: bool) -> None:
    line.note("envelope {data: [...]} recognised")
    if "next" not in body and "total" not in body:
        if count >= limit and runs:
            line.variant("no next and no total: v6.2 paging (continues from the last id)")
        elif count >= limit:
            line.variant("no next and no total: a full page taken as the last")
        else:
            line.variant("no total")
        return
    cursor = body.get("next")
    if isinstance(cursor, bool) or (cursor is not None and not isinstance(cursor, (str, int, float))):
        line.variant("next is neither text nor a number", "WARN")
    elif isinstance(cursor, (int, float)):
        line.variant("next as a number (sent back as text)")
    elif "next" in body and cursor is None:
        line.variant("end of paging as next: null")
    elif isinstance(cursor, str) and not cursor.strip():
        line.variant("end of paging as an empty next")
    if "total" in body and body["total"] is None:
        line.variant("total: null")


def new_fields(line: Line, endpoint: str, kind: str, items: list) -> None:
    seen = set().union(*(item.keys() for item in items if isinstance(item, dict))) if items else set()
    new = sorted(seen - ITEM_FIELDS[kind])
    if new:
        line.variant(f"fields the notes do not describe: {', '.join(new)}", "WARN")
        line.note(f"on {endpoint}: they load as new columns; attach --report to an issue")


def cursor_inclusion(line: Line, first: list[Any], second: list[Any]) -> None:
    last, following = (first[-1] if first else None), (second[0] if second else None)
    if isinstance(last, dict) and isinstance(following, dict) and last.get("id") == following.get("id"):
        line.variant("inclusive cursor: a page repeats the item its cursor names (the load drops it)")
    else:
        line.note("the page after a cursor starts after its item")


def total(exchange: Exchange | None, on_page: int) -> int | None:
    """How many items the list holds: its `total`, or the page when it is the only one."""
    body = exchange.body if exchange is not None and isinstance(exchange.body, dict) else {}
    total = body.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        return total
    return on_page if not body.get("next") else None


def column_reference_variants(line: Line, nodes: list[Any]) -> None:
    """How columns name their upstream columns (doc §12.3, CONFLICT: both shapes are accepted)."""
    columns = [
        column
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("metadata"), dict)
        for column in node["metadata"].get("columns") or []
        if isinstance(column, dict)
    ]
    sources = [
        source for column in columns for source in column.get("sources") or [] if isinstance(source, dict)
    ]
    if any(source.get("columnReferences") for source in sources):
        line.variant("column references by node and column id")
    if any(column.get("columnReferences") for column in columns):
        line.variant("column references by table and column name (doc §12.3)")


def sync_cost(size: int, seconds: float, nodes: int | None, environments: int | None) -> str:
    """What every environment's node pages cost at this page's pace: pages x time / workers
    (dlt's extract pool reads one environment per worker, its pages one after another)."""
    if nodes is None or environments is None:
        return "Coalesce sent no total: what a full sync costs is unknown"
    workers = _extract_workers()
    pages = environments * max(1, math.ceil(nodes / size))
    estimate = pages * seconds / max(1, min(workers, environments))
    return (
        f"a full sync at this pace: about {pages} node pages ({environments} environments of about "
        f"{nodes} nodes) x {seconds:.2f} s / {workers} workers = about {estimate:.1f} s"
    )


def _extract_workers() -> int:
    value: Any = dlt.config.get("extract.workers")
    try:
        return max(1, int(value)) if value is not None else DEFAULT_EXTRACT_WORKERS
    except (TypeError, ValueError):
        return DEFAULT_EXTRACT_WORKERS


def missing(line: Line, what: str) -> None:
    """A check that lacks what it reads (no environment or run): a WARN, not a FAIL, since the line
    it came from says why."""
    line.warn(f"no {what} to read")
