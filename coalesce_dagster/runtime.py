"""Process-wide settings of the process a load runs in."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_frozen = threading.Event()


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of reach of Python's cyclic garbage collector, once per process.

    A load runs in a process that holds hundreds of thousands of long-lived objects before it reads
    a byte (Dagster, dlt, pydantic, the definitions, the instance), and then creates many more
    short-lived ones (rows). Without this, every full collection during the load walks the long-lived
    ones again, and so do the collections of the interpreter's shutdown, which `dagster asset
    materialize` waits for after the run has finished (docs/benchmark.md, "Garbage collection").
    Frozen objects are still freed by reference counting; only cycles among them are never
    collected, which costs nothing here: they live as long as the process does. Once per process, so
    that a long-lived process running many loads (a test worker) freezes only its start-up objects.
    """
    if _frozen.is_set():
        return
    _frozen.set()
    gc.freeze()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No cyclic garbage collection within the block; the objects alive at its end are frozen.

    For a block that makes objects which live as long as the process (loading the definitions):
    collecting while they are made finds nothing to free, and walks all of them each time. Garbage
    cycles made within the block stay frozen too (about 1 MB for the definitions load)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.freeze()
