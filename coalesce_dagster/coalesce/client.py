"""A small typed client for the calls the run-status sensor makes.

It rides on dlt's `RESTClient` and request helper, so it shares the load path's retry policy (429
with Retry-After, 5xx, connection errors; other 4xx fail at once) and its URL sanitising, with its
own, shorter timeouts: a sensor tick has a deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import dlt
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import RESTClient

from .. import __version__
from .errors import UnexpectedResponseError, raise_for_coalesce_status
from .http import coalesce_session
from .pagination import DATA_SELECTOR, CoalescePaginator
from .records import TERMINAL_RUN_STATUSES, normalize_run
from .regions import normalize_base_url, run_link


@dataclass(frozen=True)
class RunSummary:
    id: int
    status: str
    run_type: Optional[str]
    environment_id: Optional[str]
    start_time: Optional[str]
    link: str

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


# A sensor tick must finish inside Dagster's 60 s evaluation timeout, so the shared retry policy is
# capped here: no single wait or request may eat the whole tick.
SENSOR_MAX_TIMEOUT = 15.0
SENSOR_MAX_RETRY_DELAY = 10.0


def _runtime(key: str, default: float) -> float:
    value = dlt.config.get(f"runtime.{key}")
    return default if value is None else float(value)


class CoalesceClient:
    """Coalesce calls outside the dlt load, with the same `[runtime]` retry policy (capped)."""

    def __init__(self, base_url: str, access_token: str) -> None:
        self.base_url = normalize_base_url(base_url)
        session = coalesce_session(
            self.base_url,
            request_timeout=min(_runtime("request_timeout", 60), SENSOR_MAX_TIMEOUT),
            request_max_attempts=int(_runtime("request_max_attempts", 5)),
            request_backoff_factor=_runtime("request_backoff_factor", 1),
            request_max_retry_delay=min(_runtime("request_max_retry_delay", 60), SENSOR_MAX_RETRY_DELAY),
        )
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=BearerTokenAuth(token=access_token),
            headers={"Accept": "application/json", "User-Agent": f"coalesce-dagster/{__version__}"},
            session=session,
        )

    def run_pages_newest_first(self, page_size: int = 100) -> Iterator[list[RunSummary]]:
        """Pages of runs, newest first (summaries); stop iterating when you have seen enough."""
        params = {"detail": "false", "orderBy": "id", "orderByDirection": "desc", "limit": page_size}
        seen: set[int] = set()
        for page in self._rest.paginate(
            "api/v1/runs",
            params=params,
            paginator=CoalescePaginator(),
            data_selector=DATA_SELECTOR,
            hooks={"response": [raise_for_coalesce_status]},
        ):
            summaries = [self._summary(raw) for raw in page]
            fresh = [s for s in summaries if s.id not in seen]  # an inclusive cursor repeats one
            seen.update(s.id for s in fresh)
            yield fresh

    def run_link(self, run_id: int) -> str:
        return run_link(self.base_url, run_id)

    def run_status(self, run_id: int) -> Optional[str]:
        """The scheduler's status of a run, or None if Coalesce no longer knows the run."""
        response = self._rest.get("scheduler/runStatus", params={"runCounter": run_id})
        if response.status_code == 404:
            return None
        raise_for_coalesce_status(response)
        body = response.json()
        if not isinstance(body, dict) or not body.get("runStatus"):
            raise UnexpectedResponseError(f"the status of run {run_id}", "no runStatus")
        return str(body["runStatus"])

    def _summary(self, raw: dict[str, Any]) -> RunSummary:
        run = normalize_run(raw, self.base_url)
        return RunSummary(
            id=run["id"],
            status=str(run.get("runStatus") or ""),
            run_type=run.get("runType"),
            environment_id=run.get("environmentID"),
            start_time=run.get("runStartTime"),
            link=run.get("runLink") or run_link(self.base_url, run["id"]),
        )
