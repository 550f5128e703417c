"""Which environments' nodes a sync re-reads (docs/loading.md, "What a sync re-reads").

Coalesce has no "nodes changed since" listing, and reading every node of every environment is most
of a sync's requests (one `detail=true` page per 50 nodes). But an environment's nodes change when a
deploy runs in it. So a sync first asks for the deploy runs since the last one (`GET /api/v1/runs
?runType=deploy`, newest first, down to the newest deploy it saw: usually one request) and re-reads
an environment's nodes only when

* they were never read (or the state that says so was lost);
* a deploy of the environment started since the last sync: run ids only grow, so "since" is
  judged on ids, never on two machines' clocks;
* a deploy of it was still in flight when they were last read: it may have changed them since;
* or the periodic full re-read is due (`nodes_full_reread_hours`), the safety net for a change
  that came without a deploy run. A full re-read reads every environment and *replaces* the node
  tables, which also drops the nodes of environments deleted since.

The deploys are read before any node, so a deploy that starts while nodes are being read has a
higher id than the frontier this sync keeps, and the next sync re-reads its environment.

What was read is kept in the `environment_nodes` resource's dlt state, which dlt stores with the
load and restores only from a load that completed: after a failed load, the next sync re-reads the
same environments again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dlt.sources.helpers.rest_client.client import RESTClient

from ..lists import PageSize, read_runs_newest_first
from ..runs import runs_by_id
from ..types import TERMINAL_RUN_STATUSES

logger = logging.getLogger(__name__)

STATE_KEY = "reads"
DEPLOY_RUNS = {"runType": "deploy"}
# A sync that starts a little before the period is over also re-reads in full, so a daily schedule's
# few seconds of jitter do not push the full re-read a whole day later.
MAX_SLACK = timedelta(hours=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def full_reread_due(last_full_read: str | None, now: datetime, hours: float) -> bool:
    """Whether `hours` (less a twenty-fourth of them, at most an hour) have passed since the last full
    re-read, at `last_full_read` (ISO); always when there was none."""
    if last_full_read is None:
        return True
    period = timedelta(hours=hours)
    return now - datetime.fromisoformat(last_full_read) >= period - min(MAX_SLACK, period / 24)


@dataclass(frozen=True)
class RereadPlan:
    """This sync's answer: whether every environment is read, and which ones are otherwise."""

    full: bool
    known: frozenset[str]  # environments read by an earlier sync (since the last full re-read)
    deployed: frozenset[str]  # a deploy since the last sync, or one in flight at their last read
    every_environment: bool = False  # a deploy run naming no environment: read them all
    # Deploys not finished now, per environment: their environment is read again next sync.
    in_flight: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def reads(self, environment_id: str) -> bool:
        return (
            self.full
            or self.every_environment
            or environment_id not in self.known
            or environment_id in self.deployed
        )


class NodeRereads:
    """Makes the plan once per sync (on the first page of environments) and records each environment
    read in the resource state."""

    def __init__(
        self,
        client: RESTClient,
        page_size: PageSize,
        full_reread_hours: float,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._page_size = page_size
        self._full_reread_hours = full_reread_hours
        self._now = now
        self._plan: RereadPlan | None = None
        self._started_at = ""
        # `environment_nodes` may read several lists of environments side by side, on pool threads:
        # the first to ask makes the plan (reading the deploys once), the others wait for it.
        self._planning = threading.Lock()

    def plan(self, state: dict[str, Any]) -> RereadPlan:
        with self._planning:
            if self._plan is None:
                self._plan = self._make_plan(state.setdefault(STATE_KEY, {}))
            return self._plan

    def record_read(self, state: dict[str, Any], environment_id: str) -> None:
        """Say in `state` that `environment_id`'s nodes are read by this sync."""
        plan = self.plan(state)
        state[STATE_KEY]["environments"][environment_id] = {
            "read_at": self._started_at,
            "deploys_in_flight": list(plan.in_flight.get(environment_id, ())),
        }

    def _make_plan(self, saved: dict[str, Any]) -> RereadPlan:
        now = self._now()
        self._started_at = now.isoformat(timespec="seconds")
        frontier: int | None = saved.get("deploy_frontier")
        environments: dict[str, Any] = saved.get("environments") or {}
        new, newest = self._deploys_since(frontier)
        waited_for = {
            int(run_id) for env in environments.values() for run_id in env.get("deploys_in_flight", ())
        }
        rechecked = self._deploys_by_id(sorted(waited_for - {run["id"] for run in new}))

        full = full_reread_due(saved.get("full_read_at"), now, self._full_reread_hours)
        in_flight: dict[str, tuple[int, ...]] = {}
        for run in [*new, *rechecked]:
            if run["runStatus"] not in TERMINAL_RUN_STATUSES and run["environmentID"] is not None:
                in_flight[run["environmentID"]] = (*in_flight.get(run["environmentID"], ()), run["id"])
        plan = RereadPlan(
            full=full,
            known=frozenset(environments),
            deployed=frozenset(run["environmentID"] for run in new if run["environmentID"] is not None)
            | frozenset(env_id for env_id, env in environments.items() if env.get("deploys_in_flight")),
            every_environment=any(run["environmentID"] is None for run in new),
            in_flight=in_flight,
        )
        known_ids = [run_id for run_id in (frontier, newest) if run_id is not None]
        saved["deploy_frontier"] = max(known_ids) if known_ids else None
        if full:
            # Every environment is read now; one deleted since is forgotten with its rows.
            saved["full_read_at"] = self._started_at
            saved["environments"] = {}
        else:
            saved.setdefault("environments", {})
        _log_plan(plan)
        return plan

    def _deploys_since(self, frontier: int | None) -> tuple[list[dict[str, Any]], int | None]:
        """The deploy runs above `frontier`, and the highest deploy run id seen. With no frontier (a
        first sync, which reads every environment anyway) only the newest page is read: enough for
        the frontier and for the deploys in flight, which are the newest."""
        new: list[dict[str, Any]] = []
        newest: int | None = None
        pages = read_runs_newest_first(
            self._client,
            self._page_size,
            detail=False,
            is_known=lambda run: frontier is not None and run["id"] <= frontier,
            filters=DEPLOY_RUNS,
        )
        for page in pages:
            # A server that ignored the filter sends refresh runs too: only deploys count.
            new.extend(run for run in page.new_runs if run.get("runType") == DEPLOY_RUNS["runType"])
            if page.highest_id is not None:
                newest = max(newest or page.highest_id, page.highest_id)
            if frontier is None:
                break
        return new, newest

    def _deploys_by_id(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """The deploys that were in flight at the last read, as they are now (gone ones left out)."""
        return [run for batch in runs_by_id(self._client, run_ids) for run in batch]


def _log_plan(plan: RereadPlan) -> None:
    if plan.full:
        logger.info("Reading the nodes of every Coalesce environment (a first or periodic full re-read).")
    elif plan.every_environment:
        logger.info("A Coalesce deploy run names no environment: reading the nodes of every environment.")
    else:
        logger.info(
            "Reading the nodes of Coalesce environments with a deploy since the last sync (%s) and of "
            "any not read before; the others are unchanged since their last read.",
            ", ".join(sorted(plan.deployed)) or "none",
        )
