"""The HTTP session every Coalesce call goes through: dlt's retrying session, cheaper per request.

A full sync makes tens of thousands of small requests, and on a small machine the client's CPU per
request, not Coalesce's latency, sets the pace. Two costs of plain `requests` showed up in profiles
(`benchmarks/`), and this module takes both away without changing what is sent or how it is retried:

* `requests` re-reads proxy and CA-bundle variables from the environment on every request
  (`trust_env`), walking all of `os.environ` each time. Here they are resolved once, for the Coalesce
  host, when the session is made: the same proxies, `no_proxy` rules and CA bundle, read once.
* `Response.json()` parses with `simplejson` when it is installed (dlt installs it), and the
  paginator and dlt's data selector both parse a list page. Responses here parse with `orjson`
  and keep the result, so each body is parsed once. Anything orjson refuses (a body that is not
  UTF-8 JSON) falls back to `requests`' own parser and its own error.

It also keeps a load from asking at full concurrency once Coalesce answers 429: the sessions of
one load share an `InFlightLimit`, which the first 429 narrows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from dlt.common.configuration import resolve_configuration
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client, Response, Session
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ConnectTimeout, Timeout
from urllib3.exceptions import NewConnectionError

logger = logging.getLogger(__name__)

# Connections kept open per host: above the largest `[extract] workers` anyone should need.
MAX_CONNECTIONS = 64

# What dlt retries by default. A connect timeout is a ConnectionError too, so it stays retried
# when read timeouts are not.
RETRIED_EXCEPTIONS = (ConnectionError, Timeout, ChunkedEncodingError)
RETRIED_EXCEPTIONS_BUT_READ_TIMEOUTS = (ConnectionError, ChunkedEncodingError)
# A request that must not run twice (startRun, rerun) is retried only when Coalesce cannot have
# acted on it: a 429 (refused), or a connection that was never made.
NOT_IDEMPOTENT_RETRY_STATUSES = (429,)


def failed_before_sending(error: BaseException | None) -> bool:
    """Whether a request failed before any byte of it reached the server: the connection was
    refused, the name did not resolve, or connecting timed out. Not a reset, a read timeout or
    a body cut short: those happen after the request was sent, and the server may have acted."""
    if isinstance(error, ConnectTimeout):
        return True
    if isinstance(error, ConnectionError) and error.args:
        cause = error.args[0]  # requests wraps urllib3's MaxRetryError, whose reason is the cause
        return isinstance(getattr(cause, "reason", cause), NewConnectionError)
    return False


def _retry_before_sending(response: Any, error: BaseException | None) -> bool:
    return failed_before_sending(error)


class JsonResponse(Response):
    """A `requests.Response` whose `json()` uses orjson and parses each body once."""

    def json(self, **kwargs: Any) -> Any:
        if kwargs:  # parser options only the standard parser understands
            return super().json(**kwargs)
        content = self.content
        parsed = self.__dict__.get("_parsed_json")
        # Keyed on the body object itself: a response hook that rewrites `_content` gets a new parse.
        if parsed is not None and parsed[0] is content:
            return parsed[1]
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            return super().json()  # requests' own decoding and its JSONDecodeError
        self._parsed_json = (content, value)
        return value


class RequestStats:
    """Requests sent to Coalesce by this process, and how many are in flight: for progress lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.in_flight = 0
        self.retried = 0

    def begin(self) -> None:
        with self._lock:
            self.sent += 1
            self.in_flight += 1

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def count_retry(self) -> None:
        with self._lock:
            self.retried += 1


REQUESTS = RequestStats()


