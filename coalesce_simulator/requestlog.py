"""Thread-safe record of the requests a simulator has seen, for assertions in tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

CONTROL_PREFIX = "/_simulator"


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    status: int = 0  # final HTTP status; 0 while in flight or when the connection was reset
    user_agent: str = ""
    # time.monotonic() when the request arrived: tests compare when a retry came with when the
    # answer it retries was given (e.g. a 429's Retry-After), not wall-clock totals.
    arrived: float = field(default_factory=time.monotonic)
    # The request body as JSON (the text when it is not JSON; None when empty), so a test can
    # check what a client sent. The simulator's own log: it keeps what clients send, secrets too.
    body: Any = None


class RequestLog:
    """Arrival-ordered request records plus an in-flight gauge.

    Control-plane requests (``/_simulator/...``) are recorded but neither counted by
    :meth:`count` nor included in the concurrency gauge, so out-of-process tests can poll
    stats without disturbing what they measure.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Notified on every arrival and answer, so a test can wait for a request instead of polling.
        self._changed = threading.Condition(self._lock)
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self._max_concurrency = 0

    def begin(self, method: str, path: str, query: Mapping[str, str], user_agent: str = "") -> RequestRecord:
        record = RequestRecord(method, path, dict(query), user_agent=user_agent)
        with self._lock:
            self._records.append(record)
            if not _is_control(path):
                self._in_flight += 1
                self._max_concurrency = max(self._max_concurrency, self._in_flight)
            self._changed.notify_all()
        return record

    def end(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            record.status = status
            if not _is_control(record.path):
                self._in_flight -= 1
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[RequestRecord], bool], timeout: float) -> RequestRecord:
        """The first request (arrived or still to come) for which `predicate` holds.

        Wakes on each arrival and answer rather than polling; raises TimeoutError after `timeout`
        seconds without one (a bound for a test that would otherwise hang, not a schedule).
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self._records:
                    if predicate(record):
                        return record
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching request within {timeout:g} s")
                self._changed.wait(remaining)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, path_prefix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self._records if r.path.startswith(path_prefix) and not _is_control(r.path))

    @property
    def in_flight(self) -> int:
        """API requests arrived and not yet answered."""
        with self._lock:
            return self._in_flight

    @property
    def max_concurrency(self) -> int:
        with self._lock:
            return self._max_concurrency

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            # Requests still in flight keep counting; the high-water mark restarts from them.
            self._max_concurrency = self._in_flight


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")
