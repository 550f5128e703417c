"""The `runs` resource: incremental on run id, with a second look at runs that need one.

Coalesce has no "changed since" filter for runs, and a run's status and end time change after it
starts. So a sync keeps a *frontier* in dlt resource state, committed in the same load as the rows:

* `highest_run_id`: every run at or below it has been seen;
* `revisit`: the runs at or below it to read again next time, each with the reason: its status when
  it was still in flight, or `unconfirmed` when its results or its status did not arrive.

A sync pages `/api/v1/runs` newest first and stops at the frontier (cost grows with new runs, not
with history), then re-reads each run to revisit by id. The children (`run_results`, `run_status`)
fetch only for the runs this resource yields, on dlt's extract pool, and report each answer to a
`RunLedger`: a run leaves the revisit list only once both of its children were answered in the same
load, so the frontier never moves past a run whose results or status did not land; or, with a
warning, after `MAX_UNCONFIRMED_SYNCS` syncs in a row without them.

The frontier only moves when all three run tables are being loaded: a subset load (say `runs` alone
from the UI) must not let `run_results` skip runs it never saw. Subset loads re-read from the last
full frontier instead; merge keys make that idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dlt
from dlt.sources.helpers.requests import Response
from dlt.sources.helpers.rest_client.client import RESTClient

from .columns import run_columns
from .lists import RUNS_PATH, PageSize, read_runs_newest_first
from .rows import run_row
from .types import TERMINAL_RUN_STATUSES

logger = logging.getLogger(__name__)

RUN_TABLES = ("runs", "run_results", "run_status")
CHILD_TABLES = ("run_results", "run_status")
UNCONFIRMED = "unconfirmed"  # revisit reason: the run's results or status did not arrive
# How many syncs in a row a finished run is read again while its results or status do not arrive
# (a 404 for a run that exists). A transient gap heals within them; a scheduler that never knew an
# old run must not cost every later sync three requests for it.
MAX_UNCONFIRMED_SYNCS = 5


class RunFrontier:
    """What the last complete run sync saw, as kept in dlt state."""

    def __init__(self, highest_run_id: int | None = None, revisit: Mapping[int, str] | None = None) -> None:
        self.highest_run_id = highest_run_id
        self.revisit: dict[int, str] = dict(revisit or {})

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RunFrontier:
        saved = state.get("frontier") or {}
        revisit = {int(run_id): str(reason) for run_id, reason in (saved.get("revisit") or {}).items()}
        # State written before `revisit` existed listed in-flight run ids only.
        revisit.update(
            {int(run_id): "in flight" for run_id in saved.get("in_flight", ()) if int(run_id) not in revisit}
        )
        # ...and called the highest run id `max_run_id`.
        return cls(saved.get("highest_run_id", saved.get("max_run_id")), revisit)

    def is_new(self, run_id: int) -> bool:
        return self.highest_run_id is None or run_id > self.highest_run_id


class RunLedger:
    """Which runs of this sync had their results and their status answered, and the frontier that
    follows from it.

    The children answer on dlt's extract pool, possibly after the runs resource has finished, so
    the frontier in state is kept current as answers arrive: `publish` writes it once the runs
    are known, and each later answer takes its run off the revisit list. dlt commits resource state
    with the load, after the last child request has finished.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answered: dict[int, set[str]] = {}
        self._revisit: dict[str, str] | None = None  # the dict published into dlt state

    def response_hook(self, child: str) -> Callable[..., Response]:
        """A response hook for `child`'s requests: only an answer with data (200) counts. A 404 loads
        nothing and is not an answer: the run is read again next sync, and drops out only when the
        run itself is gone."""
        if child not in CHILD_TABLES:
            raise ValueError(f"not a child of runs: {child}")

        def record_answer(response: Response, *args: Any, **kwargs: Any) -> Response:
            if response.status_code == 200:
                self.answered(child, _run_id_of_request(response))
            return response

        return record_answer

    def answered(self, child: str, run_id: int) -> None:
        with self._lock:
            children = self._answered.setdefault(run_id, set())
            children.add(child)
            if self._revisit is not None and len(children) == len(CHILD_TABLES):
                if _unconfirmed_syncs(self._revisit.get(str(run_id))):
                    del self._revisit[str(run_id)]

    def publish(
        self,
        state: dict[str, Any],
        highest_run_id: int | None,
        statuses: Mapping[int, str | None],
        previous: Mapping[int, str],
    ) -> None:
        """Write the frontier after a sync that yielded the runs `statuses` (run id -> status);
        `previous`: the revisit list this sync started from."""
        with self._lock:
            revisit: dict[str, str] = {}
            for run_id, status in sorted(statuses.items()):
                if status not in TERMINAL_RUN_STATUSES:
                    revisit[str(run_id)] = status or "unknown"
                elif len(self._answered.get(run_id, ())) < len(CHILD_TABLES):
                    syncs = _unconfirmed_syncs(previous.get(run_id)) + 1
                    if syncs >= MAX_UNCONFIRMED_SYNCS:
                        logger.warning(
                            "Coalesce has not answered the results or the status of run %s in %d syncs "
                            "(404); it is not asked again, and what did not arrive stays missing.",
                            run_id,
                            MAX_UNCONFIRMED_SYNCS,
                        )
                        continue
                    revisit[str(run_id)] = UNCONFIRMED if syncs == 1 else f"{UNCONFIRMED} {syncs}"
            state["frontier"] = {"highest_run_id": highest_run_id, "revisit": revisit}
            self._revisit = revisit