class InFlightLimit:
    """How many requests may be in flight at once, narrowed when Coalesce answers 429.

    Coalesce limits requests per account and publishes no numbers (docs/coalesce-api.md, "Rate
    limits"); the account's other clients (a CI deploy calling startRun, say) share the same limit.
    dlt's retry waits out each refused request on its own, so without this a load that ran into the
    limit would go on asking at full concurrency, every retry among them. Instead, as TCP does with
    a congested link: the first 429 halves the requests in flight (new requests wait for a slot),
    and every `GROWTH_ANSWERS` answers without a 429 allow one more, back up to no cap at all
    (`[extract] workers` bounds the load then). A 429 to a request sent before the last narrowing
    says nothing new and narrows nothing.
    """

    GROWTH_ANSWERS = 50

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.in_flight = 0
        self.cap: int | None = None  # None: no cap of its own
        self.highest = 0  # the most requests in flight at once so far
        self._generation = 0  # how many times the cap was narrowed
        self._answers = 0  # answers since the cap last changed

    def acquire(self) -> int:
        """Wait for a slot; returns the generation the request is sent in (for `release`)."""
        with self._condition:
            while self.cap is not None and self.in_flight >= self.cap:
                self._condition.wait()
            self.in_flight += 1
            self.highest = max(self.highest, self.in_flight)
            return self._generation

    def release(self, generation: int, status: int | None) -> None:
        """A request sent in `generation` got an answer of `status`, or none (None: the connection
        failed), which neither narrows nor widens the cap."""
        with self._condition:
            if status == 429:
                if generation == self._generation:
                    self._narrow()
            elif status is not None and self.cap is not None:
                self._answers += 1
                if self._answers >= self.GROWTH_ANSWERS:
                    self._answers = 0
                    self.cap = None if self.cap + 1 >= self.highest else self.cap + 1
            self.in_flight -= 1
            self._condition.notify_all()

    def _narrow(self) -> None:
        before = self.cap if self.cap is not None else self.in_flight
        self.cap = max(1, min(before, self.in_flight) // 2)
        self._generation += 1
        self._answers = 0
        logger.warning(
            "Coalesce answered 429 (rate limited) with %d requests in flight: at most %d at once "
            "from now on, more again as answers come without 429.",
            self.in_flight,
            self.cap,
        )


# Called with every answer a session receives (each attempt of a retried request), its body read,
# and the seconds it took: how `coalesce-dagster check` sees what the load's own client sees.
ResponseObserver = Callable[[Response, float], None]


class _JsonResponseAdapter(HTTPAdapter):
    def __init__(
        self,
        *args: Any,
        observer: ResponseObserver | None = None,
        in_flight: InFlightLimit | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.observer = observer
        self.in_flight = in_flight or InFlightLimit()

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        generation = self.in_flight.acquire()
        REQUESTS.begin()
        status: int | None = None
        started = time.monotonic()
        try:
            response = super().send(request, *args, **kwargs)
            status = response.status_code
            if self.observer is not None:
                response.content  # noqa: B018 -- the body is part of the answer's time
                self.observer(response, time.monotonic() - started)
            return response
        finally:
            REQUESTS.end()
            self.in_flight.release(generation, status)

    def build_response(self, req: Any, resp: Any) -> Response:
        # A new object nobody else holds yet: setting its class here is what `requests` would do
        # with a subclass hook, and is safe across threads (tests/coalesce/test_http.py).
        response = super().build_response(req, resp)
        response.__class__ = JsonResponse
        return response


def _log_retry(state: Any) -> None:
    """tenacity `before_sleep`: say what failed, which attempt follows and how long it waits."""
    REQUESTS.count_retry()
    outcome = state.outcome
    error = outcome.exception() if outcome is not None and outcome.failed else None
    response = (
        getattr(error, "response", None) if error is not None else (outcome.result() if outcome else None)
    )
    if response is not None and getattr(response, "status_code", None) is not None:
        request = getattr(response, "request", None)
        path = request.path_url.split("?")[0] if request is not None else "?"
        cause = f"{response.status_code} on {path}"
    else:
        cause = type(error).__name__ if error is not None else "no answer"
    wait = state.next_action.sleep if state.next_action is not None else 0
    logger.warning(
        "Coalesce request failed (%s); retry %d of %d in %.1f s.",
        cause,
        state.attempt_number,
        state.retry_object.stop.max_attempt_number - 1,
        wait,
    )


def coalesce_headers() -> dict[str, str]:
    """The headers every Coalesce request carries (the token goes in by `BearerTokenAuth`)."""
    from .. import __version__

    return {"Accept": "application/json", "User-Agent": f"coalesce-dagster/{__version__}"}


def runtime_settings() -> RuntimeConfiguration:
    """dlt's `[runtime]` settings (request timeout, attempts, backoff), resolved now."""
    return resolve_configuration(RuntimeConfiguration())


def coalesce_session(
    base_url: str,
    *,
    timeout: float | None = None,
    max_timeout: float | None = None,
    max_retry_delay: float | None = None,
    retry_read_timeouts: bool = True,
    idempotent: bool = True,
    observer: ResponseObserver | None = None,
    runtime: RuntimeConfiguration | None = None,
    in_flight: InFlightLimit | None = None,
) -> Session:
    """dlt's retrying session for calls to `base_url`, configured by `[runtime]` (429 honouring
    Retry-After, 5xx, connection errors and timeouts retried with exponential backoff), with the
    environment read once and orjson responses.

    timeout: this session's request timeout instead of `[runtime] request_timeout`.
    max_timeout, max_retry_delay: caps on the configured values (a sensor tick has a deadline).
    retry_read_timeouts: False for requests whose caller answers a read timeout itself (the node
        detail pages, which shrink the page instead of asking the same slow question again).
    idempotent: False for requests that must not be carried out twice (startRun, rerun): they are
        retried only on 429 and on connections that failed before the request was sent
        (`failed_before_sending`), never on a 5xx, a read timeout or a dropped connection, after
        which Coalesce may have acted on the first attempt.
    runtime: `[runtime]` as resolved already (`runtime_settings`); by default resolved now.
    in_flight: the cap on requests in flight that 429s narrow (`InFlightLimit`), to share with
        the other sessions of one load; by default the session's own.
    """
    runtime = runtime or runtime_settings()
    request_timeout = float(timeout if timeout is not None else runtime.request_timeout)
    retry_delay = float(runtime.request_max_retry_delay)
    if idempotent:
        policy: dict[str, Any] = {
            "exceptions": RETRIED_EXCEPTIONS if retry_read_timeouts else RETRIED_EXCEPTIONS_BUT_READ_TIMEOUTS
        }
    else:
        policy = {
            "status_codes": NOT_IDEMPOTENT_RETRY_STATUSES,
            "exceptions": (),
            "retry_condition": _retry_before_sending,
        }
    client = Client(
        request_timeout=min(request_timeout, max_timeout) if max_timeout else request_timeout,
        max_connections=MAX_CONNECTIONS,
        raise_for_status=False,
        **policy,
        request_max_attempts=int(runtime.request_max_attempts),
        request_backoff_factor=float(runtime.request_backoff_factor),
        request_max_retry_delay=min(retry_delay, max_retry_delay) if max_retry_delay else retry_delay,
    )
    session = client.session
    # dlt's retrying `send`, with each retry logged (cause, attempt, wait) as it is scheduled.
    session.send = session.send.retry_with(before_sleep=_log_retry)  # type: ignore[attr-defined,method-assign]
    adapter = _JsonResponseAdapter(pool_maxsize=MAX_CONNECTIONS, observer=observer, in_flight=in_flight)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    environment = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies = dict(environment["proxies"] or {})
    session.verify = environment["verify"]
    session.cert = environment["cert"]
    # What the environment says is now on the session; stop requests reading it again per request.
    # (This also skips ~/.netrc, which never applied: every request carries the bearer token.)
    session.trust_env = False
    return session
