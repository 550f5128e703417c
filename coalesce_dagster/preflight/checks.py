"""The checks: one request per list endpoint, through the load's own client layer.

Every request goes through `nodes.snapshot.rest_clients` (the load's session, retry policy and
headers), paged lists through `lists.read_pages` (the load's page sizes, halved on a 400 or, for
node detail pages, on a timeout), envelopes through `pagination`, rows through `rows` and failures
through `errors.explain`: what the check calls PASS is what the load does, and a FAIL carries the
sentence the load would end with. Nothing is written and nothing is started in Coalesce.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from dlt.sources.helpers.rest_client.client import RESTClient
from requests import HTTPError

from ..coalesce.credentials import resolve_warehouse_credentials
from ..coalesce.errors import UnexpectedResponseError, raise_for_coalesce_status
from ..coalesce.lists import ASCENDING, RUNS_PATH, PageSize
from ..coalesce.nodes import NodeTest
from ..coalesce.nodes.snapshot import rest_clients
from ..coalesce.pagination import check_list_envelope, run_results_envelope
from ..coalesce.regions import REGION_HOSTS
from ..coalesce.rows import (
    environment_row,
    job_row,
    node_row,
    row_by_id,
    run_result_row,
    run_row,
    run_status_row,
)
from ..coalesce.source import JOBS_PATH, USERS_PATHS
from ..coalesce.types import FAILED_NODE_STATES, TERMINAL_RUN_STATUSES
from ..configuration import SourceSettings, resolve_base_url, resolve_source_settings
from .describe import (
    column_reference_variants,
    cursor_inclusion,
    describe_list,
    first_page,
    first_pages,
    missing,
    new_fields,
    sync_cost,
    total,
)
from .known import ECHOED_SECRET_FIELDS
from .node_test_results import name_test_outcomes, tested_nodes
from .record import CheckResult, Line

# A node detail page slower than this share of `nodes_timeout` is worth a smaller page size.
SLOW_PAGE_SHARE = 1 / 3
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

ENVIRONMENTS = "GET /api/v1/environments"
ENVIRONMENT = "GET /api/v1/environments/{environmentID}"
NODES = "GET /api/v1/environments/{environmentID}/nodes"
NODES_DETAIL = "GET /api/v1/environments/{environmentID}/nodes?detail=true"
JOBS = "GET /api/v1/environments/{environmentID}/jobs"
RUNS = "GET /api/v1/runs?detail=true"
RUN_RESULTS = "GET /api/v1/runs/{runID}/results"
RUN_STATUS = "GET /scheduler/runStatus?runCounter={runID}"
PROJECTS = "GET /api/v1/projects?includeWorkspaces=true&includeJobs=true"
USERS = {path: f"GET /{path}" for path in USERS_PATHS}


def run_check() -> CheckResult:
    """Every check, in order; a check whose input is missing (no environment, no run) says so."""
    result = CheckResult()
    started = time.monotonic()
    settings = _connection(result)
    if settings is not None:
        client, nodes_client = rest_clients(settings, observer=result.recorder)
        environments, environment_count = _environments(result, client, settings)
        environment = environments[0] if environments else None
        oauth = _environment(result, client, environment)
        node_count = _nodes_summary(result, client, settings, environment)
        tests = _nodes_detail(result, nodes_client, settings, environment, node_count, environment_count)
        _jobs(result, client, settings, environment)
        run = _runs(result, client, settings, environment)
        _run_results(result, client, run, tests)
        _run_status(result, client, run)
        _projects(result, client)
        _users(result, client, settings)
        _start_run(result, environment, oauth)
    result.seconds = time.monotonic() - started
    return result


def _connection(result: CheckResult) -> SourceSettings | None:
    with result.line("connection") as line:
        base_url = resolve_base_url()
        host = urlsplit(base_url).hostname or base_url
        result.region, where = _region(host)
        line.note(f"{base_url} ({where})")
    if line.verdict == "FAIL":
        return None
    settings = None
    with result.line("settings") as line:
        settings = resolve_source_settings()
        result.settings = {
            "page_size": settings.page_size,
            "runs_page_size": settings.runs_page_size,
            "nodes_page_size": settings.nodes_page_size,
            "nodes_timeout": settings.nodes_timeout,
        }
        line.note(
            f"access token configured (not shown); pages of {settings.page_size} (lists), "
            f"{settings.runs_page_size} (runs), {settings.nodes_page_size} (node details, "
            f"timeout {settings.nodes_timeout:g} s)"
        )
    return settings if line.verdict != "FAIL" else None


def _region(host: str) -> tuple[str, str]:
    for alias, region_host in REGION_HOSTS.items():
        if host == region_host:
            return alias, f"region {alias}"
        if host.endswith("." + region_host):
            return f"sso:{alias}", f"an SSO subdomain of region {alias}"
    return "other host", "not a Coalesce region host: a proxy, a private host or the simulator"


def _environments(
    result: CheckResult, client: RESTClient, settings: SourceSettings
) -> tuple[list[dict[str, Any]], int | None]:
    environments: list[dict[str, Any]] = []
    count = None
    with result.line("environments", ENVIRONMENTS) as line:
        page_size = PageSize("environments", settings.page_size)
        # Two pages when there are two: whether a cursor's item comes again (doc §4, INFERRED).
        pages = first_pages(client, "api/v1/environments", {**ASCENDING, "detail": "false"}, page_size, 2)
        page = pages[0]
        environments = [row_by_id(raw, "an environment") for raw in page]
        exchange = describe_list(
            result, line, ENVIRONMENTS, "environments", settings.page_size, page_size, page
        )
        if len(pages) > 1:
            cursor_inclusion(line, page, pages[1])
        count = total(exchange, len(page))
        line.note(f"{'?' if count is None else count} environments")
        if not environments:
            line.warn("the token sees no environment: environment, nodes and jobs cannot be checked")
    return environments, count


def _environment(result: CheckResult, client: RESTClient, environment: dict[str, Any] | None) -> bool | None:
    """The environment's detail; returns its `oauthEnabled` (None when unknown)."""
    oauth = None
    with result.line("environment", ENVIRONMENT) as line:
        if environment is None:
            missing(line, "environment")
            return None
        environment_id = environment["id"]
        response = client.get(f"api/v1/environments/{environment_id}")
        if response.status_code == 404:
            line.warn("404: the load skips an environment deleted since it was listed")
            return None
        raise_for_coalesce_status(response)
        body = response.json()
        environment_row({**body, "_environments_id": environment_id} if isinstance(body, dict) else body)
        line.note(f"{response.status_code} in {result.recorder.exchanges[-1].seconds:.2f} s; a bare object")
        if "id" not in body:
            line.variant("no id in the environment detail (taken from the request, as the load does)")
        new_fields(line, ENVIRONMENT, "environment", [body])
        given = body.get("oauthEnabled")
        oauth = given if isinstance(given, bool) else None
    return oauth


