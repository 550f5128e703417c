"""`coalesce_source`: every Coalesce metadata resource as one dlt source.

Built on dlt's `rest_api` (declarative endpoints, parent/child resources, response actions) with
Coalesce's cursor pagination (`pagination.CoalescePaginator`). Child resources (one request per
environment or run) are `parallelized`: dlt runs them on its extract thread pool, whose size,
`[extract] workers`, bounds how many requests are in flight against Coalesce at once. `runs` and
`users` are plain dlt resources on the same `RESTClient` and session (`http.coalesce_session`),
because they need logic a declaration cannot express: the incremental run frontier (`runs.py`) and
the users path the docs disagree on.

Configuration, resolved by dlt when the source is *called* (never at import):
    [sources.coalesce_source]
    base_url = "https://app.eu.coalescesoftware.io"    # or a region alias such as "eu"
    access_token = "..."                               # in .dlt/secrets.toml or
                                                       # SOURCES__COALESCE_SOURCE__ACCESS_TOKEN
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import dlt
from dlt.sources.helpers.requests import Session
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import RESTClient
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError

from .http import coalesce_session
from .pagination import DATA_SELECTOR, ROOT_SELECTOR, CoalescePaginator, data_envelope
from .records import (
    FirstSeen,
    environment_columns,
    id_columns,
    node_column_columns,
    node_columns,
    normalize_by_id,
    normalize_environment,
    normalize_node,
    normalize_run_result,
    normalize_run_status,
    run_result_columns,
    run_status_columns,
)
from .regions import DEFAULT_BASE_URL, normalize_base_url
from .runs import runs_resource

SOURCE_NAME = "coalesce_source"
RESOURCE_NAMES = (
    "environments",
    "environment",
    "environment_nodes",
    "runs",
    "run_results",
    "run_status",
    "projects",
    "users",
)
DEFAULT_PAGE_SIZE = 250  # the largest page the docs show clients using for lists (§4.2)
RUNS_PAGE_SIZE = 1000  # the documented maximum for /api/v1/runs (§4.1)
# The docs disagree on where the users collection lives (§3.0 CONFLICT): try both, in this order.
USERS_PATHS = ("api/v1/users", "api/v1/organization/users")
IGNORE_404 = [{"status_code": 404, "action": "ignore"}]


@dlt.source(name=SOURCE_NAME, max_table_nesting=2)
def coalesce_source(
    base_url: str = DEFAULT_BASE_URL,
    access_token: str = dlt.secrets.value,
    page_size: int = DEFAULT_PAGE_SIZE,
    runs_page_size: int = RUNS_PAGE_SIZE,
    run_ids: Optional[Sequence[int]] = None,
    advance_run_frontier: Optional[bool] = None,
) -> Any:
    """Coalesce environments, nodes, runs, run results, run statuses, projects and users.

    Args:
        base_url: the Coalesce app URL you log in with, or a region alias (`eu`, `us-east-1`, ...).
        access_token: a Coalesce API token (Deploy tab -> Generate Access Token).
        page_size: items per page for environments, nodes and users.
        runs_page_size: items per page for runs (Coalesce documents 1000 as the maximum).
        run_ids: load exactly these runs (and their results/status) instead of syncing new runs.
        advance_run_frontier: see `runs.runs_resource`; leave None outside tests.
    """
    root = normalize_base_url(base_url)
    auth = BearerTokenAuth(token=access_token)
    session = coalesce_session(root)
    client = RESTClient(base_url=root, auth=auth, headers=_headers(), session=session)

    runs = runs_resource(client, root, runs_page_size, run_ids=run_ids, advance_frontier=advance_run_frontier)
    declared = rest_api_resources(_rest_api_config(root, auth, session, page_size, runs))
    by_name = {resource.name: resource for resource in declared}
    by_name["environment_nodes"].apply_hints(
        nested_hints={"columns": {"columns": node_column_columns()}}
    )
    by_name["users"] = users_resource(client, page_size)
    return [by_name[name] for name in RESOURCE_NAMES]


def _rest_api_config(
    root: str, auth: BearerTokenAuth, session: Session, page_size: int, runs: Any
) -> dict[str, Any]:
    paged = {"limit": page_size, "orderBy": "id", "orderByDirection": "asc"}
    return {
        "client": {"base_url": root, "auth": auth, "headers": _headers(), "session": session},
        "resource_defaults": {
            "endpoint": {"data_selector": DATA_SELECTOR, "paginator": CoalescePaginator()},
        },
        "resources": [
            {
                "name": "environments",
                "primary_key": "id",
                "write_disposition": "replace",
                "columns": id_columns(),
                "endpoint": {"path": "api/v1/environments", "params": {**paged, "detail": "false"}},
                "processing_steps": [{"map": normalize_by_id}, {"filter": FirstSeen("id")}],
            },
            {
                "name": "environment",
                "parallelized": True,
                "primary_key": "id",
                "write_disposition": "replace",
                "columns": environment_columns(),
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}",
                    "data_selector": ROOT_SELECTOR,
                    "paginator": "single_page",
                    # The environment may be deleted between the list and this call.
                    "response_actions": IGNORE_404,
                },
                "processing_steps": [{"map": normalize_environment}],
            },
            {
                "name": "environment_nodes",
                "parallelized": True,
                "primary_key": ["environment_id", "id"],
                "write_disposition": "replace",
                "columns": node_columns(),
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}/nodes",
                    "params": {**paged, "detail": "true"},
                    "response_actions": IGNORE_404,
                },
                "processing_steps": [
                    {"map": normalize_node},
                    {"filter": FirstSeen("environment_id", "id")},
                ],
            },
            runs,
            {
                "name": "run_results",
                "parallelized": True,
                "primary_key": ["run_id", "node_id"],
                "write_disposition": "merge",
                "columns": run_result_columns(),
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/runs/{resources.runs.id}/results",
                    # `data_envelope` brings {"results": [...]} and bare lists to the documented
                    # {"data": [...]} shape without parsing the documented one twice.
                    "data_selector": DATA_SELECTOR,
                    "paginator": "single_page",
                    "response_actions": [data_envelope, *IGNORE_404],
                },
                "processing_steps": [{"map": normalize_run_result}],
            },
            {
                "name": "run_status",
                "parallelized": True,
                "primary_key": "run_id",
                "write_disposition": "merge",
                "columns": run_status_columns(),
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "scheduler/runStatus",
                    "params": {"runCounter": "{resources.runs.id}"},
                    "data_selector": ROOT_SELECTOR,
                    "paginator": "single_page",
                    "response_actions": IGNORE_404,
                },
                "processing_steps": [{"map": normalize_run_status}],
            },
            {
                "name": "projects",
                "primary_key": "id",
                "write_disposition": "replace",
                "columns": id_columns(),
                "endpoint": {
                    "path": "api/v1/projects",
                    "params": {"includeWorkspaces": "true", "includeJobs": "true"},
                },
                "processing_steps": [{"map": normalize_by_id}, {"filter": FirstSeen("id")}],
            },
        ],
    }


def users_resource(client: RESTClient, page_size: int) -> Any:
    @dlt.resource(name="users", primary_key="id", write_disposition="replace", columns=id_columns())
    def users() -> Iterator[list[dict[str, Any]]]:
        first_seen = FirstSeen("id")
        params = {"limit": page_size, "orderBy": "id", "orderByDirection": "asc"}
        for path in USERS_PATHS:
            started = False
            try:
                for page in client.paginate(
                    path, params=params, paginator=CoalescePaginator(), data_selector=DATA_SELECTOR
                ):
                    started = True
                    yield [user for user in map(normalize_by_id, page) if first_seen(user)]
                return
            except HTTPError as error:
                not_here = error.response is not None and error.response.status_code == 404
                if started or not not_here or path == USERS_PATHS[-1]:
                    raise
                # 404 on the first page: this deployment serves users at the next path.

    return users


def _headers() -> dict[str, str]:
    from .. import __version__

    return {"Accept": "application/json", "User-Agent": f"coalesce-dagster/{__version__}"}
