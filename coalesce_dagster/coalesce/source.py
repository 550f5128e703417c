"""`coalesce_source`: every Coalesce metadata resource as one dlt source.

Built on dlt's `rest_api` (declarative endpoints, parent/child resources, response actions) with
Coalesce's cursor pagination. The paged lists (environments, nodes, jobs, runs, users) are read by
`lists.read_pages`, which adapts page sizes to what Coalesce answers; `runs` carries the incremental
run frontier (`runs.py`), and `users` the path the docs disagree on. Child resources (one request per
environment or run) are `parallelized`: dlt runs them on its extract thread pool, whose size,
`[extract] workers`, bounds how many requests are in flight against Coalesce at once. The lists
`runs`, `projects` and `users` are `parallelized` too: their pages are read on that pool, not on the
extract's main thread, which would otherwise hand out no child request while it waits for a runs
page (docs/benchmark.md, "Extract CPU"). `environments` is read first, on the main thread: when
Coalesce cannot be reached, that one request fails (after its retries) before any other is sent.

Settings are resolved by `config.resolve_source_settings` when the source is *called* (never at
import), from explicit arguments or `[sources.coalesce_source]` only:

    [sources.coalesce_source]
    base_url = "https://app.eu.coalescesoftware.io"    # or a region alias such as "eu"
    access_token = "..."                               # in .dlt/secrets.toml or
                                                       # SOURCES__COALESCE_SOURCE__ACCESS_TOKEN
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, cast

import dlt
from dlt.extract.source import DltSource
from dlt.sources.helpers.rest_client.client import RESTClient
from dlt.sources.rest_api import rest_api_resources
from requests import HTTPError

from ..configuration import SourceSettings, resolve_source_settings
from .columns import (
    NO_NODES_COLUMN,
    environment_columns,
    id_columns,
    job_columns,
    no_nodes_column,
    node_column_columns,
    node_columns,
    run_result_columns,
    run_status_columns,
)
from .http import coalesce_headers
from .lists import ASCENDING, FirstSeen, PageSize, read_pages
from .nodes.rereads import NodeRereads
from .nodes.snapshot import NodeCollector, read_environment_nodes, rest_clients
from .pagination import DATA_SELECTOR, ROOT_SELECTOR, check_list_envelope, run_results_envelope
from .rows import environment_row, job_row, node_row, rows_by_id_of, run_result_row, run_status_row
from .runs import RunLedger, runs_resource

logger = logging.getLogger(__name__)

SOURCE_NAME = "coalesce_source"
RESOURCE_NAMES = (
    "environments",
    "environment",
    "environment_nodes",
    "jobs",
    "runs",
    "run_results",
    "run_status",
    "projects",
    "users",
)
# The docs disagree on where the users collection lives (§3.0 CONFLICT): try both, in this order.
USERS_PATHS = ("api/v1/users", "api/v1/organization/users")
IGNORE_404 = [{"status_code": 404, "action": "ignore"}]
# An environment's saved jobs: the path is INFERRED (doc §10.9), so a 404 loads no jobs.
JOBS_PATH = "api/v1/environments/{}/jobs"


def coalesce_source(
    base_url: str | None = None,
    access_token: str | None = None,
    page_size: int | None = None,
    runs_page_size: int | None = None,
    nodes_page_size: int | None = None,
    nodes_timeout: float | None = None,
    run_ids: Sequence[int] | None = None,
    node_collector: NodeCollector | None = None,
    nodes_full_reread_hours: float | None = None,
    nodes_environments_at_once: int | None = None,
) -> DltSource:
    """Coalesce environments, nodes, jobs, runs, run results, run statuses, projects and users.

    Arguments left None come from `[sources.coalesce_source]` (see `config.py`); a missing token
    raises `config.MissingTokenError` before any request.

    Args:
        base_url: the Coalesce app URL you log in with, or a region alias (`eu`, `us-east-1`, ...).
        access_token: a Coalesce API token (Deploy tab -> Generate Access Token).
        page_size: items per page for environments, jobs and users (at most 500).
        runs_page_size: items per page for runs (at most 500).
        nodes_page_size: items per `detail=true` node page (slow on large workspaces).
        nodes_timeout: seconds to wait for one node page before asking for a smaller one.
        run_ids: load exactly these runs (and their results/status) instead of syncing new runs.
        node_collector: receives every environment's node bodies as they are read (the node
            assets' snapshot is refreshed from them after a successful load), and says which
            environments the snapshot needs read whether they changed or not.
        nodes_full_reread_hours: how often every environment's nodes are read, deploy or not
            (`nodes.rereads`); 0: on every sync.
        nodes_environments_at_once: how many environments' nodes are read at once (1: in turn,
            so that one environment's nodes are in memory at a time).
    """
    settings = resolve_source_settings(
        base_url=base_url,
        access_token=access_token,
        page_size=page_size,
        runs_page_size=runs_page_size,
        nodes_page_size=nodes_page_size,
        nodes_timeout=nodes_timeout,
        nodes_full_reread_hours=nodes_full_reread_hours,
        nodes_environments_at_once=nodes_environments_at_once,
    )
    ids = None if run_ids is None else [int(run_id) for run_id in run_ids]
    warn_if_extract_holds_fewer_than_workers()
    return _coalesce_source(settings, ids, node_collector)


def warn_if_extract_holds_fewer_than_workers() -> None:
    """`[extract] max_parallel_items` bounds the requests in flight below `workers` when it does not
    also leave room for the resources paging their lists: say so, once per load."""
    workers = int(dlt.config.get("extract.workers") or 5)  # dlt's defaults
    items = int(dlt.config.get("extract.max_parallel_items") or 20)
    if items < workers + len(RESOURCE_NAMES):
        logger.warning(
            "[extract] max_parallel_items = %d holds the requests in flight under [extract] workers = %d: "
            "set it to at least %d.",
            items,
            workers,
            workers + len(RESOURCE_NAMES),
        )


def spec_source() -> DltSource:
    """The source as Dagster's definitions describe it: built without reading config or secrets,
    and never extracted."""
    return _coalesce_source(
        SourceSettings(base_url="https://coalesce.invalid", access_token="unused"), None, None
    )


def _coalesce_source(
    settings: SourceSettings, run_ids: list[int] | None, node_collector: NodeCollector | None
) -> DltSource:
    # Every value is resolved already: the dlt source function takes none from dlt config, so dlt
    # cannot pick up a same-named setting of another tool (see `config.py`).
    @dlt.source(name=SOURCE_NAME, max_table_nesting=2)
    def coalesce_source() -> Any:
        return _resources(settings, run_ids, node_collector)

    return coalesce_source()


def _resources(
    settings: SourceSettings, run_ids: list[int] | None, node_collector: NodeCollector | None
) -> list[Any]:
    root = settings.base_url
    client, nodes_client = rest_clients(settings)
    auth, session = client.auth, client.session  # rest_api's resources share them

    ledger = RunLedger()
    environments = environments_resource(
        client, PageSize("environments", settings.page_size), settings.nodes_environments_at_once
    )
    rereads = NodeRereads(
        client, PageSize("deploy runs", settings.runs_page_size), settings.nodes_full_reread_hours
    )
    nodes = environment_nodes_resource(
        environments,
        nodes_client,
        PageSize("environment nodes", settings.nodes_page_size),
        settings.nodes_timeout,
        rereads,
        node_collector,
    )
    runs = runs_resource(client, settings.runs_page_size, ledger, run_ids=run_ids)
    config = _rest_api_config(root, auth, session, environments, runs, ledger)
    by_name = {resource.name: resource for resource in rest_api_resources(config)}
    by_name["environment_nodes"] = nodes
    by_name["jobs"] = jobs_resource(environments, client, PageSize("jobs", settings.page_size))
    by_name["users"] = users_resource(client, PageSize("users", settings.page_size))
    return [by_name[name] for name in RESOURCE_NAMES]


def _rest_api_config(
    root: str, auth: Any, session: Any, environments: Any, runs: Any, ledger: RunLedger
) -> Any:
    # No paginator in `resource_defaults`: a paginator instance there is shared by every resource,
    # so one resource's last page would end another's paging. Declared resources here are single
    # pages; paged lists go through `lists.read_pages`, with a paginator per paging.
    return {
        "client": {"base_url": root, "auth": auth, "headers": coalesce_headers(), "session": session},
        "resource_defaults": {"endpoint": {"data_selector": ROOT_SELECTOR, "paginator": "single_page"}},
        "resources": [
            environments,
            {
                "name": "environment",
                "parallelized": True,
                "primary_key": "id",
                "write_disposition": "replace",
                "columns": environment_columns(),
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/environments/{resources.environments.id}",
                    # The environment may be deleted between the list and this call.
                    "response_actions": IGNORE_404,
                },
                "processing_steps": [{"map": environment_row}],
            },
            runs,
            {
                "name": "run_results",
                "parallelized": True,
                "primary_key": ["run_id", "node_id"],
                # A run's results replace all its earlier rows: results loaded while the run was
                # going (`isRunning`) give way to the final ones.
                "merge_key": "run_id",
                "write_disposition": "merge",
                "columns": run_result_columns(),
                "include_from_parent": ["id"],
                "endpoint": {
                    "path": "api/v1/runs/{resources.runs.id}/results",
                    "data_selector": DATA_SELECTOR,
                    "response_actions": [
                        run_results_envelope,
                        ledger.response_hook("run_results"),
                        *IGNORE_404,
                    ],
                },
                "processing_steps": [{"map": run_result_row}],
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
                    "response_actions": [ledger.response_hook("run_status"), *IGNORE_404],
                },
                "processing_steps": [{"map": run_status_row}],
            },
            {
                "name": "projects",
                "parallelized": True,
                "primary_key": "id",
                "write_disposition": "replace",
                "columns": id_columns(),
                "endpoint": {
                    "path": "api/v1/projects",
                    "params": {"includeWorkspaces": "true", "includeJobs": "true"},
                    "data_selector": DATA_SELECTOR,
                    "response_actions": [_require_data_list],
                },
                "processing_steps": [
                    {"map": rows_by_id_of("a project of /api/v1/projects")},
                    {"filter": FirstSeen("id")},
                ],
            },
        ],
    }


def environments_resource(client: RESTClient, page_size: PageSize, groups: int = 1) -> Any:
    """The environments list, each page yielded as up to `groups` lists: `environment_nodes` reads
    each list's environments one after another, and the lists side by side (its docstring)."""

    @dlt.resource(name="environments", primary_key="id", write_disposition="replace", columns=id_columns())
    def environments() -> Iterator[list[dict[str, Any]]]:
        first_seen = FirstSeen("id")
        environment = rows_by_id_of("an environment of /api/v1/environments")
        params = {**ASCENDING, "detail": "false"}
        for page in read_pages(client, "api/v1/environments", params, page_size):
            yield from in_groups([env for env in map(environment, page) if first_seen(env)], groups)

    return environments