def _nodes_summary(
    result: CheckResult, client: RESTClient, settings: SourceSettings, environment: dict[str, Any] | None
) -> int | None:
    """The summary node list (which the load does not read): the environment's node count."""
    count = None
    with result.line("nodes", NODES, failure="WARN") as line:
        if environment is None:
            missing(line, "environment")
            return None
        page_size = PageSize("environment nodes", settings.page_size)
        path = f"api/v1/environments/{environment['id']}/nodes"
        page = first_page(client, path, {**ASCENDING, "detail": "false"}, page_size)
        exchange = describe_list(result, line, NODES, "nodes", settings.page_size, page_size, page)
        count = total(exchange, len(page))
        line.note(f"{'?' if count is None else count} nodes in this environment (without detail)")
    return count


def _nodes_detail(
    result: CheckResult,
    client: RESTClient,
    settings: SourceSettings,
    environment: dict[str, Any] | None,
    node_count: int | None,
    environment_count: int | None,
) -> dict[str, tuple[NodeTest, ...]]:
    """Returns the tests of the page's nodes that carry any (node id -> tests), for `run results`."""
    tests: dict[str, tuple[NodeTest, ...]] = {}
    with result.line("node details", NODES_DETAIL) as line:
        if environment is None:
            missing(line, "environment")
            return tests
        page_size = PageSize("environment nodes", settings.nodes_page_size)
        path = f"api/v1/environments/{environment['id']}/nodes"
        page = first_page(
            client,
            path,
            {**ASCENDING, "detail": "true"},
            page_size,
            timeout=settings.nodes_timeout,
            shrink_on_timeout=True,
        )
        for raw in page:
            node_row(raw if not isinstance(raw, dict) else {**raw, "_environments_id": environment["id"]})
        exchange = describe_list(
            result, line, NODES_DETAIL, "nodes_detail", settings.nodes_page_size, page_size, page
        )
        tests = tested_nodes(page)
        if exchange is None:
            return tests
        size, seconds = page_size.value, exchange.seconds
        if size < settings.nodes_page_size and not any(
            e.endpoint == NODES_DETAIL and e.status == 400 for e in result.recorder.exchanges
        ):
            line.variant("node detail page timed out, asked again smaller", "WARN")
            line.warn(
                f"a page of {settings.nodes_page_size} did not answer within {settings.nodes_timeout:g} s; "
                f"pages of {size} did: set nodes_page_size = {size}"
            )
        elif seconds > settings.nodes_timeout * SLOW_PAGE_SHARE:
            suggested = max(1, int(size * settings.nodes_timeout * SLOW_PAGE_SHARE / 2 / seconds))
            line.variant("slow node detail pages", "WARN")
            line.warn(f"a page of {size} took {seconds:.1f} s: set nodes_page_size = {suggested}")
        column_reference_variants(line, page)
        count = total(exchange, len(page)) or node_count
        line.note(sync_cost(size, seconds, count, environment_count))
    return tests


