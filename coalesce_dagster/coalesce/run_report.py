"""What a finished Coalesce run did to each node, read from its results (docs/coalesce-api.md §3.4).

A result item is one node of the run: its `runState` (`complete`; `error` or `failed` for a
failure, §10.4; `skipped`, ...), and the queries Coalesce ran for it (`queryResults[]`), each with
rows inserted/updated/deleted, warehouse, start and end time, Snowflake query id and error. Rows
are summed over the queries; the run's error text is the first query error Coalesce gave.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .nodes import NodeTest
from .types import FAILED_NODE_STATES, parse_timestamp

COMPLETE_NODE_STATE = "complete"
FAILED_QUERY_STATUSES = frozenset({"error", "failed", "failure"})


@dataclass(frozen=True)
class QueryOutcome:
    """One query Coalesce ran for a node (`queryResults[]`): a build stage, or one of its tests."""

    name: str
    success: bool | None = None
    status: str = ""
    is_running: bool = False
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.success is False or bool(self.error) or self.status.lower() in FAILED_QUERY_STATUSES


@dataclass(frozen=True)
class CoalesceTestOutcome:
    """What the run results say of one Coalesce test of a node."""

    passed: bool
    error: str | None
    queries: tuple[str, ...]  # the query results it was read from


@dataclass(frozen=True)
class NodeOutcome:
    node_id: str
    name: str
    state: str  # as Coalesce sent it, lower-cased
    is_running: bool = False
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    warehouses: tuple[str, ...] = ()
    query_ids: tuple[str, ...] = ()
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    queries: tuple[QueryOutcome, ...] = ()

    @property
    def failed(self) -> bool:
        return self.state in FAILED_NODE_STATES

    @property
    def completed(self) -> bool:
        return self.state == COMPLETE_NODE_STATE and not self.is_running

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class RunReport:
    """A finished run, with what the sensor reports about it."""

    run_id: int
    status: str | None
    run_type: str | None
    environment_id: str | None
    job_id: str | None
    link: str | None  # only the `runLink` Coalesce gave (§10.3)
    outcomes: tuple[NodeOutcome, ...]


def node_outcome(raw: Mapping[str, Any]) -> NodeOutcome | None:
    """One result item; None for an item without a node id (nothing to report it on)."""
    node_id = _text(raw.get("nodeID"))
    if not node_id:
        return None
    queries = [q for q in raw.get("queryResults") or () if isinstance(q, Mapping)]
    render = raw.get("renderQueryResult")
    steps = [*([render] if isinstance(render, Mapping) else []), *queries]
    starts = [t for t in (parse_timestamp(q.get("startTime")) for q in steps) if t is not None]
    ends = [t for t in (parse_timestamp(q.get("endTime")) for q in steps) if t is not None]
    errors = [_error_text(q.get("error")) for q in steps]
    state = _text(raw.get("runState")).lower()
    first_error = next((e for e in errors if e), None)
    if not state:
        # `runState` is newer than the spec (§3.4): without it, a failed query means a failed node.
        state = "error" if first_error or any(q.get("success") is False for q in queries) else "complete"
    return NodeOutcome(
        node_id=node_id,
        name=_text(raw.get("name")),
        state=state,
        is_running=raw.get("isRunning") is True,
        rows_inserted=sum(_int(q.get("rowsInserted")) for q in queries),
        rows_updated=sum(_int(q.get("rowsUpdated")) for q in queries),
        rows_deleted=sum(_int(q.get("rowsDeleted")) for q in queries),
        warehouses=tuple(
            dict.fromkeys(_text(q.get("warehouse")) for q in steps if _text(q.get("warehouse")))
        ),
        query_ids=tuple(dict.fromkeys(_text(q.get("queryID")) for q in steps if _text(q.get("queryID")))),
        started_at=min(starts, default=None),
        ended_at=max(ends, default=None),
        error=first_error,
        queries=tuple(
            QueryOutcome(
                name=_text(q.get("name")),
                success=q.get("success") if isinstance(q.get("success"), bool) else None,
                status=_text(q.get("status")),
                is_running=q.get("isRunning") is True,
                error=_error_text(q.get("error")),
            )
            for q in queries
        ),
    )


def outcome_of_test(outcome: NodeOutcome, test: NodeTest) -> CoalesceTestOutcome | None:
    """The outcome of `test` in a node's run result, or None when the result reports none.

    Coalesce names no test result field (API notes §11.3); a node's tests are queries of that node,
    so a test's outcome is read from the query results whose `name` carries the test's name as a
    whole word (a column test's also the column's). No such query, or one still running, is no
    outcome: never a guessed pass."""
    matched = [query for query in outcome.queries if query_names_test(query.name, test)]
    if not matched or any(query.is_running for query in matched):
        return None
    failed = [query for query in matched if query.failed]
    return CoalesceTestOutcome(
        passed=not failed,
        error=next((query.error for query in failed if query.error), None),
        queries=tuple(query.name for query in matched),
    )


def query_names_test(query_name: str, test: NodeTest) -> bool:
    return _names_word(query_name, test.name) and (not test.column or _names_word(query_name, test.column))


def _names_word(text: str, word: str) -> bool:
    pattern = r"(?<![A-Za-z0-9_])" + re.escape(word.strip()) + r"(?![A-Za-z0-9_])"
    return bool(word.strip()) and re.search(pattern, text, flags=re.IGNORECASE) is not None


def node_outcomes(items: Sequence[Any]) -> tuple[NodeOutcome, ...]:
    outcomes = (node_outcome(item) for item in items if isinstance(item, Mapping))
    return tuple(outcome for outcome in outcomes if outcome is not None)


def _error_text(error: Any) -> str | None:
    if isinstance(error, Mapping):
        parts = [_text(error.get("errorString")), _text(error.get("errorDetail"))]
        text = "\n".join(part for part in parts if part)
        return text or None
    return _text(error) or None


def _int(value: Any) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
