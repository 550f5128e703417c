"""Control endpoints for out-of-process tests (``/_simulator/...``).

They are not protected by the Coalesce token (tests should not need it to steer the
simulator) but answer only clients on the loopback interface.
"""

from __future__ import annotations

import ipaddress

from .data import SimulatorState
from .faults import Faults, real_account_quirks
from .render import run_summary
from .requestlog import RequestLog
from .responses import NO_BODY, ApiError, Response, json_response
from .routing import Request, Router, parse_json_object

#: Most runs one ``POST /_simulator/runs/add`` may create.
MAX_ADDED_RUNS = 100_000


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


class ControlApi:
    def __init__(self, state: SimulatorState, faults: Faults, log: RequestLog) -> None:
        self.state = state
        self.faults = faults
        self.log = log
        router = self.router = Router()
        router.add("GET", "/_simulator/stats", self.stats)
        router.add("POST", "/_simulator/reset-log", self.reset_log)
        router.add("GET", "/_simulator/faults", self.get_faults)
        router.add("POST", "/_simulator/faults", self.set_faults)
        router.add("POST", "/_simulator/faults/reset", self.reset_faults)
        router.add("POST", "/_simulator/faults/real-account", self.real_account_faults)
        router.add("GET", "/_simulator/sizes", self.sizes)
        router.add("POST", "/_simulator/runs/add", self.add_runs)
        router.add("POST", "/_simulator/runs/{run_id}/status", self.set_run_status)
        router.add("POST", "/_simulator/environments/{environment_id}/deploy", self.deploy)

    def handle(self, request: Request) -> Response:
        try:
            if not is_loopback(request.client_host):
                raise ApiError(403, "The simulator control API is only available on loopback")
            return self.router.dispatch(request)
        except ApiError as error:
            return error.to_response()

    def stats(self, request: Request) -> Response:
        return json_response({"requests": self.log.count(), "max_concurrency": self.log.max_concurrency})

    def sizes(self, request: Request) -> Response:
        """How many rows of each kind the organisation holds (for checking what a load brought in)."""
        return json_response(self.state.sizes())

    def add_runs(self, request: Request) -> Response:
        """``{"count": N, "status": "completed", "environmentID": "<optional>"}`` -> ``{"run_ids": [...]}``."""
        body = parse_json_object(request.body)
        count = body.get("count")
        status = body.get("status", "completed")
        environment_id = body.get("environmentID")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_ADDED_RUNS:
            raise ApiError(400, f"count must be an integer between 0 and {MAX_ADDED_RUNS}, got {count!r}")
        if not isinstance(status, str) or (
            environment_id is not None and not isinstance(environment_id, str)
        ):
            raise ApiError(
                400, 'Body must be {"count": N, "status": "<run status>", "environmentID": "<optional>"}'
            )
        try:
            run_ids = self.state.add_runs(count, environment_id, status=status)
        except KeyError as error:
            raise ApiError(404, str(error.args[0])) from None
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        return json_response({"run_ids": run_ids})

    def deploy(self, request: Request, environment_id: str) -> Response:
        """``{"add": N, "remove": ["<node id>", ...], "status": "completed"}`` -> ``{"run_id", "added"}``:
        a deploy run that changes the environment's nodes (`SimulatorState.deploy`)."""
        body = parse_json_object(request.body)
        add, remove, status = body.get("add", 0), body.get("remove", []), body.get("status", "completed")
        if (
            isinstance(add, bool)
            or not isinstance(add, int)
            or not 0 <= add <= MAX_ADDED_RUNS
            or not isinstance(remove, list)
            or not all(isinstance(node_id, str) for node_id in remove)
            or not isinstance(status, str)
        ):
            raise ApiError(
                400, 'Body must be {"add": N, "remove": ["<node id>", ...], "status": "<run status>"}'
            )
        try:
            run_id, added = self.state.deploy(environment_id, add=add, remove=remove, status=status)
        except KeyError as error:
            raise ApiError(404, str(error.args[0])) from None
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        return json_response({"run_id": run_id, "added": added})

    def reset_log(self, request: Request) -> Response:
        self.log.reset()
        return Response(204, NO_BODY)

    def get_faults(self, request: Request) -> Response:
        return json_response(self.faults.to_dict())

    def set_faults(self, request: Request) -> Response:
        try:
            self.faults.update(parse_json_object(request.body))
        except (AttributeError, ValueError) as error:
            raise ApiError(400, str(error)) from None
        return json_response(self.faults.to_dict())

    def reset_faults(self, request: Request) -> Response:
        self.faults.reset()
        return json_response(self.faults.to_dict())

    def real_account_faults(self, request: Request) -> Response:
        """Switch on the real-account preset (:func:`real_account_quirks`); other knobs stay as they are."""
        self.faults.update(real_account_quirks())
        return json_response(self.faults.to_dict())

    def set_run_status(self, request: Request, run_id: str) -> Response:
        body = parse_json_object(request.body)
        status = body.get("status")
        reason = body.get("failureReason")
        if not isinstance(status, str) or (reason is not None and not isinstance(reason, str)):
            raise ApiError(400, 'Body must be {"status": "<run status>", "failureReason": "<optional>"}')
        if not run_id.isdigit():
            raise ApiError(400, f"Invalid run id {run_id!r}")
        with self.state.lock:
            try:
                self.state.set_run_status(int(run_id), status, reason)
            except KeyError as error:
                raise ApiError(404, str(error.args[0])) from None
            except ValueError as error:
                raise ApiError(400, str(error)) from None
            return json_response(run_summary(self.state.runs[int(run_id)]))
