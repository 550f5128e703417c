"""The `runs` resource: incremental on run id, with a second look at runs that were still going.

Coalesce has no "changed since" filter for runs, and a run's status and end time change after it
starts. So a sync keeps a *frontier* in dlt resource state (committed in the same load as the rows):

* `max_run_id`: every run at or below it has been loaded;
* `in_flight`: the runs at or below it that were not finished when they were loaded.

A sync then pages `/api/v1/runs` newest first and stops at the frontier (cost grows with new runs,
not with history), and re-reads each in-flight run by id, so a run loaded while `running` shows its
final status and end time after the next sync. The children (`run_results`, `run_status`) fetch only
for the runs this resource yields.

The frontier only moves when all three run tables are being loaded: a subset load (say `runs` alone
from the UI) must not let `run_results` skip runs it never saw. Subset loads re-read from the last
full frontier instead; merge keys make that idempotent.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator, Optional, Sequence

import dlt
from dlt.sources.helpers.rest_client.client import RESTClient

from .pagination import DATA_SELECTOR, CoalescePaginator
from .records import TERMINAL_RUN_STATUSES, normalize_run, run_columns

logger = logging.getLogger(__name__)

RUN_TABLES = ("runs", "run_results", "run_status")
RUNS_PATH = "api/v1/runs"


class RunFrontier:
    """What the last complete run sync loaded, as kept in dlt state."""

    def __init__(self, max_run_id: Optional[int] = None, in_flight: Iterable[int] = ()) -> None:
        self.max_run_id = max_run_id
        self.in_flight = set(in_flight)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RunFrontier":
        saved = state.get("frontier") or {}
        return cls(saved.get("max_run_id"), saved.get("in_flight", ()))

    def save(self, state: dict[str, Any]) -> None:
        state["frontier"] = {"max_run_id": self.max_run_id, "in_flight": sorted(self.in_flight)}

    def is_new(self, run_id: int) -> bool:
        return self.max_run_id is None or run_id > self.max_run_id


def runs_resource(
    client: RESTClient,
    base_url: str,
    page_size: int,
    run_ids: Optional[Sequence[int]] = None,
    advance_frontier: Optional[bool] = None,
) -> Any:
    """Build the `runs` resource.

    run_ids: load exactly these runs (the run-status sensor's mode); the frontier is left alone.
    advance_frontier: force whether this sync may move the frontier; by default it does when every
        run table is selected in the source being extracted.
    """

    @dlt.resource(name="runs", primary_key="id", write_disposition="merge", columns=run_columns())
    def runs() -> Iterator[list[dict[str, Any]]]:
        if run_ids is not None:
            yield from _runs_by_id(client, base_url, sorted({int(r) for r in run_ids}))
            return
        state = dlt.current.resource_state()
        frontier = RunFrontier.from_state(state)
        seen: dict[int, str] = {}  # run id -> status of every run yielded by this sync

        for page in _pages_newest_first(client, page_size):
            batch, reached_frontier = [], False
            for raw in page:
                run = normalize_run(raw, base_url)
                if run["id"] in seen:
                    continue
                if not frontier.is_new(run["id"]):
                    reached_frontier = True
                    continue
                seen[run["id"]] = run.get("runStatus", "")
                batch.append(run)
            if batch:
                yield batch
            if reached_frontier and _is_descending(page):
                break  # everything further down the list is older than the frontier

        revisit = sorted(frontier.in_flight - seen.keys())
        for batch in _runs_by_id(client, base_url, revisit):
            for run in batch:
                seen[run["id"]] = run.get("runStatus", "")
            yield batch

        should_advance = advance_frontier if advance_frontier is not None else _all_run_tables_selected()
        if should_advance:
            ids = [rid for rid in seen if frontier.is_new(rid)] + (
                [frontier.max_run_id] if frontier.max_run_id is not None else []
            )
            RunFrontier(
                max_run_id=max(ids) if ids else None,
                in_flight=[rid for rid, status in seen.items() if status not in TERMINAL_RUN_STATUSES],
            ).save(state)

    return runs


def _pages_newest_first(client: RESTClient, page_size: int) -> Iterator[list[dict[str, Any]]]:
    params = {"detail": "true", "orderBy": "id", "orderByDirection": "desc", "limit": page_size}
    yield from client.paginate(RUNS_PATH, params=params, paginator=CoalescePaginator(), data_selector=DATA_SELECTOR)


def _runs_by_id(client: RESTClient, base_url: str, run_ids: Sequence[int]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for run_id in run_ids:
        response = client.get(f"{RUNS_PATH}/{run_id}")
        if response.status_code == 404:
            # Deleted in Coalesce (or never existed): nothing to load, and nothing to revisit.
            logger.warning("Coalesce run %s no longer exists (404); skipping it.", run_id)
            continue
        response.raise_for_status()
        batch.append(normalize_run(response.json(), base_url))
        if len(batch) >= 100:
            yield batch
            batch = []
    if batch:
        yield batch


def _is_descending(page: list[dict[str, Any]]) -> bool:
    ids = [int(str(r.get("id"))) for r in page if r.get("id") is not None]
    return all(a >= b for a, b in zip(ids, ids[1:]))


def _all_run_tables_selected() -> bool:
    try:
        resources = dlt.current.source().resources
    except Exception:  # not inside a source extraction: treat as a full sync
        return True
    return all(name in resources and resources[name].selected for name in RUN_TABLES)
