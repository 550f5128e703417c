"""A small typed client for the calls the run-status sensor makes.

It rides on dlt's `RESTClient` and the same session setup as the load (`http.coalesce_session`), so
it shares the load path's retry policy (429 with Retry-After, 5xx, connection errors; other 4xx
fail at once), with shorter timeouts: a sensor tick has a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import RESTClient

from .. import __version__
from .config import resolve_access_token, resolve_base_url
from .errors import UnexpectedResponseError, raise_for_coalesce_status
from .http import coalesce_session
from .lists import PageSize, read_runs_newest_first
from .types import CoalesceRun


@dataclass(frozen=True)
class SchedulerStatus:
    """What `/scheduler/runStatus` says about a run."""

    status: str | None
    run_type: str | None
    link: str | None


# A sensor tick must finish inside Dagster's 60 s evaluation timeout, so the shared retry policy is
# capped here: no single wait or request may eat the whole tick.
SENSOR_MAX_TIMEOUT = 15.0
# A tick usually finds a handful of new runs: a small first page is all it reads.
SENSOR_RUNS_PAGE_SIZE = 100
SENSOR_MAX_RETRY_DELAY = 10.0


class CoalesceClient:
    """Coalesce calls outside the dlt load, with the same `[runtime]` retry policy (capped)."""

    def __init__(self, base_url: str, access_token: str) -> None:
        self.base_url = resolve_base_url(base_url)
        session = coalesce_session(
            self.base_url, max_timeout=SENSOR_MAX_TIMEOUT, max_retry_delay=SENSOR_MAX_RETRY_DELAY
        )
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=BearerTokenAuth(token=access_token),
            headers={"Accept": "application/json", "User-Agent": f"coalesce-dagster/{__version__}"},
            session=session,
        )
        self._runs_page_size = PageSize("runs", SENSOR_RUNS_PAGE_SIZE)

    @classmethod
    def from_config(cls, base_url: str | None = None, access_token: str | None = None) -> CoalesceClient:
        """A client for the configured account (`config.py`); raises `ConfigurationError` first."""
        return cls(resolve_base_url(base_url), resolve_access_token(access_token))

    def new_runs(
        self, is_known: Callable[[CoalesceRun], bool], page_size: int | None = None
    ) -> Iterator[tuple[list[CoalesceRun], int | None]]:
        """Runs newest first, down to the known ones (`lists.read_runs_newest_first`), as summaries:
        per page, the new runs and the highest run id on the page."""
        sizes = PageSize("runs", page_size) if page_size else self._runs_page_size
        for page in read_runs_newest_first(
            self._rest, sizes, detail=False, is_known=lambda row: is_known(_run(row))
        ):
            yield [_run(row) for row in page.new_runs], page.highest_id

    def run_status(self, run_id: int) -> SchedulerStatus | None:
        """The scheduler's view of a run, or None if Coalesce no longer knows the run (404)."""
        response = self._rest.get("scheduler/runStatus", params={"runCounter": run_id})
        if response.status_code == 404:
            return None
        raise_for_coalesce_status(response)
        body = response.json()
        if not isinstance(body, dict):
            raise UnexpectedResponseError(f"the status of run {run_id}", f"got {type(body).__name__}")
        return SchedulerStatus(
            status=_text(body.get("runStatus")),
            run_type=_text(body.get("runType")),
            link=_text(body.get("runLink")),
        )


def _run(row: dict[str, Any]) -> CoalesceRun:
    return CoalesceRun(
        id=row["id"],
        status=_text(row.get("runStatus")),
        run_type=row.get("runType"),
        environment_id=row.get("environmentID"),
        start_time=row.get("runStartTime"),
    )


def _text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)
