"""The Coalesce REST endpoints (doc §3, §7).

Handlers run with the state lock held by the caller and return :class:`Response` objects;
validation failures raise :class:`ApiError`, which becomes the documented error envelope.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from . import node_tests, render
from .data import RUN_STATUSES, RUN_TYPES, TERMINAL_STATUSES, SimulatorState
from .faults import Faults
from .paging import PageParams, paginate, parse_page_params
from .responses import NO_BODY, UNAUTHORIZED_MESSAGE, ApiError, Response, error_response, json_response
from .routing import Request, Router, parse_flag, parse_json_object
from .timeutil import parse_iso

_DIGITS = re.compile(r"[0-9]+")
_NODE_LIST = re.compile(r"/api/v1/environments/[^/]+/nodes")
_AUTH_TYPES = ("Basic", "KeyPair", "OAuth")
# v6.2 runs paging: which run field a date-time startingFrom is compared with, per orderBy.
_RUN_DATE_FIELDS = {"id": "runStartTime", "runStartTime": "runStartTime", "runEndTime": "runEndTime"}


def _run_time(run: Mapping[str, Any], field: str) -> datetime | None:
    value = run.get(field)
    return parse_iso(value) if value else None


def _run_id_from_path(raw: str) -> int:
    if not _DIGITS.fullmatch(raw):
        # The real API rejects non-numeric run ids with a 400 (doc §8).
        raise ApiError(400, f"Invalid runID {raw!r}: must be an integer")
    return int(raw)


def _run_id_from_body(value: Any, field: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ApiError(400, f"{field} is required and must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    raise ApiError(400, f"{field} must be an integer, got {value!r}")


def _optional(container: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``container[key]`` when present and of ``kind`` (a bool is not an int); None when absent."""
    value = container.get(key)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"{where}.{key} must be of type {expected}, got {value!r}")
    return value


# What each auth type needs besides snowflakeAuthType (doc §10.7).
_REQUIRED_CREDENTIALS = {
    "Basic": ("snowflakeUsername", "snowflakePassword"),
    "KeyPair": ("snowflakeUsername", "snowflakeKeyPairKey"),
    "OAuth": (),
}


