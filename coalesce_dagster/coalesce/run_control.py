"""Start, follow, cancel and rerun Coalesce runs (docs/coalesce-api.md §7), without Dagster.

`POST /scheduler/startRun` and `/scheduler/rerun` are not idempotent: if a first attempt reached
Coalesce, a second one may start a second run. So they are retried only when Coalesce cannot have
acted on them: a 429 (refused) and a connection that failed before the request was sent
(`http.failed_before_sending`). A 5xx, a read timeout or a dropped connection raises
`RunOutcomeUnknownError`, which says the run may or may not have started. `cancelRun` and the
GETs use the usual retry policy (cancelling twice is harmless).

Request bodies are never logged (they carry warehouse credentials), and no message built here
contains the access token or a credential: Coalesce's own error text is scrubbed of them too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from ..configuration import resolve_access_token, resolve_base_url
from .client import CoalesceClient, SchedulerStatus
from .credentials import WarehouseCredentials
from .errors import (
    RunOutcomeUnknownError,
    RunRequestRefusedError,
    error_string,
    http_message,
    raise_for_coalesce_status,
)
from .http import coalesce_headers, coalesce_session, failed_before_sending
from .run_report import NodeOutcome, node_outcomes

logger = logging.getLogger(__name__)

# Starting a run is quick for Coalesce (it queues the run); a caller such as a Dagster op should
# not hang on it. The same caps as the sensor's client.
RUN_CONTROL_MAX_TIMEOUT = 15.0
RUN_CONTROL_MAX_RETRY_DELAY = 10.0

CREDENTIALS_HINT = (
    "No warehouse credentials were sent. Unless the environment uses Snowflake OAuth, set "
    "[sources.coalesce_source.credentials] in .dlt/secrets.toml (auth_type, username, and password "
    "or private_key) or SOURCES__COALESCE_SOURCE__CREDENTIALS__<KEY>."
)
_ALREADY_FINISHED = re.compile(r"\balready\s+(completed|failed|canceled|cancelled)\b", re.IGNORECASE)
# Selector values written without quotes; anything else is quoted.
_BARE_VALUE = re.compile(r"[A-Za-z0-9_]+")


class CoalesceRunControl:
    """Starts, follows, cancels and reruns Coalesce runs for one account."""

    def __init__(self, base_url: str, access_token: str) -> None:
        self.base_url = resolve_base_url(base_url)
        self._token = access_token
        self._client = CoalesceClient(self.base_url, access_token)  # the GETs, as the sensor makes them
        caps = RUN_CONTROL_MAX_TIMEOUT, RUN_CONTROL_MAX_RETRY_DELAY
        # startRun and rerun: retried only where Coalesce cannot have acted (module docstring).
        self._once = coalesce_session(
            self.base_url, max_timeout=caps[0], max_retry_delay=caps[1], idempotent=False
        )
        self._retrying = coalesce_session(self.base_url, max_timeout=caps[0], max_retry_delay=caps[1])
        self._auth = BearerTokenAuth(token=access_token)
        self._headers = {**coalesce_headers(), "Content-Type": "application/json"}

    def __repr__(self) -> str:
        return f"CoalesceRunControl(base_url={self.base_url!r})"

    @classmethod
    def from_config(cls, base_url: str | None = None, access_token: str | None = None) -> CoalesceRunControl:
        """For the configured account (`config.py`); raises `ConfigurationError` before any request."""
        return cls(resolve_base_url(base_url), resolve_access_token(access_token))

    # -- starting runs ----------------------------------------------------------------------------

    def start_run(
        self,
        environment_id: str,
        *,
        include_nodes_selector: str | None = None,
        job_id: str | None = None,
        parallelism: int | None = None,
        parameters: Mapping[str, str] | None = None,
        credentials: WarehouseCredentials | None = None,
        exclude_nodes_selector: str | None = None,
    ) -> int:
        """Start a refresh run (§7.1) and return its run counter.

        With neither a selector nor a job, the whole environment is refreshed; a job runs its saved
        selectors, which explicit selectors override. Raises `RunOutcomeUnknownError` when Coalesce
        may or may not have started the run (never retried), `RunRequestRefusedError` when Coalesce
        refused it (nothing started), `ValueError` for arguments that cannot be sent.
        """
        environment = _required_text(environment_id, "environment_id")
        details: dict[str, Any] = {"environmentID": environment}
        if job_id is not None:
            details["jobID"] = _required_text(job_id, "job_id")  # `jobID`, a string (§10.8); never `jobId`
        if include_nodes_selector is not None:
            details["includeNodesSelector"] = _selector(include_nodes_selector, "include_nodes_selector")
        if exclude_nodes_selector is not None:
            details["excludeNodesSelector"] = _selector(exclude_nodes_selector, "exclude_nodes_selector")
        if parallelism is not None:
            if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
                raise ValueError(f"parallelism must be a whole number of at least 1, got {parallelism!r}")
            details["parallelism"] = parallelism
        body = _with_extras({"runDetails": details}, credentials, parameters)
        where = f"environment {environment}" + (f" (job {details['jobID']})" if job_id is not None else "")
        run_id = self._start("scheduler/startRun", body, f"a run in {where}", credentials)
        logger.info("Started Coalesce run %d in %s.", run_id, where)
        return run_id

    def rerun(
        self,
        run_id: int,
        *,
        credentials: WarehouseCredentials | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> int:
        """Rerun what a failed run did not finish (§7.2); returns the new run's counter.

        Errors as for `start_run`.
        """
        original = _run_id(run_id)
        body = _with_extras({"runDetails": {"runID": str(original)}}, credentials, parameters)
        new_id = self._start("scheduler/rerun", body, f"a rerun of run {original}", credentials)
        logger.info("Started Coalesce run %d, a rerun of run %d.", new_id, original)
        return new_id

    def _start(
        self, path: str, body: dict[str, Any], what: str, credentials: WarehouseCredentials | None
    ) -> int:
        secrets = (self._token, *(credentials.secret_values() if credentials else ()))
        check = "check Coalesce's run history before trying again, or a second run may start"
        try:
            response = self._once.post(
                f"{self.base_url}/{path}", json=body, headers=self._headers, auth=self._auth
            )
        except requests.RequestException as error:
            if failed_before_sending(error):
                raise  # Coalesce never saw it: `errors.explain` says it could not connect
            raise RunOutcomeUnknownError(
                f"Starting {what} failed after the request was sent ({type(error).__name__}), so the "
                f"run may or may not have started; it was not retried. {check[0].upper()}{check[1:]}."
            ) from error
        if response.status_code >= 500:
            said = _scrub(error_string(response), secrets)
            raise RunOutcomeUnknownError(
                f"Coalesce failed ({response.status_code}) on /{path} while starting {what}"
                f"{f' and said: {said!r}' if said else ''}. The run may or may not have started, so it "
                f"was not retried: {check}."
            )
        if response.status_code == 429:  # refused every time: nothing started, and safe to try later
            raise RunRequestRefusedError(
                f"Coalesce kept rate-limiting /{path} (429), even after backing off, so {what} was not "
                "started. Try again later, or ask your Coalesce account team for a higher limit.",
                response=response,
            )
        if response.status_code >= 400:
            message = _scrub(http_message(response), secrets)
            hint = f" {CREDENTIALS_HINT}" if response.status_code == 400 and credentials is None else ""
            raise RunRequestRefusedError(f"{message} Nothing was started.{hint}", response=response)
        try:
            counter = response.json().get("runCounter")
            return _run_id(counter)
        except (ValueError, AttributeError, TypeError):
            raise RunOutcomeUnknownError(
                f"Coalesce accepted {what} but its answer carries no runCounter, so which run started "
                f"is unknown: {check}."
            ) from None

    def environment(self, environment_id: str) -> dict[str, Any] | None:
        """The environment as Coalesce describes it now, or None if it does not know it (404)."""
        return self._client.environment(environment_id)

    # -- following runs ---------------------------------------------------------------------------

    def run_status(self, run_id: int) -> SchedulerStatus | None:
        """`/scheduler/runStatus` for the run (§7.4), or None if Coalesce does not know it (404)."""
        return self._client.run_status(_run_id(run_id))

    def node_outcomes(self, run_id: int) -> tuple[NodeOutcome, ...]:
        """What the run did (or is doing) to each of its nodes, from `/api/v1/runs/{id}/results`:
        empty while the run is queued or if Coalesce does not know it."""
        return node_outcomes(self._client.run_results(_run_id(run_id)))

    # -- cancelling -------------------------------------------------------------------------------

    def cancel_run(self, run_id: int, environment_id: str, org_id: str | None = None) -> None:
        """Cancel a run (§7.3, §10.6). A run that already finished is left alone (logged)."""
        run = _run_id(run_id)
        body: dict[str, Any] = {
            "runID": run,
            "environmentID": _required_text(environment_id, "environment_id"),
        }
        if org_id is not None and str(org_id).strip():
            body["orgID"] = str(org_id).strip()
        response = self._retrying.post(
            f"{self.base_url}/scheduler/cancelRun", json=body, headers=self._headers, auth=self._auth
        )
        if response.status_code == 400:
            said = _scrub(error_string(response), (self._token,)) or ""
            finished = _ALREADY_FINISHED.search(said)
            if finished:
                logger.info(
                    "Coalesce run %d is already %s; nothing to cancel.", run, finished.group(1).lower()
                )
                return
        raise_for_coalesce_status(response)
        logger.info("Asked Coalesce to cancel run %d.", run)


def node_selector(nodes: Iterable[tuple[str, str]]) -> str:
    """A Coalesce node selector (§7.1) naming exactly these (location, node name) pairs.

    `{ location: L name: N }` terms joined by ` OR `, sorted and without duplicates; a value with
    anything but letters, digits and underscores is double-quoted. Raises ValueError for no nodes
    (an empty selector would run the whole environment) and for a value a selector cannot carry.
    """
    terms = sorted(
        {(_selector_value(location, "location"), _selector_value(name, "name")) for location, name in nodes}
    )
    if not terms:
        raise ValueError(
            "node_selector needs at least one node: an empty selector runs the whole environment"
        )
    return " OR ".join(f"{{ location: {location} name: {name} }}" for location, name in terms)


def _selector_value(value: str, what: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValueError(f"a node's {what} must not be empty in a node selector")
    if _BARE_VALUE.fullmatch(text):
        return text
    if '"' in text or any(char in text for char in "{}\n\r"):
        raise ValueError(f"a node's {what} {text!r} cannot be written in a Coalesce node selector")
    return f'"{text}"'


def _selector(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{what} must be a non-empty node selector (an empty one would run the whole environment); "
            "pass None to run the environment or the job as saved"
        )
    return value.strip()


def _with_extras(
    body: dict[str, Any], credentials: WarehouseCredentials | None, parameters: Mapping[str, str] | None
) -> dict[str, Any]:
    if credentials is not None:
        if not isinstance(credentials, WarehouseCredentials):
            raise TypeError(
                "credentials must be WarehouseCredentials (credentials.resolve_warehouse_credentials)"
            )
        body["userCredentials"] = credentials.to_body()
    if parameters:
        bad = [
            str(key)
            for key, value in parameters.items()
            if not isinstance(key, str) or not isinstance(value, str)
        ]
        if bad:
            raise ValueError(f"run parameters must map text to text; not so for {', '.join(sorted(bad))}")
        body["parameters"] = dict(parameters)
    return body


def _required_text(value: Any, what: str) -> str:
    text = "" if value is None or isinstance(value, bool) else str(value).strip()
    if not text:
        raise ValueError(f"{what} is required")
    return text


def _run_id(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"a run id must be a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"a run id must be a whole number, got {value!r}")


def _scrub(text: str | None, secrets: Iterable[str]) -> str | None:
    """`text` without any of `secrets` (Coalesce could quote what it was sent)."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            # A PEM key may come back one line at a time.
            for line in secret.splitlines():
                if len(line) >= 16 and "-----" not in line:
                    text = text.replace(line, "***")
    return text


__all__ = ["CREDENTIALS_HINT", "CoalesceRunControl", "node_selector"]