def runs_resource(
    client: RESTClient,
    page_size: int,
    ledger: RunLedger,
    run_ids: Sequence[int] | None = None,
) -> Any:
    """Build the `runs` resource.

    run_ids: load exactly these runs (the run-status sensor's mode); the frontier is left alone.
    """
    pages = PageSize("runs", page_size)

    @dlt.resource(
        name="runs", primary_key="id", write_disposition="merge", columns=run_columns(), parallelized=True
    )
    def runs() -> Iterator[list[dict[str, Any]]]:
        if run_ids is not None:
            yield from runs_by_id(client, sorted({int(r) for r in run_ids}))
            return
        state = dlt.current.resource_state()
        frontier = RunFrontier.from_state(state)
        seen: dict[int, str | None] = {}  # run id -> status of every run yielded by this sync

        is_known = lambda run: not frontier.is_new(run["id"])  # noqa: E731
        for page in read_runs_newest_first(client, pages, detail=True, is_known=is_known):
            for run in page.new_runs:
                seen[run["id"]] = run.get("runStatus")
            if page.new_runs:
                yield page.new_runs

        revisit = sorted(set(frontier.revisit) - seen.keys())
        for batch in runs_by_id(client, revisit):
            for run in batch:
                seen[run["id"]] = run.get("runStatus")
            yield batch

        if _all_run_tables_selected():
            known = [*seen, *([frontier.highest_run_id] if frontier.highest_run_id is not None else [])]
            ledger.publish(state, max(known) if known else None, seen, frontier.revisit)

    return runs


def _unconfirmed_syncs(reason: str | None) -> int:
    """How many syncs in a row a run has been unconfirmed: `unconfirmed` is one, `unconfirmed 3` three;
    0 for any other reason (still in flight) or none."""
    if not reason or not reason.startswith(UNCONFIRMED):
        return 0
    count = reason[len(UNCONFIRMED) :].strip()
    return int(count) if count.isdigit() else 1


def runs_by_id(client: RESTClient, run_ids: Sequence[int]) -> Iterator[list[dict[str, Any]]]:
    """The runs `run_ids`, read one by one, in batches of 100; a run Coalesce no longer knows (404)
    is skipped."""
    batch: list[dict[str, Any]] = []
    for run_id in run_ids:
        response = client.get(f"{RUNS_PATH}/{run_id}")
        if response.status_code == 404:
            # Deleted in Coalesce (or never existed): nothing to load, and nothing to revisit.
            logger.warning("Coalesce run %s no longer exists (404); skipping it.", run_id)
            continue
        response.raise_for_status()
        batch.append(run_row(response.json()))
        if len(batch) >= 100:
            yield batch
            batch = []
    if batch:
        yield batch


def _all_run_tables_selected() -> bool:
    try:
        resources = dlt.current.source().resources
    except Exception:  # not inside a source extraction: treat as a full sync
        return True
    return all(name in resources and resources[name].selected for name in RUN_TABLES)


def _run_id_of_request(response: Response) -> int:
    """The run a child request asked about: `/api/v1/runs/{id}/results` or `?runCounter={id}`."""
    url = urlsplit(str(response.request.url if response.request is not None else response.url))
    counter = parse_qs(url.query).get("runCounter")
    if counter:
        return int(counter[0])
    parts = url.path.rstrip("/").split("/")
    return int(parts[parts.index("runs") + 1])