def in_groups(items: list[dict[str, Any]], groups: int) -> Iterator[list[dict[str, Any]]]:
    """`items` in up to `groups` consecutive lists of near-equal length, in order; one empty list
    for no items (a page still reaches the child resources, as before)."""
    size = max(1, -(-len(items) // max(1, groups)))
    yield items[:size]
    for start in range(size, len(items), size):
        yield items[start : start + size]


def environment_nodes_resource(
    environments: Any,
    client: RESTClient,
    page_size: PageSize,
    timeout: float,
    rereads: NodeRereads,
    node_collector: NodeCollector | None = None,
) -> Any:
    """The nodes of every environment that changed since it was last read (`nodes.rereads`), with
    detail; read on dlt's extract pool, the environments of each list `environments` yields one
    after another, and its lists side by side (`nodes_environments_at_once` of them per page).

    By default one environment at a time: an environment's nodes with detail are held whole until
    written (about 20 MB per 2,000 nodes), and read side by side, every environment's were in memory
    at once early in the extract. The memory they took stayed with the process through the load, so
    the peak grew with the number of environments (docs/benchmark.md, "Memory"). Read in turn, they
    take one pool thread: the other threads keep fetching runs and their results meanwhile.

    The table is merged per environment (`delete-insert`, merge key `environment_id`): a re-read
    environment's rows are replaced exactly, the others' stay. A full re-read replaces the tables."""

    @dlt.transformer(
        data_from=environments,
        name="environment_nodes",
        primary_key=["environment_id", "id"],
        merge_key="environment_id",
        write_disposition="merge",  # dlt's default merge strategy: delete-insert
        columns=cast(Any, {**node_columns(), NO_NODES_COLUMN: no_nodes_column(merging=True)}),
        nested_hints={"columns": {"columns": node_column_columns()}},
        # dlt steps each list's generator on its extract pool, one step at a time, and the lists'
        # generators side by side: each step reads one environment's nodes.
        parallelized=True,
    )
    def environment_nodes(page: list[dict[str, Any]]) -> Iterator[Any]:
        state = dlt.current.resource_state()
        plan = rereads.plan(state)
        read_any = False
        for environment in page:
            env_id, name = str(environment["id"]), str(environment.get("name") or "")
            wanted_by_snapshot = node_collector is not None and node_collector.lacks(env_id, name)
            if not (plan.reads(env_id) or wanted_by_snapshot):
                if node_collector is not None:
                    node_collector.keep(env_id, name)
                continue
            rereads.record_read(state, env_id)
            read_any = True
            yield _nodes_of(client, env_id, name, page_size, timeout, plan.full, node_collector)
        if not read_any:
            # The table is still written (nothing merged): Dagster reports a row count for every
            # table of the load, and a load without this one would leave it none.
            yield dlt.mark.materialize_table_schema()

    return environment_nodes


def _nodes_of(
    client: RESTClient,
    environment_id: str,
    environment_name: str,
    page_size: PageSize,
    timeout: float,
    replacing: bool,
    node_collector: NodeCollector | None,
) -> Any:
    raw_nodes = read_environment_nodes(client, environment_id, page_size, timeout)
    if node_collector is not None:
        node_collector.add(environment_id, environment_name, raw_nodes)
    rows = [node_row({**raw, "_environments_id": environment_id}) for raw in raw_nodes]
    if not rows and not replacing:
        rows = [{"environment_id": environment_id, "id": "", NO_NODES_COLUMN: True}]
    # Every item carries this sync's write disposition: replace on a full re-read, else merge.
    hints = dlt.mark.make_hints(
        write_disposition="replace" if replacing else "merge",
        columns=cast(Any, [no_nodes_column(merging=not replacing)]),
    )
    return dlt.mark.with_hints(rows, hints)


def jobs_resource(environments: Any, client: RESTClient, page_size: PageSize) -> Any:
    """The saved jobs of every environment (doc §10.9), so a job can be picked by name; one
    environment per task on dlt's extract pool."""
    missing = JobsListMissing()

    @dlt.transformer(
        data_from=environments,
        name="jobs",
        primary_key=["environment_id", "id"],
        write_disposition="replace",
        columns=job_columns(),
    )
    def jobs(page: list[dict[str, Any]]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
        for environment in page:
            yield partial(_jobs_of, client, str(environment["id"]), page_size, missing)

    return jobs


def _jobs_of(
    client: RESTClient, environment_id: str, page_size: PageSize, missing: JobsListMissing
) -> list[dict[str, Any]]:
    first_seen = FirstSeen("id")
    jobs: list[dict[str, Any]] = []
    try:
        for page in read_pages(client, JOBS_PATH.format(environment_id), ASCENDING, page_size):
            jobs.extend(job for job in (job_row(raw, environment_id) for raw in page) if first_seen(job))
    except HTTPError as error:
        if error.response is None or error.response.status_code != 404:
            raise
        missing.report(environment_id)
        jobs = []
    # No jobs at all (none saved, or no list) must still write the table, empty: a load without a
    # table for a selected asset would leave Dagster no row count to report.
    return jobs or dlt.mark.materialize_table_schema()


class JobsListMissing:
    """Says once per load that Coalesce answered 404 to an environment's jobs list.

    The list's path is INFERRED (doc §10.9): a deployment without it answers 404 for every
    environment, which is no reason to fail the load, nor to repeat the same warning per
    environment. (An environment deleted since it was listed answers 404 too.)"""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.environments: list[str] = []

    def report(self, environment_id: str) -> None:
        with self._lock:
            self.environments.append(environment_id)
            first = len(self.environments) == 1
        if first:
            logger.warning(
                "Coalesce answered 404 to the jobs list of environment %s (GET %s): this deployment "
                "may not serve it, or the environment was deleted since it was listed. Loading no jobs "
                "for such environments; the rest of the load goes on.",
                environment_id,
                JOBS_PATH.format(environment_id),
            )
        else:
            logger.debug("Coalesce answered 404 to the jobs list of environment %s too.", environment_id)


def users_resource(client: RESTClient, page_size: PageSize) -> Any:
    @dlt.resource(
        name="users", primary_key="id", write_disposition="replace", columns=id_columns(), parallelized=True
    )
    def users() -> Iterator[list[dict[str, Any]]]:
        first_seen = FirstSeen("id")
        for path in USERS_PATHS:
            started = False
            try:
                user_row = rows_by_id_of(f"a user of /{path}")
                for page in read_pages(client, path, ASCENDING, page_size):
                    started = True
                    yield [user for user in map(user_row, page) if first_seen(user)]
                return
            except HTTPError as error:
                not_here = error.response is not None and error.response.status_code == 404
                if started or not not_here or path == USERS_PATHS[-1]:
                    raise
                # 404 on the first page: this deployment serves users at the next path.

    return users


def _require_data_list(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A list answer must carry its items under `data` (see `pagination.check_list_envelope`)."""
    if response.status_code == 200:
        check_list_envelope(response.json(), response)
    return response
