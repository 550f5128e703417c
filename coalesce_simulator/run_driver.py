"""Demo mode: a background thread that keeps the simulated organisation busy.

Every ``interval`` seconds it starts a refresh run in the next environment (round robin), and
it drives every run started while demo mode is on (by itself or through
``POST /scheduler/startRun``) from waitingToRun through running to completed or, now and then,
failed, over ``duration`` seconds of real time.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from .data import SimulatorState
from .timeutil import UTC

logger = logging.getLogger(__name__)


class RunDriver:
    def __init__(self, state: SimulatorState, interval: float, duration: float) -> None:
        if interval < 0:
            raise ValueError("demo interval must be >= 0 (0 = only drive runs started via the API)")
        if duration <= 0:
            raise ValueError("demo run duration must be > 0")
        self.state = state
        self.interval = float(interval)
        self.duration = float(duration)
        # Ticking faster than a fifth of a run's duration keeps transitions close to schedule.
        self._tick = max(0.05, min(0.5, self.duration / 20, self.interval / 2 if self.interval else 0.5))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_environment = 0

    def start(self) -> None:
        # Runs created from now on carry wall-clock timestamps.
        self.state.use_real_clock()
        with self.state.lock:
            self.state.auto_drive_seconds = self.duration
        self._thread = threading.Thread(target=self._loop, name="coalesce-simulator-demo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.state.lock:
            self.state.auto_drive_seconds = None

    def _loop(self) -> None:
        next_start = time.monotonic()
        while True:
            try:
                if self.interval > 0 and time.monotonic() >= next_start:
                    self._start_one()
                    next_start = max(next_start + self.interval, time.monotonic())
                self.state.advance_all(datetime.now(UTC))
            except Exception:  # keep the demo alive; a dead driver would freeze every run
                logger.exception("demo driver tick failed")
            if self._stop.wait(self._tick):
                return

    def _start_one(self) -> None:
        with self.state.lock:
            environment_ids = sorted(self.state.environments, key=lambda env_id: (len(env_id), env_id))
            if not environment_ids:
                return
            environment_id = environment_ids[self._next_environment % len(environment_ids)]
            self._next_environment += 1
            run_id = self.state.start_run(environment_id)
        logger.info("demo: started run %s in environment %s", run_id, environment_id)
