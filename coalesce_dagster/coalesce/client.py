"""A small typed client for the calls the run-status sensor makes.

It rides on dlt's `RESTClient` and the same session setup as the load (`http.coalesce_session`), so
it shares the load path's retry policy (429 with Retry-After, 5xx, connection errors; other 4xx
fail at once), with shorter timeouts: a sensor tick has a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import RESTClient

from ..configuration import resolve_access_token, resolve_base_url
from .errors import UnexpectedResponseError, raise_for_coalesce_status
from .http import coalesce_headers, coalesce_session
from .lists import PageSize, read_runs_newest_first
from .pagination import run_results_envelope
from .rows import run_row
from .run_report import RunReport, node_outcomes
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
            headers=coalesce_headers(),
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
        body = self._object("scheduler/runStatus", f"the status of run {run_id}", {"runCounter": run_id})
        if body is None:
            return None
        return SchedulerStatus(
            status=_text(body.get("runStatus")),
            run_type=_text(body.get("runType")),
            link=_text(body.get("runLink")),
        )

    def run_detail(self, run_id: int) -> dict[str, Any] | None:
        """`GET /api/v1/runs/{id}` as `rows.run_row` shapes it, or None if Coalesce no longer knows it."""
        body = self._object(f"api/v1/runs/{run_id}", f"run {run_id}")
        return None if body is None else run_row(body)

    def environment(self, environment_id: str) -> dict[str, Any] | None:
        """`GET /api/v1/environments/{id}`, or None if Coalesce does not know it (404)."""
        return self._object(f"api/v1/environments/{environment_id}", f"environment {environment_id}")

    def _object(self, path: str, what: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """A JSON object from Coalesce; None for a 404 (Coalesce no longer knows it)."""
        response = self._rest.get(path, params=params)
        if response.status_code == 404:
            return None
        raise_for_coalesce_status(response)
        body = response.json()
        if not isinstance(body, dict):
            raise UnexpectedResponseError(what, f"got {type(body).__name__}")
        return body

    def run_results(self, run_id: int) -> list[Any]:
        """The per-node results of a run, whichever envelope they come in (`pagination`)."""
        response = self._rest.get(f"api/v1/runs/{run_id}/results", hooks={"response": [run_results_envelope]})
        if response.status_code == 404:
            return []
        raise_for_coalesce_status(response)
        return list(response.json()["data"])

    def run_report(self, run: CoalesceRun, environments: Collection[str]) -> RunReport | None:
        """What a finished run did to each node, if it ran in one of `environments` (else None,
        after one request)."""
        detail = self.run_detail(run.id)
        if detail is None:
            return None
        environment_id = run.environment_id or detail.get("environmentID")
        if environment_id not in environments:
            return None
        given = detail.get("runDetails")
        details: dict[str, Any] = given if isinstance(given, dict) else {}
        link = run.link
        if link is None:
            status = self.run_status(run.id)
            link = status.link if status else None
        return RunReport(
            run_id=run.id,
            status=run.status or _text(detail.get("runStatus")),
            run_type=run.run_type or _text(detail.get("runType")),
            environment_id=environment_id,
            job_id=_text(details.get("jobID")),  # a string on real accounts, an integer in the spec
            link=link,
            outcomes=node_outcomes(self.run_results(run.id)),
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
