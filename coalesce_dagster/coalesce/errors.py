"""Turn whatever went wrong talking to Coalesce into one message a person can act on.

dlt wraps the real cause several layers deep (PipelineStepFailed -> ResourceExtractionError ->
requests' HTTPError). `explain` walks that chain and says what happened, what Coalesce itself said
(its `errorString`), and what to do about it. Messages never include request headers, so the access
token cannot appear in them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import requests

from .regions import REGION_HOSTS

TOKEN_FIX = (
    "Generate a new token in Coalesce (Deploy tab -> 'Generate Access Token'; tokens are revoked "
    "when the user's password, email or MFA changes) and set it as [sources.coalesce_source] "
    "access_token in .dlt/secrets.toml or SOURCES__COALESCE_SOURCE__ACCESS_TOKEN."
)
REGION_FIX = (
    "Check [sources.coalesce_source] base_url: it must be the URL you log in to Coalesce with, or a "
    "region alias. Regional hosts: " + ", ".join(f"{alias}={host}" for alias, host in REGION_HOSTS.items())
)


class CoalesceApiError(requests.HTTPError):
    """An HTTP error from Coalesce, with its status and `errorString`."""


class UnexpectedResponseError(ValueError):
    """Coalesce answered 200 with a body of the wrong shape. Loading it could wipe good data (an empty
    list would replace a table), so the load stops instead."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(
            f"Coalesce's answer for {what} is not what its API documents ({detail}). The load stopped "
            "and nothing partial was written. If base_url points at a proxy or an older Coalesce "
            "version, fix that; otherwise report the response shape."
        )


class RunOutcomeUnknownError(Exception):
    """A request that starts a run (startRun, rerun) failed after it was sent: Coalesce may or may
    not have started the run. Not retried, and not transient: trying again could start it twice."""


class RunRequestRefusedError(CoalesceApiError):
    """Coalesce refused a run-control request (4xx); the message adds what to do about it."""


def raise_for_coalesce_status(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook / check: raise `CoalesceApiError` with Coalesce's message."""
    if response.status_code >= 400:
        raise CoalesceApiError(http_message(response), response=response)


def error_string(response: requests.Response | None) -> str | None:
    """Coalesce's own `error.errorString` (or `errorDetail`), if the body carries one."""
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        text = error.get("errorString") or error.get("errorDetail")
        return str(text) if text else None
    if isinstance(error, str):
        return error
    return None


# DuckDB's words when another process has the file open (even read-only).
_DUCKDB_LOCK = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)'
)


def destination_locked(exc: BaseException) -> str | None:
    """A message for a DuckDB file held open by another process, or None."""
    for cause in _causes(exc):
        match = _DUCKDB_LOCK.search(str(cause))
        if match:
            return (
                f"Another process holds the DuckDB file {match['path']}: {match['program']} (PID "
                f"{match['pid']}). DuckDB lets one process use a file for writing, and even a read-only "
                "connection blocks the loader. Close that connection (a notebook, the DuckDB CLI, a BI "
                f"tool) or stop the process (kill {match['pid']}), then run the load again. Nothing was "
                "written."
            )
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same load again later may succeed: rate limits, Coalesce failing (5xx), the
    network, timeouts, a body cut short. A refused token (401), a missing permission (403), a wrong
    path or region (404), a bad request or an answer of the wrong shape fail the same way next time."""
    if destination_locked(exc):
        return True  # the other process may be gone by the next attempt
    for cause in _causes(exc):
        if isinstance(cause, (UnexpectedResponseError, RunOutcomeUnknownError)):
            return False
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            status = cause.response.status_code
            return status == 429 or status >= 500
        if isinstance(cause, (requests.Timeout, requests.ConnectionError)):
            return True
        if isinstance(cause, (json.JSONDecodeError, requests.JSONDecodeError)):
            return True
    return False


def explain(exc: BaseException) -> str | None:
    """A one-paragraph explanation of a load failure (Coalesce, or a DuckDB file held by another
    process), or None if the cause is something else."""
    locked = destination_locked(exc)
    if locked:
        return locked
    for cause in _causes(exc):
        if isinstance(cause, (UnexpectedResponseError, RunOutcomeUnknownError, RunRequestRefusedError)):
            return str(cause)
        if isinstance(cause, requests.HTTPError) and cause.response is not None:
            return http_message(cause.response)
        if isinstance(cause, requests.Timeout):
            return (
                "Coalesce did not answer in time (request timeout), even after retries. The load stopped; "
                "nothing partial was written. Retry later, or raise [runtime] request_timeout."
            )
        if isinstance(cause, requests.ConnectionError):
            return (
                f"Could not connect to Coalesce ({_short(cause)}). Check the network and that base_url is "
                f"right. {REGION_FIX}"
            )
        if isinstance(cause, (json.JSONDecodeError, requests.JSONDecodeError)):
            return (
                "Coalesce answered with a body that is not valid JSON (truncated or not an API response). "
                "The load stopped; nothing partial was written. If it persists, check base_url points "
                "at the Coalesce API and not a proxy or login page."
            )
    return None


def http_message(response: requests.Response) -> str:
    status = response.status_code
    said = error_string(response)
    coalesce_said = f' Coalesce said: "{said}".' if said else ""
    where = _path(response)
    if status == 401:
        return f"Coalesce rejected the access token (401) on {where}.{coalesce_said} {TOKEN_FIX}"
    if status == 403:
        return (
            f"The access token's user may not read {where} (403).{coalesce_said} A token carries the "
            "permissions of the user who generated it: use a user with access to these projects and "
            "environments."
        )
    if status == 404:
        return f"Coalesce has no {where} (404).{coalesce_said} {REGION_FIX}"
    if status == 429:
        return (
            f"Coalesce kept rate-limiting requests (429) on {where}, even after backing off.{coalesce_said} "
            "Lower the request rate (fewer parallel requests) or ask your Coalesce account team for a "
            "higher limit; the next run resumes where this one stopped."
        )
    if status >= 500:
        return (
            f"Coalesce is failing ({status}) on {where}, even after retries.{coalesce_said} The load "
            "stopped and nothing partial was written; the next run resumes. Retry later."
        )
    return f"Coalesce refused {where} ({status}).{coalesce_said}"


def _path(response: requests.Response) -> str:
    url = response.request.path_url if response.request is not None else response.url
    return str(url).split("?")[0]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(
            e
            for e in (getattr(current, "exception", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        )
