"""HTTP front end: socket handling, fault injection and the :class:`CoalesceSimulator` facade.

Two details matter for anyone timing a client against this server (see the project notes on
local simulators): every accepted socket gets ``TCP_NODELAY``, and every response (status
line, headers and body) leaves in a single write. Without both, Nagle's algorithm and delayed
ACKs add ~40 ms to many keep-alive requests on loopback.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import CoalesceApi
from .config import SimulatorConfig
from .control import ControlApi
from .data import SimulatorState
from .faults import Faults
from .requestlog import CONTROL_PREFIX, RequestLog, RequestRecord
from .responses import ApiError, Response, error_response, json_response
from .routing import Request
from .run_driver import RunDriver

# Which requests an `after_answering` action waits for, by their query.
_QueryTest = Callable[[Mapping[str, str]], bool]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1>upstream sent an invalid response</body></html>"

# (Response, encoded body or None) or None when the connection must be reset.
_Outcome = tuple[Response, bytes | None] | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib default backlog of 5 drops SYNs when many clients connect at once, which
    # costs each of them a 1 s retransmit; parallel-client tests and loads need more.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: CoalesceSimulator, verbose: bool) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.simulator = simulator
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads parked on idle keep-alive connections so stop() is clean."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "CoalesceSimulator/1.0"
    timeout = 120  # drop keep-alive connections idle for this long
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            super().log_message(format, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (bad request line, oversized headers, unknown method) that the
        stdlib rejects before routing still get the JSON error envelope, in one write."""
        self.close_connection = True
        response = error_response(code, message or _phrase(code))
        self._send(response, response.encode())

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if len(path) > 1:
            path = path.rstrip("/") or "/"
        query = {key: values[0] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        simulator = self.server.simulator
        record = simulator._log.begin(self.command, path, query, self.headers.get("User-Agent", ""))
        logged = False
        try:
            try:
                body = self._read_body()
            except ApiError as error:
                self.close_connection = True  # the framing of the rest of the stream is unknown
                response = error.to_response()
                outcome: _Outcome = (response, response.encode())
            else:
                record.body = _recorded_body(body)
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Request(self.command, path, query, headers, body, self.client_address[0])
                outcome = simulator._serve(request)
                if outcome is not None and outcome[0].status >= 400 and simulator.faults.bare_errors:
                    if not path.startswith(CONTROL_PREFIX):
                        outcome = (outcome[0], None)  # the status alone, no envelope (doc §2.2: 401)
            # Log before answering, so a client that has its answer also sees it in the log.
            simulator._log.end(record, 0 if outcome is None else outcome[0].status)
            logged = True
            if outcome is not None and outcome[0].status == 200:
                simulator._after_answer(path, query)
            if outcome is None:
                self._reset_connection()
            else:
                self._send(*outcome)
        finally:
            if not logged:
                simulator._log.end(record, 0)

    def _read_body(self) -> bytes:
        transfer_encoding = self.headers.get("Transfer-Encoding")
        if transfer_encoding and transfer_encoding.lower() != "identity":
            raise ApiError(400, "Chunked request bodies are not supported; send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            raise ApiError(400, f"Invalid Content-Length {length!r}")
        if int(length) > MAX_BODY_BYTES:
            raise ApiError(413, "Request body too large")
        return self.rfile.read(int(length))

    def _send(self, response: Response, raw: bytes | None) -> None:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [
            f"{self.protocol_version} {response.status} {reason}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        if raw is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(raw)}"]
        elif response.status != HTTPStatus.NO_CONTENT:
            lines.append("Content-Length: 0")
        lines += [f"{name}: {value}" for name, value in response.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        # One write for the whole response; see the module docstring.
        self.wfile.write(head + (raw or b""))
        self.log_request(response.status, len(raw or b""))

    def _reset_connection(self) -> None:
        # SO_LINGER 0 makes the close send RST instead of FIN: the client sees a reset.
        # The real close happens in finish(), once the rfile/wfile wrappers let go.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.log_message('"%s" reset by fault injection', self.requestline)


class CoalesceSimulator:
    """An in-process Coalesce API on 127.0.0.1.

    >>> with CoalesceSimulator() as sim:           # doctest: +SKIP
    ...     requests.get(f"{sim.base_url}/api/v1/environments",
    ...                  headers={"Authorization": f"Bearer {sim.config.token}"})
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.host = host
        self.port = port
        self.verbose = verbose
        self._faults = faults or Faults()
        self.state = SimulatorState(self.config, self._faults)
        self._log = RequestLog()
        self._api = CoalesceApi(self.state, self._faults)
        self._control = ControlApi(self.state, self._faults, self._log)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()  # interrupts fault sleeps on stop()
        self._demo: RunDriver | None = None
        self._after_answer_actions: dict[str, list[tuple[Callable[[], None], _QueryTest | None]]] = {}
        self._after_answer_lock = threading.Lock()

    # -- faults -------------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults = self._api.faults = self._control.faults = self.state.faults = faults

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` without trailing slash or ``/api/v1``."""
        if self.port == 0:
            raise RuntimeError("the simulator has no port yet; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> CoalesceSimulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stopping.clear()
        server = _Server((self.host, self.port), self, self.verbose)
        self._server = server
        self.port = server.server_address[1]
        if self.config.public_base_url is None:
            with self.state.lock:
                self.state.public_base_url = self.base_url
        self._thread = threading.Thread(
            target=server.serve_forever,
            # serve_forever only notices shutdown() between polls: this bounds stop() latency,
            # which matters to test suites that start a simulator per test.
            kwargs={"poll_interval": 0.01},
            name=f"coalesce-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stop_demo()
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CoalesceSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- demo mode ------------------------------------------------------------------------------

    def start_demo(self, interval: float, duration: float) -> None:
        """Start a run every ``interval`` s (0: none) and drive runs over ``duration`` s of real time."""
        self.stop_demo()
        self._demo = RunDriver(self.state, interval, duration)
        self._demo.start()

    def stop_demo(self) -> None:
        demo, self._demo = self._demo, None
        if demo is not None:
            demo.stop()

    # -- request accounting ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of every request so far, in arrival order."""
        return self._log.snapshot()

    def request_count(self, path_prefix: str = "") -> int:
        """Requests whose path starts with ``path_prefix``, excluding ``/_simulator`` ones."""
        return self._log.count(path_prefix)

    def reset_request_log(self) -> None:
        self._log.reset()

    @property
    def max_concurrency(self) -> int:
        """Most simultaneous in-flight API requests since start or the last log reset."""
        return self._log.max_concurrency

    def wait_for_request(
        self, predicate: Callable[[RequestRecord], bool], timeout: float = 60
    ) -> RequestRecord:
        """The first request matching ``predicate``, waiting for it to arrive (woken by each request,
        never polling); TimeoutError after ``timeout`` s."""
        return self._log.wait_for(predicate, timeout)

    # -- changes in the middle of a client's sync -------------------------------------------------

    def after_answering(self, path: str, action: Callable[[], None], when: _QueryTest | None = None) -> None:
        """Run ``action`` once, right after the first 200 answer to a request for ``path`` (exact
        path, any query, or one ``when`` accepts) is made and before it is sent.

        Lets a test change the organisation at a known point of a client's sync, e.g. delete an
        environment between the list that names it and the client's request for its detail:
        whatever the client asks after reading that answer sees the change.
        """
        with self._after_answer_lock:
            self._after_answer_actions.setdefault(path, []).append((action, when))

    def _after_answer(self, path: str, query: Mapping[str, str]) -> None:
        with self._after_answer_lock:
            waiting = self._after_answer_actions.pop(path, [])
            due = [action for action, when in waiting if when is None or when(query)]
            kept: list[tuple[Callable[[], None], _QueryTest | None]] = [
                (action, when) for action, when in waiting if not (when is None or when(query))
            ]
            if kept:
                self._after_answer_actions[path] = kept
        for action in due:
            action()

    # -- the request pipeline -------------------------------------------------------------------

    def _serve(self, request: Request) -> _Outcome:
        """Faults first (in the documented order), then the API, then body corruption."""
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            response = self._control.handle(request)  # the control plane is never faulted
            return response, response.encode()

        faults = self._faults
        # The request log's gauge counts this request and every other API request being answered.
        if faults.max_in_flight and self._log.in_flight > faults.max_in_flight:
            response = error_response(
                429, "Too many requests in flight, please retry later", faults.retry_after()
            )
            return response, response.encode()
        forced = faults.override_for(request.path)
        if forced is not None:
            headers = faults.retry_after() if forced == 429 else ()
            response = error_response(forced, f"{_phrase(forced)} (simulated)", headers)
            return response, response.encode()

        forced_body = faults.body_for(request.path)
        if forced_body is not None:
            response = json_response(forced_body)
            return response, response.encode()

        hit = faults.applies_to(request.path)
        if hit and faults.take("reset_burst"):
            return None
        if hit and faults.take("hang_burst"):
            self._stopping.wait(faults.hang_seconds)
        if faults.latency_ms > 0:
            self._stopping.wait(faults.latency_ms / 1000)
        if hit and faults.take("rate_limit_burst"):
            response = error_response(429, "Too many requests, please retry later", faults.retry_after())
            return response, response.encode()
        if hit and faults.take("server_error_burst"):
            response = error_response(503, "Service temporarily unavailable")
            return response, response.encode()
        counted = False
        if hit:
            admitted, counted = faults.admit_under_outage()
            if not admitted:
                response = error_response(503, "Service unavailable (simulated outage)")
                return response, response.encode()

        delay = self._api.detail_page_delay(request)
        if delay > 0:
            # Outside the state lock, so other requests go on meanwhile; stop() cuts it short.
            self._stopping.wait(delay)

        try:
            with self.state.lock:  # render and serialise under the lock: payloads share state objects
                response = self._api.handle(request)
                raw = response.encode(extra_fields=faults.extra_fields)
        except Exception as error:  # a simulator bug must still answer in the documented shape
            logger.exception("simulator error on %s %s", request.method, request.path)
            response = error_response(500, f"Internal simulator error: {error}")
            raw = response.encode()

        if counted and not 200 <= response.status < 300:
            faults.release_outage_slot()
        if hit and response.status == 200 and raw is not None:
            if faults.take("garbage_burst"):
                raw = GARBAGE_BODY
            elif faults.take("truncated_burst"):
                raw = raw[: len(raw) // 2]
        return response, raw


def _recorded_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