def _jobs(
    result: CheckResult, client: RESTClient, settings: SourceSettings, environment: dict[str, Any] | None
) -> None:
    with result.line("jobs", JOBS) as line:
        if environment is None:
            missing(line, "environment")
            return None
        page_size = PageSize("jobs", settings.page_size)
        try:
            page = first_page(client, JOBS_PATH.format(environment["id"]), ASCENDING, page_size)
        except HTTPError as error:
            if error.response is None or error.response.status_code != 404:
                raise
            line.variant("no jobs list at this path (404)", "WARN")
            line.note("the load goes on and loads no jobs (doc §10.9); jobs come only with projects")
            return
        for raw in page:
            job_row(raw, environment["id"])
        describe_list(result, line, JOBS, "jobs", settings.page_size, page_size, page)
        kinds = {type(raw.get("id")).__name__ for raw in page if isinstance(raw, dict)}
        if "str" in kinds:
            line.variant("job ids as text")


def _runs(
    result: CheckResult, client: RESTClient, settings: SourceSettings, environment: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The newest page of runs; returns the run whose results and status are checked."""
    chosen = None
    with result.line("runs", RUNS) as line:
        page_size = PageSize("runs", settings.runs_page_size)
        params = {"detail": "true", "orderBy": "id", "orderByDirection": "desc"}
        # One run a page cannot show an order: then a second page is read to see it.
        pages = first_pages(client, RUNS_PATH, params, page_size, 1 if settings.runs_page_size > 1 else 2)
        page = pages[0]
        runs = [run_row(raw) for raw in page]
        describe_list(result, line, RUNS, "runs", settings.runs_page_size, page_size, page)
        if any(isinstance(raw, dict) and isinstance(raw.get("id"), str) for raw in page):
            line.variant("run ids as text")
        _run_order(line, [run_row(raw)["id"] for later in pages for raw in later], page_size.value)
        if any(_echoes_secrets(raw) for raw in page):
            line.variant("run objects carry credential secrets (the load drops them)", "WARN")
        if not runs:
            line.note("no runs yet: run results and run status cannot be checked")
        chosen = _sampled_run(runs, environment["id"] if environment is not None else None)
    return chosen


def _sampled_run(runs: list[dict[str, Any]], environment_id: str | None) -> dict[str, Any] | None:
    """A failed run shows how failed nodes are reported (doc §10.4); else a finished one; else any.
    Within each, one of the sampled environment first: its results name that environment's nodes,
    whose tests the node detail page showed."""
    failed = [run for run in runs if run.get("runStatus") == "failed"]
    finished = [run for run in runs if run.get("runStatus") in TERMINAL_RUN_STATUSES]
    for kind in (failed, finished, runs):
        if kind:
            here = [run for run in kind if run.get("environmentID") == environment_id]
            return (here or kind)[0]
    return None


def _run_order(line: Line, ids: list[int], page_size: int) -> None:
    """Runs are asked newest first; the load stops paging at the first page that reaches a known
    run once the ids read so far descend (`lists.read_runs_newest_first`, judged across pages, so
    pages of one run are judged too). A server that serves them oldest first is read to the end:
    correct, slower. `page_size` only decides how many pages were read to see the order."""
    unique = list(dict.fromkeys(ids))  # an inclusive cursor repeats a run
    if all(a > b for a, b in zip(unique, unique[1:])):
        return
    line.variant("runs not newest first: syncs read the whole list", "WARN")


def _echoes_secrets(raw: Any) -> bool:
    credentials = raw.get("userCredentials") if isinstance(raw, dict) else None
    return isinstance(credentials, dict) and bool(ECHOED_SECRET_FIELDS & set(credentials))


def _run_results(
    result: CheckResult,
    client: RESTClient,
    run: dict[str, Any] | None,
    tests: dict[str, tuple[NodeTest, ...]],
) -> None:
    with result.line("run results", RUN_RESULTS) as line:
        if run is None:
            missing(line, "run")
            return None
        response = client.get(f"api/v1/runs/{run['id']}/results", hooks={"response": [run_results_envelope]})
        if response.status_code == 404:
            line.warn("404: the load keeps such a run on its list to read again")
            return
        raise_for_coalesce_status(response)
        items = response.json()["data"]
        for raw in items:
            run_result_row({**raw, "_runs_id": run["id"]} if isinstance(raw, dict) else raw)
        exchange = result.recorder.exchanges[-1]
        line.note(
            f"{exchange.status} in {exchange.seconds:.2f} s; {len(items)} results of a {run.get('runStatus')} run"
        )
        raw = exchange.body
        if isinstance(raw, list):
            line.variant("results as a bare list")
        elif isinstance(raw, dict) and "data" not in raw:
            line.variant("results as {results: [...]}")
        else:
            line.note("envelope {data: [...]} recognised")
        states = {item.get("runState") for item in items if isinstance(item, dict)}
        if "failed" in states:
            line.variant("failed nodes as runState failed (doc §10.4)")
        unknown = sorted(str(s) for s in states - {None, "complete", "skipped", *FAILED_NODE_STATES})
        if unknown:
            line.variant("runState values the notes do not describe", "WARN")
        name_test_outcomes(line, tests, items)
        new_fields(line, RUN_RESULTS, "run_results", items)


def _run_status(result: CheckResult, client: RESTClient, run: dict[str, Any] | None) -> None:
    with result.line("run status", RUN_STATUS) as line:
        if run is None:
            missing(line, "run")
            return None
        response = client.get("scheduler/runStatus", params={"runCounter": run["id"]})
        if response.status_code == 404:
            line.warn("404: the load keeps such a run on its list to read again")
            return
        raise_for_coalesce_status(response)
        body = response.json()
        if not isinstance(body, dict):
            raise UnexpectedResponseError(f"the status of run {run['id']}", f"got {type(body).__name__}")
        run_status_row({**body, "_runs_id": run["id"]})
        line.note(f"{response.status_code} in {result.recorder.exchanges[-1].seconds:.2f} s; a bare object")
        if "runStatus" not in body:
            line.variant("no runStatus (stored as NULL; the run stays followed)")
        link = body.get("runLink")
        if not isinstance(link, str) or not link:
            line.variant("no runLink (the run is named, not linked)")
        elif _UUID.search(link):
            line.variant("runLink carries a UUID (doc §10.3)")
        elif link.rstrip("/").endswith(f"/{run['id']}"):
            line.variant("runLink ends with the run id (as documented)")
        new_fields(line, RUN_STATUS, "run_status", [body])


def _projects(result: CheckResult, client: RESTClient) -> None:
    with result.line("projects", PROJECTS) as line:
        response = client.get("api/v1/projects", params={"includeWorkspaces": "true", "includeJobs": "true"})
        raise_for_coalesce_status(response)
        body = response.json()
        check_list_envelope(body, response)
        for raw in body["data"]:
            row_by_id(raw)
        line.note(f"{response.status_code} in {result.recorder.exchanges[-1].seconds:.2f} s")
        line.note("envelope {data: [...]} recognised")
        new_fields(line, PROJECTS, "projects", body["data"])


def _users(result: CheckResult, client: RESTClient, settings: SourceSettings) -> None:
    with result.line("users") as line:
        for path in USERS_PATHS:
            result.recorder.endpoint = USERS[path]
            page_size = PageSize("users", settings.page_size)
            try:
                page = first_page(client, path, ASCENDING, page_size)
            except HTTPError as error:
                if error.response is None or error.response.status_code != 404 or path == USERS_PATHS[-1]:
                    raise
                continue  # as the load: this deployment serves users at the next path
            for raw in page:
                row_by_id(raw)
            if path != USERS_PATHS[0]:
                line.variant(f"users at /{path} (the load falls back to it)")
            describe_list(result, line, USERS[path], "users", settings.page_size, page_size, page)
            return


def _start_run(result: CheckResult, environment: dict[str, Any] | None, oauth: bool | None) -> None:
    """Whether node runs could be started from Dagster: nothing is started, only settings and the
    environment object are read."""
    with result.line("startRun", failure="WARN") as line:
        credentials = resolve_warehouse_credentials()
        if credentials is not None:
            line.note(f"{credentials.auth_type} warehouse credentials configured; sent with startRun")
            return
        if oauth:
            line.note("no warehouse credentials configured; the environment uses OAuth (oauthEnabled)")
            return
        line.warn(
            "no warehouse credentials configured and the environment does not say it uses OAuth: "
            "Coalesce would refuse to start node runs from Dagster (the metadata load is not affected). "
            "Set [sources.coalesce_source.credentials] (docs/building-from-dagster.md)."
        )
        if environment is None:
            line.note("no environment was read")