def _credentials(body: Mapping[str, Any], environment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The body's ``userCredentials``, checked the way Coalesce needs them to run in ``environment``.

    An environment without Snowflake OAuth needs Basic or KeyPair credentials; with OAuth none
    are needed (doc §7.1). Messages name fields, never their values.
    """
    credentials = _optional(body, "userCredentials", dict, "body")
    oauth = bool(environment.get("oauthEnabled"))
    if not credentials:
        if oauth:
            return None
        raise ApiError(
            400,
            f"userCredentials are required: environment {environment['id']} does not use Snowflake "
            "OAuth. Send snowflakeAuthType Basic (snowflakeUsername, snowflakePassword) or KeyPair "
            "(snowflakeUsername, snowflakeKeyPairKey)",
        )
    auth_type = credentials.get("snowflakeAuthType", "Basic")
    if auth_type not in _AUTH_TYPES:
        raise ApiError(400, f"userCredentials.snowflakeAuthType must be one of {', '.join(_AUTH_TYPES)}")
    if auth_type == "OAuth" and not oauth:
        raise ApiError(400, f"Snowflake OAuth is not enabled for environment {environment['id']}")
    missing = [
        key
        for key in _REQUIRED_CREDENTIALS[auth_type]
        if not isinstance(credentials.get(key), str) or not credentials[key].strip()
    ]
    if missing:
        raise ApiError(400, f"userCredentials for {auth_type} authentication need {', '.join(missing)}")
    if auth_type == "KeyPair" and "PRIVATE KEY-----" not in credentials["snowflakeKeyPairKey"]:
        raise ApiError(400, "userCredentials.snowflakeKeyPairKey is not a PEM private key")
    return credentials


class CoalesceApi:
    """Routes and handlers for ``/api/v1/*`` and ``/scheduler/*``."""

    def __init__(self, state: SimulatorState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        # /scheduler/runStatus 404s answered so far per started run (`started_run_status_404s`).
        self._unknown_answers: dict[int, int] = {}
        self._unknown_lock = threading.Lock()
        router = self.router = Router()
        router.add("GET", "/api/v1/environments", self.list_environments)
        router.add("GET", "/api/v1/environments/{environment_id}", self.get_environment)
        router.add("GET", "/api/v1/environments/{environment_id}/nodes", self.list_nodes)
        router.add("GET", "/api/v1/environments/{environment_id}/nodes/{node_id}", self.get_node)
        # The jobs list's path is INFERRED (doc §10.9); a job by id is CONFIRMED (doc §3.0).
        router.add("GET", "/api/v1/environments/{environment_id}/jobs", self.list_jobs)
        router.add("GET", "/api/v1/environments/{environment_id}/jobs/{job_id}", self.get_job)
        router.add("GET", "/api/v1/runs", self.list_runs)
        router.add("GET", "/api/v1/runs/{run_id}", self.get_run)
        router.add("GET", "/api/v1/runs/{run_id}/results", self.get_run_results)
        router.add("GET", "/api/v1/projects", self.list_projects)
        router.add("GET", "/api/v1/projects/{project_id}", self.get_project)
        # The users path is disputed (doc §3.0 CONFLICT); serve both.
        router.add("GET", "/api/v1/users", self.list_users)
        router.add("GET", "/api/v1/organization/users", self.list_users)
        router.add("GET", "/scheduler/runStatus", self.run_status)
        router.add("POST", "/scheduler/startRun", self.start_run)
        router.add("POST", "/scheduler/rerun", self.rerun)
        router.add("POST", "/scheduler/cancelRun", self.cancel_run)

    def handle(self, request: Request) -> Response:
        """Authenticate, then route. Caller must hold ``state.lock``."""
        if not self._authorised(request.headers.get("authorization")):
            # Same documented body on every path, including unknown ones (doc §2.2).
            return error_response(401, UNAUTHORIZED_MESSAGE)
        try:
            return self.router.dispatch(request)
        except ApiError as error:
            return error.to_response()

    def detail_page_delay(self, request: Request) -> float:
        """Seconds to wait before serving ``request`` under the ``detail_page_hang_*`` faults.

        Only a well-formed, authenticated ``detail=true`` node page larger than the threshold
        waits; one the handler will refuse answers at once. Reads nothing but the request, the
        faults and the (fixed) token, so the server calls it without the state lock.
        """
        faults = self.faults
        threshold, seconds = faults.detail_page_hang_above, faults.detail_page_hang_seconds
        if (
            threshold is None
            or seconds <= 0
            or request.method != "GET"
            or not _NODE_LIST.fullmatch(request.path)
        ):
            return 0.0
        if not self._authorised(request.headers.get("authorization")):
            return 0.0
        try:
            detail = parse_flag(request.query, "detail")
            limit = self._page_params(request.query, order_fields=("id",), default_direction="asc").limit
        except ApiError:
            return 0.0
        if faults.detail_page_hang_with_cursor_only and not request.query.get("startingFrom"):
            return 0.0
        return seconds if detail and limit > threshold else 0.0

    def _page_params(
        self, query: Mapping[str, str], *, order_fields: tuple[str, ...], default_direction: str
    ) -> PageParams:
        """Paging parameters of any list, under the page-size cap of the ``max_page_size`` fault."""
        cap = self.faults.max_page_size
        return parse_page_params(
            query, order_fields=order_fields, default_direction=default_direction, max_limit=cap
        )

    def _authorised(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        expected = self.state.config.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    # -- environments and nodes ---------------------------------------------------------------

    def list_environments(self, request: Request) -> Response:
        detail = parse_flag(request.query, "detail")
        params = self._page_params(request.query, order_fields=("id",), default_direction="asc")
        page, meta = paginate(list(self.state.environments.values()), params, self.faults, numeric_ids=True)
        return json_response({"data": [render.environment(env, detail) for env in page], **meta})

    def get_environment(self, request: Request, environment_id: str) -> Response:
        view = render.environment(self._environment(environment_id), detail=True)
        if self.faults.environment_detail_without_id:
            del view["id"]  # the v6.2 environment detail schema declares no id
        return json_response(view)

    def list_nodes(self, request: Request, environment_id: str) -> Response:
        env = self._environment(environment_id)
        detail = parse_flag(request.query, "detail")
        params = self._page_params(request.query, order_fields=("id",), default_direction="asc")
        by_id = self.state.nodes[env["id"]]
        page, meta = paginate(list(by_id.values()), params, self.faults, numeric_ids=False)
        return json_response({"data": [self._node_view(node, detail, by_id) for node in page], **meta})

    def get_node(self, request: Request, environment_id: str, node_id: str) -> Response:
        env = self._environment(environment_id)
        node = self.state.nodes[env["id"]].get(node_id)
        if node is None:
            raise ApiError(404, f"Node {node_id} not found in environment {environment_id}")
        return json_response(self._node_view(node, True, self.state.nodes[env["id"]]))

    def _node_view(self, node: Mapping[str, Any], detail: bool, nodes: Mapping[str, Any]) -> dict[str, Any]:
        if not detail:
            return render.node(node, detail)
        faults = self.faults
        return node_tests.node_view(
            node, nodes, column_tests=faults.column_tests, refs_by_name=faults.column_refs_by_name
        )

    def list_jobs(self, request: Request, environment_id: str) -> Response:
        if self.faults.jobs_list_missing:
            raise ApiError(404, f"No such endpoint: {request.method} {request.path}")
        env = self._environment(environment_id)
        params = self._page_params(request.query, order_fields=("id",), default_direction="asc")
        page, meta = paginate(self.state.environment_jobs(env["id"]), params, self.faults, numeric_ids=True)
        return json_response({"data": [render.job(job) for job in page], **meta})

    def get_job(self, request: Request, environment_id: str, job_id: str) -> Response:
        env = self._environment(environment_id)
        job = next((job for job in self.state.environment_jobs(env["id"]) if str(job["id"]) == job_id), None)
        if job is None:
            raise ApiError(404, f"Job {job_id} not found in environment {environment_id}")
        return json_response(render.job(job))

    def _environment(self, environment_id: str) -> dict[str, Any]:
        env = self.state.environments.get(environment_id)
        if env is None:
            raise ApiError(404, f"Environment {environment_id} not found")
        return env

    # -- runs ---------------------------------------------------------------------------------

    def list_runs(self, request: Request) -> Response:
        query = request.query
        run_type = query.get("runType") or None
        run_status = query.get("runStatus") or None
        environment_id = query.get("environmentID") or None
        if run_type is not None and run_type not in RUN_TYPES:
            raise ApiError(400, f"runType must be one of {', '.join(RUN_TYPES)}, got {run_type!r}")
        if run_status is not None and run_status not in RUN_STATUSES:
            raise ApiError(400, f"runStatus must be one of {', '.join(RUN_STATUSES)}, got {run_status!r}")
        detail = parse_flag(query, "detail")
        run_orders = ("id", "runStartTime", "runEndTime")
        params = self._page_params(query, order_fields=run_orders, default_direction="desc")
        if self.faults.runs_oldest_first:
            params = replace(params, direction="asc")
        if run_type is None and run_status is None and environment_id is None:
            runs = list(self.state.runs.values())
        else:
            runs = [
                run
                for run in self.state.runs.values()
                if (run_type is None or run["runType"] == run_type)
                and (run_status is None or run["runStatus"] == run_status)
                and (environment_id is None or run["environmentID"] == environment_id)
            ]
        page, meta = paginate(
            runs,
            params,
            self.faults,
            numeric_ids=True,
            sort_value=_run_time,
            date_fields=_RUN_DATE_FIELDS,
            v62=self.faults.runs_v62_paging,
            presorted=True,  # run ids only grow (a deleted run leaves a gap): the dict is in id order
        )
        view = render.run_info if detail else render.run_summary
        faults = self.faults
        data = [
            view(
                run,
                id_as_string=faults.run_ids_as_strings,
                echo_credentials=faults.echo_credentials,
                nulls=faults.optional_fields_as_null,
            )
            for run in page
        ]
        return json_response({"data": data, **meta})

    def get_run(self, request: Request, run_id: str) -> Response:
        run = self._run(run_id)
        faults = self.faults
        view = render.run_info(
            run,
            id_as_string=faults.run_ids_as_strings,
            echo_credentials=faults.echo_credentials,
            nulls=faults.optional_fields_as_null,
        )
        return json_response(view)

    def get_run_results(self, request: Request, run_id: str) -> Response:
        run = self._run(run_id)
        results = self.state.results.get(run["id"], [])
        faults = self.faults
        if faults.test_results:
            results = node_tests.with_test_results(
                results,
                self.state.nodes.get(run["environmentID"], {}),
                column_tests=faults.column_tests,
                failing_test=faults.failing_test,
            )
        body = render.run_results(
            results,
            faults.results_envelope,
            run_id=str(run["id"]) if faults.run_ids_as_strings else run["id"],
            failed_state=faults.failed_run_state,
        )
        return json_response(body)

    def _run(self, raw_id: str) -> dict[str, Any]:
        run_id = _run_id_from_path(raw_id)
        run = self.state.runs.get(run_id)
        if run is None:
            raise ApiError(404, f"Run {run_id} not found")
        return run

    # -- projects and users ---------------------------------------------------------------------

    def list_projects(self, request: Request) -> Response:
        workspaces = parse_flag(request.query, "includeWorkspaces")
        jobs = parse_flag(request.query, "includeJobs")
        projects = sorted(self.state.projects.values(), key=lambda project: int(project["id"]))
        data = [render.project(p, include_workspaces=workspaces, include_jobs=jobs) for p in projects]
        return json_response({"data": data})

    def get_project(self, request: Request, project_id: str) -> Response:
        project = self.state.projects.get(project_id)
        if project is None:
            raise ApiError(404, f"Project {project_id} not found")
        workspaces = parse_flag(request.query, "includeWorkspaces")
        jobs = parse_flag(request.query, "includeJobs")
        return json_response(render.project(project, include_workspaces=workspaces, include_jobs=jobs))

    def list_users(self, request: Request) -> Response:
        params = self._page_params(request.query, order_fields=("id",), default_direction="asc")
        page, meta = paginate(list(self.state.users.values()), params, self.faults, numeric_ids=False)
        return json_response({"data": [render.user(user) for user in page], **meta})

    # -- scheduler --------------------------------------------------------------------------------

    def run_status(self, request: Request) -> Response:
        raw = request.query.get("runCounter")
        if not raw:
            raise ApiError(400, "runCounter is required")
        if not _DIGITS.fullmatch(raw):
            raise ApiError(400, f"runCounter must be an integer, got {raw!r}")
        run = self.state.runs.get(int(raw))
        if run is None or self._not_known_yet(int(raw)):
            raise ApiError(404, f"Run {raw} not found")
        with_status = not self.faults.run_status_without_status
        body = render.run_status(run, self.state.run_link(run["id"]), with_status=with_status)
        early = self.faults.scheduler_early_status
        if early and with_status and run["runStatus"] == "waitingToRun":
            body["runStatus"] = early
        return json_response(body)

    def _not_known_yet(self, run_id: int) -> bool:
        """Whether the scheduler answers 404 for a run startRun just created (the fault)."""
        limit = self.faults.started_run_status_404s
        if not limit or run_id not in self.state.started_run_ids:
            return False
        with self._unknown_lock:
            answered = self._unknown_answers.get(run_id, 0)
            if answered >= limit:
                return False
            self._unknown_answers[run_id] = answered + 1
            return True

    def start_run(self, request: Request) -> Response:
        body = parse_json_object(request.body)
        details = body.get("runDetails")
        if not isinstance(details, dict):
            raise ApiError(400, "runDetails is required")
        if "jobId" in details:
            # A known client bug (doc §7.1): silently running the whole environment instead of
            # the job would hide it, so refuse.
            raise ApiError(400, "Unknown field runDetails.jobId (the field is named jobID)")
        environment_id = details.get("environmentID")
        if (
            isinstance(environment_id, bool)
            or not isinstance(environment_id, (str, int))
            or environment_id == ""
        ):
            raise ApiError(400, "runDetails.environmentID is required")
        environment_id = str(environment_id)
        if environment_id not in self.state.environments:
            raise ApiError(400, f"Environment {environment_id} not found")
        job_id = _optional(details, "jobID", (str, int), "runDetails")
        parallelism = _optional(details, "parallelism", int, "runDetails")
        if parallelism is not None and parallelism < 1:
            raise ApiError(400, "runDetails.parallelism must be at least 1")
        force = _optional(details, "forceIgnoreWorkspaceStatus", bool, "runDetails")
        parameters = _optional(body, "parameters", dict, "body")
        credentials = _credentials(body, self.state.environments[environment_id])
        try:
            run_id = self.state.start_run(
                environment_id,
                job_id=str(job_id) if job_id is not None else None,
                include=_optional(details, "includeNodesSelector", str, "runDetails"),
                exclude=_optional(details, "excludeNodesSelector", str, "runDetails"),
                parallelism=parallelism or 16,
                parameters=parameters,
                credentials=credentials,
                force_ignore_environment_status=bool(force),
            )
        except (KeyError, ValueError) as error:
            raise ApiError(400, str(error.args[0])) from None
        return json_response({"runCounter": run_id})

    def rerun(self, request: Request) -> Response:
        body = parse_json_object(request.body)
        details = body.get("runDetails")
        if not isinstance(details, dict):
            raise ApiError(400, "runDetails is required")
        run_id = _run_id_from_body(details.get("runID"), "runDetails.runID")
        if run_id not in self.state.runs:
            raise ApiError(400, f"Run {run_id} not found")
        force = _optional(details, "forceIgnoreWorkspaceStatus", bool, "runDetails")
        environment = self.state.environments.get(self.state.runs[run_id]["environmentID"])
        if environment is None:
            raise ApiError(400, f"Environment {self.state.runs[run_id]['environmentID']} not found")
        credentials = _credentials(body, environment)
        try:
            new_id = self.state.rerun(
                run_id,
                parameters=_optional(body, "parameters", dict, "body"),
                credentials=credentials,
                force_ignore_environment_status=bool(force),
            )
        except (KeyError, ValueError) as error:
            raise ApiError(400, str(error.args[0])) from None
        return json_response({"runCounter": new_id})

    def cancel_run(self, request: Request) -> Response:
        body = parse_json_object(request.body)
        run_id = _run_id_from_body(body.get("runID"), "runID")
        run = self.state.runs.get(run_id)
        if run is None:
            raise ApiError(400, f"Run {run_id} not found")
        environment_id = body.get("environmentID")
        if environment_id not in (None, "") and str(environment_id) != run["environmentID"]:
            raise ApiError(400, f"Run {run_id} does not belong to environment {environment_id}")
        if run["runStatus"] in TERMINAL_STATUSES:
            raise ApiError(400, f"Run {run_id} is already {run['runStatus']}")
        # orgID is accepted and ignored: no researched endpoint exposes it (doc §7.3).
        self.state.set_run_status(run_id, "canceled")
        return Response(204, NO_BODY)
