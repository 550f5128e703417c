"""Follow Coalesce runs from tick to tick and report the ones that finished.

Pure logic over `CoalesceClient`, with no Dagster in it; `defs/sensors.py` wraps it in a sensor.

Each tick:
1. discovers runs above the cursor's highest run id (`/api/v1/runs`, newest first, stopping there,
   so the cost grows with new runs, never with history); on a first start only runs that started
   within the look-back window count, older history being the catch-up schedule's job;
2. asks `/scheduler/runStatus` about each run still in flight, oldest first, until the time budget
   is spent (the rest wait for the next tick);
3. returns the runs that reached `completed`, `failed` or `canceled`, and the next cursor.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .client import CoalesceClient
from .types import CoalesceRun, is_terminal, parse_timestamp

logger = logging.getLogger(__name__)

CURSOR_VERSION = 2  # 1 called the highest run id `high_water`; it is still read
UNKNOWN_STATUS = "unknown"  # a run followed whose status Coalesce did not give


@dataclass
class TrackerCursor:
    """What the sensor remembers between ticks (serialised as versioned JSON)."""

    highest_run_id: int | None = None  # every run at or below it has been discovered
    in_flight: dict[int, str] = field(default_factory=dict)  # run id -> last status seen

    def serialize(self) -> str:
        return json.dumps(
            {
                "version": CURSOR_VERSION,
                "highest_run_id": self.highest_run_id,
                "in_flight": {str(k): v for k, v in sorted(self.in_flight.items())},
            },
            sort_keys=True,
        )

    @classmethod
    def deserialize(cls, raw: str | None) -> tuple[TrackerCursor, bool]:
        """The cursor, and whether `raw` was usable (False: a fresh start, say why in the log)."""
        if not raw:
            return cls(), True
        try:
            data = json.loads(raw)
            version = data.get("version")
            if version not in (1, CURSOR_VERSION):
                raise ValueError(f"cursor version {version!r} is not {CURSOR_VERSION}")
            highest = data["high_water" if version == 1 else "highest_run_id"]
            return (
                cls(
                    highest_run_id=None if highest is None else int(highest),
                    in_flight={int(k): str(v) for k, v in dict(data["in_flight"]).items()},
                ),
                True,
            )
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            logger.warning(
                "Unreadable Coalesce run-status cursor (%s); starting fresh with the look-back.", error
            )
            return cls(), False


@dataclass
class TickResult:
    finished: list[CoalesceRun]
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
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickResult:
    """One tick of run tracking. Raises on API errors; the caller keeps the old cursor then."""
    deadline = clock() + time_budget_seconds
    now = now or datetime.now(UTC)
    finished: dict[int, CoalesceRun] = {}
    in_flight = dict(cursor.in_flight)

    discovered, highest_seen = _discover(client, cursor.highest_run_id, now - lookback)
    # Runs outside the look-back still move the mark: they are history, for the catch-up schedule.
    # With no runs at all the mark is 0, so every future run counts as new.
    highest_run_id = max(highest_seen, cursor.highest_run_id or 0)
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
        elif is_terminal(answer.status):
            in_flight.pop(run_id)
            finished[run_id] = CoalesceRun(
                id=run_id, status=answer.status, run_type=answer.run_type, link=answer.link
            )
        else:
            # Still going, or Coalesce did not say (`runStatus` is optional): keep following it.
            in_flight[run_id] = answer.status or UNKNOWN_STATUS

    return TickResult(
        finished=[finished[k] for k in sorted(finished)],
        cursor=TrackerCursor(highest_run_id=highest_run_id, in_flight=in_flight),
        in_flight=len(in_flight),
        discovered=len(discovered),
        polled=polled,
        budget_exhausted=exhausted,
    )


def _discover(
    client: CoalesceClient, highest_run_id: int | None, not_before: datetime
) -> tuple[list[CoalesceRun], int]:
    """Runs above `highest_run_id` (on a first start: started after `not_before`), and the highest
    run id seen at all."""

    def is_known(run: CoalesceRun) -> bool:
        if highest_run_id is not None:
            return run.id <= highest_run_id
        started = parse_timestamp(run.start_time)
        return started is not None and started < not_before

    found: list[CoalesceRun] = []
    highest_seen = 0
    for new_runs, page_highest in client.new_runs(is_known):
        found.extend(new_runs)
        highest_seen = max(highest_seen, page_highest or 0)
    return found, highest_seen
