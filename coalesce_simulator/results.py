"""``SimulatorState.results``: run id -> RunResult list, without keeping history in memory.

A large simulated organisation has a million historical results; storing them would cost
gigabytes and most of the start-up time. Runs that finished in the generated history are
registered as *lazy* instead, and their results are rebuilt on access by a callback that is a
pure function of the seed and the run record, so every access returns equal data. A small LRU
keeps the most recently used lists, so a handler and a test that look at the same run twice
pay once. Every other run (started, re-run or added after start-up, or still in flight) has its
list stored as before.

It behaves like the dict it replaces: ``results[run_id]``, ``.get``, ``in``, iteration in run
creation order, ``.items()``, assignment. Treat returned lists as read-only: a change to a
rebuilt list is lost when it leaves the LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

ResultList = list[dict[str, Any]]

DEFAULT_CACHE_SIZE = 64


class RunResults(MutableMapping[int, ResultList]):
    def __init__(self, rebuild: Callable[[int], ResultList], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._rebuild = rebuild
        self._cache_size = cache_size
        # run id -> stored list, or None for a lazy run; insertion order is run creation order.
        self._entries: dict[int, ResultList | None] = {}
        self._cache: OrderedDict[int, ResultList] = OrderedDict()
        self._lock = threading.Lock()  # guards the LRU only; callers hold the state lock for the rest

    def mark_lazy(self, run_id: int) -> None:
        """From now on, rebuild ``run_id``'s results on access instead of storing them."""
        self._entries[run_id] = None
        with self._lock:
            self._cache.pop(run_id, None)

    def is_lazy(self, run_id: int) -> bool:
        return run_id in self._entries and self._entries[run_id] is None

    def __getitem__(self, run_id: int) -> ResultList:
        stored = self._entries[run_id]  # KeyError for an unknown run, like a dict
        if stored is not None:
            return stored
        with self._lock:
            cached = self._cache.get(run_id)
            if cached is not None:
                self._cache.move_to_end(run_id)
                return cached
        built = self._rebuild(run_id)
        with self._lock:
            self._cache[run_id] = built
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return built

    def __setitem__(self, run_id: int, results: ResultList) -> None:
        self._entries[run_id] = results
        with self._lock:
            self._cache.pop(run_id, None)

    def __delitem__(self, run_id: int) -> None:
        del self._entries[run_id]
        with self._lock:
            self._cache.pop(run_id, None)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries  # without rebuilding anything

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        lazy = sum(1 for value in self._entries.values() if value is None)
        return f"<RunResults: {len(self._entries)} runs, {lazy} rebuilt on access>"
