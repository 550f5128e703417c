"""Follow Coalesce runs from tick to tick and report the ones that finished.

Pure logic over `CoalesceClient`, with no Dagster in it; `defs/sensors.py` wraps it in a sensor.

Each tick:
1. discovers runs newer than the cursor's high-water mark (`/api/v1/runs`, newest first, stopping at
   the mark, so the cost grows with new runs, never with history); on a first start only runs that
   started within the look-back window count, older history being the catch-up schedule's job;
2. asks `/scheduler/runStatus` about each run still in flight, oldest first, until the time budget
   is spent (the rest wait for the next tick);
3. returns the runs that reached `completed`, `failed` or `canceled`, and the next cursor.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

from .client import CoalesceClient, RunSummary
from .records import TERMINAL_RUN_STATUSES

logger = logging.getLogger(__name__)

CURSOR_VERSION = 1
UNKNOWN_STATUS = "unknown"  # a run followed whose status Coalesce did not give


@dataclass
class TrackerCursor:
    """What the sensor remembers between ticks (serialised as versioned JSON)."""

    high_water: Optional[int] = None  # highest run id discovered so far
    in_flight: dict[int, str] = field(default_factory=dict)  # run id -> last status seen

    def serialize(self) -> str:
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "high_water": self.high_water,
                "in_flight": {str(k): v for k, v in sorted(self.in_flight.items())},
            },
            sort_keys=True,
        )

    @classmethod
    def deserialize(cls, raw: Optional[str]) -> tuple["TrackerCursor", bool]:
        """The cursor, and whether `raw` was usable (False: a fresh start, say why in the log)."""
        if not raw:
            return cls(), True
        try:
            data = json.loads(raw)
            if data.get("version") != CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('version')!r} is not {CURSOR_VERSION}")
            high_water = data["high_water"]
            return (
                cls(
                    high_water=None if high_water is None else int(high_water),
                    in_flight={int(k): str(v) for k, v in dict(data["in_flight"]).items()},
                ),
                True,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning("Unreadable Coalesce run-status cursor (%s); starting fresh with the look-back.", error)
            return cls(), False


@dataclass
class TickResult:
    finished: list[RunSummary]
    cursor: TrackerCursor
    in_flight: int
    discovered: int
    polled: int
    budget_exhausted: bool


def track_runs(
    client: CoalesceClient,
    cursor: TrackerCursor,
    *,
    lookback: timedelta,
    time_budget_seconds: float,
    page_size: int = 100,
    now: Optional[datetime] = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickResult:
    """One tick of run tracking. Raises on API errors; the caller keeps the old cursor then."""
    deadline = clock() + time_budget_seconds
    now = now or datetime.now(timezone.utc)
    finished: dict[int, RunSummary] = {}
    in_flight = dict(cursor.in_flight)

    discovered, newest_seen = _discover(client, cursor.high_water, now - lookback, page_size)
    # Runs outside the look-back still move the mark: they are history, for the catch-up schedule.
    # With no runs at all the mark is 0, so every future run counts as new.
    high_water = max(newest_seen, cursor.high_water or 0)
    fresh: set[int] = set()
    for run in discovered:
        fresh.add(run.id)
        if run.is_terminal:
            finished[run.id] = run
            in_flight.pop(run.id, None)
        else:
            in_flight[run.id] = run.status or UNKNOWN_STATUS

    polled, exhausted = 0, False
    for run_id in sorted(set(in_flight) - fresh):
        if clock() >= deadline:
            exhausted = True
            break
        answer = client.run_status(run_id)
        polled += 1
        if answer is None:  # deleted in Coalesce: nothing left to load
            in_flight.pop(run_id)
        elif answer.status in TERMINAL_RUN_STATUSES:
            in_flight.pop(run_id)
            finished[run_id] = RunSummary(
                id=run_id, status=answer.status, run_type=answer.run_type, environment_id=None,
                start_time=None, link=answer.link,
            )
        else:
            # Still going, or Coalesce did not say (`runStatus` is optional): keep following it.
            in_flight[run_id] = answer.status or UNKNOWN_STATUS

    return TickResult(
        finished=[finished[k] for k in sorted(finished)],
        cursor=TrackerCursor(high_water=high_water, in_flight=in_flight),
        in_flight=len(in_flight),
        discovered=len(discovered),
        polled=polled,
        budget_exhausted=exhausted,
    )


def _discover(
    client: CoalesceClient, high_water: Optional[int], not_before: datetime, page_size: int
) -> tuple[list[RunSummary], int]:
    """Runs newer than `high_water` (on a first start: started after `not_before`), and the
    highest run id seen at all."""
    found: list[RunSummary] = []
    newest_seen = 0
    for page in client.run_pages_newest_first(page_size):
        reached_old_runs = False
        for run in page:
            newest_seen = max(newest_seen, run.id)
            if _is_old(run, high_water, not_before):
                reached_old_runs = True
            else:
                found.append(run)
        if reached_old_runs and _is_descending(page):
            break
    return found, newest_seen


def _is_old(run: RunSummary, high_water: Optional[int], not_before: datetime) -> bool:
    if high_water is not None:
        return run.id <= high_water
    started = _parse_time(run.start_time)
    return started is not None and started < not_before


def _is_descending(page: list[RunSummary]) -> bool:
    return all(a.id >= b.id for a, b in zip(page, page[1:]))


def _parse_time(value: Optional[str]) -> Optional[datetime]:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
