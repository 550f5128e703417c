"""Coalesce's run vocabulary, typed: run statuses, node states, and the run record the sensor uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any


class RunStatus(str, Enum):
    """A run's `runStatus` (docs/coalesce-api.md §5). `/scheduler/runStatus` also reports the early
    phases `initializing` and `rendering`; every status but the last three means "not finished"."""

    WAITING_TO_RUN = "waitingToRun"
    INITIALIZING = "initializing"
    RENDERING = "rendering"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
# As plain strings, for rows and cursors, which carry statuses as Coalesce sent them.
TERMINAL_RUN_STATUSES = frozenset(status.value for status in _TERMINAL)


def is_terminal(status: str | None) -> bool:
    """Whether a status as Coalesce sent it (possibly None or unknown) means the run is over."""
    return status in TERMINAL_RUN_STATUSES


# A node that failed reports runState `error` on some accounts and `failed` on others (§10.4). The raw
# value is stored as reported; everything that counts or reports failures treats both as a failure.
FAILED_NODE_STATES = frozenset({"error", "failed"})


@dataclass(frozen=True)
class CoalesceRun:
    """A run as the sensor follows it."""

    id: int
    status: str | None  # None: Coalesce did not say (the scheduler's `runStatus` is optional)
    run_type: str | None = None
    environment_id: str | None = None
    start_time: str | None = None
    # The `runLink` /scheduler/runStatus returned; None until it has. Never built by us: the real
    # UI's run URL carries a UUID, not the run id (§10.3).
    link: str | None = None

    @property
    def is_terminal(self) -> bool:
        return is_terminal(self.status)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 time as Coalesce sends it (`Z` or an offset; none means UTC), or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
