"""Timestamps and the simulator clock.

Coalesce returns ISO-8601 UTC strings such as ``2019-08-24T14:15:22Z``. The simulator keeps
timestamps in that form inside its records (so records are JSON-ready) and parses them only to
sort or compare.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

UTC = UTC

#: Start of the generated history: run N starts at BASE_TIME + N * RUN_SPACING.
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
RUN_SPACING = timedelta(minutes=37)


def to_iso(moment: datetime) -> str:
    """Format as ``YYYY-MM-DDTHH:MM:SSZ``, adding milliseconds only when present."""
    moment = moment.astimezone(UTC)
    # Hand formatting: strftime is a hot spot when generating thousands of results.
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 date-time; naive values are taken as UTC. Raises ValueError."""
    if not isinstance(text, str) or "T" not in text:
        # A bare date or a number is not a date-time cursor.
        raise ValueError(f"not an ISO date-time: {text!r}")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _truncate_to_ms(moment: datetime) -> datetime:
    # Millisecond precision keeps to_iso/parse_iso an exact round trip.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class SimClock:
    """Monotonic clock that is deterministic until switched to real time.

    Deterministic mode returns ``start``, ``start + 1s``, ``start + 2s``... one tick per call, so
    the timestamps of runs created by a test depend only on the order of calls. Real mode (demo)
    follows the wall clock but never goes backwards or repeats, so run start times still increase
    with run ids.
    """

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=1)) -> None:
        self._lock = threading.Lock()
        self._next = start
        self._step = step
        self._last: datetime | None = None
        self._real = False

    @property
    def real_time(self) -> bool:
        return self._real

    def use_real_time(self) -> None:
        with self._lock:
            self._real = True

    def now(self) -> datetime:
        with self._lock:
            if self._real:
                candidate = _truncate_to_ms(datetime.now(UTC))
                if self._last is not None and candidate <= self._last:
                    candidate = self._last + timedelta(milliseconds=1)
            else:
                candidate = self._next
                if self._last is not None and candidate <= self._last:
                    candidate = self._last + self._step
                self._next = candidate + self._step
            self._last = candidate
            return candidate
