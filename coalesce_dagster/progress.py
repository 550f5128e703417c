"""Progress of a load, as dlt and Dagster users expect to see it.

dlt's `LogCollector` reports each step (extract, normalize, load) with per-resource row counts and
rates every `log_period` seconds and when the step ends. Here it writes to the Dagster run log (and
so to the terminal of `demo.sh`), and its extract lines add what matters for an API source:
the requests sent to Coalesce, how many are in flight, and how many were retried (each retry is also
logged with its cause and wait, by `coalesce/http.py`).
"""

from __future__ import annotations

import logging

from dlt.common.runtime.collector import LogCollector

from .coalesce.http import REQUESTS

# Often enough to show a long load is alive, rarely enough not to flood the run log.
LOG_PERIOD_SECONDS = 10.0


class LoadProgress(LogCollector):
    def __init__(self, logger: logging.Logger, log_period: float = LOG_PERIOD_SECONDS) -> None:
        super().__init__(log_period=log_period, logger=logger, dump_system_stats=False)
        self._sent_before = 0
        self._retried_before = 0

    def _start(self, step: str) -> None:
        super()._start(step)
        self._sent_before, self._retried_before = REQUESTS.sent, REQUESTS.retried

    def _log(self, log_level: int, log_message: str) -> None:
        if str(self.step or "").lower().startswith("extract"):
            log_message = (
                f"{log_message.rstrip()}\nCoalesce requests: {REQUESTS.sent - self._sent_before} sent, "
                f"{REQUESTS.in_flight} in flight, {REQUESTS.retried - self._retried_before} retried\n"
            )
        super()._log(log_level, log_message)
