"""Reading the nodes of the configured environments into a `NodeSnapshot`.

Two ways, one result:

* `fetch_node_snapshot`: asks Coalesce directly (`dg utils refresh-defs-state`, the node assets'
  state-backed component);
* `NodeCollector`: catches the node bodies the daily environments sync reads anyway, so that sync
  refreshes the snapshot without asking Coalesce twice. An environment that sync does not re-read
  (no deploy since its last read, `rereads.py`) keeps its nodes from the previous snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.client import RESTClient
from requests import HTTPError

from ...configuration import ConfigurationError, SourceSettings
from ..errors import UnexpectedResponseError
from ..http import InFlightLimit, ResponseObserver, coalesce_headers, coalesce_session, runtime_settings
from ..lists import ASCENDING, FirstSeen, PageSize, read_pages
from .model import EnvironmentNodes, NodeSnapshot, parse_node, select_environments

logger = logging.getLogger(__name__)


def read_environment_nodes(
    client: RESTClient, environment_id: str, page_size: PageSize, timeout: float
) -> list[dict[str, Any]]:
    """Every node of one environment, with detail (columns, lineage), each once; [] when Coalesce
    no longer knows the environment (404: deleted since it was listed)."""
    first_seen = FirstSeen("id")
    nodes: list[dict[str, Any]] = []
    try:
        for page in read_pages(
            client,
            f"api/v1/environments/{environment_id}/nodes",
            {**ASCENDING, "detail": "true"},
            page_size,
            timeout=timeout,
            shrink_on_timeout=True,
        ):
            for raw in page:
                if not isinstance(raw, dict):
                    raise UnexpectedResponseError(
                        f"the nodes of environment {environment_id}",
                        f"expected an object, got {type(raw).__name__}",
                    )
                if first_seen(raw):
                    nodes.append(raw)
    except HTTPError as error:
        if error.response is None or error.response.status_code != 404:
            raise
        logger.warning("Coalesce environment %s no longer exists (404); skipping its nodes.", environment_id)
        return []
    return nodes


def rest_clients(
    settings: SourceSettings, observer: ResponseObserver | None = None
) -> tuple[RESTClient, RESTClient]:
    """A client for Coalesce's lists, and one for `detail=true` node pages: those answer a read
    timeout with a smaller page (`lists.read_pages`), so their session has its own timeout and does
    not retry the same slow page first. `observer` sees every answer (`http.coalesce_session`)."""
    auth = BearerTokenAuth(token=settings.access_token)
    # `[runtime]` resolved once for both clients and their sessions, not four times: each resolution
    # looks every field up in every config provider, and the definitions build these at every load.
    runtime = runtime_settings()
    # One cap on requests in flight for both: Coalesce's rate limit counts the account's requests.
    in_flight = InFlightLimit()
    client = RESTClient(
        base_url=settings.base_url,
        auth=auth,
        headers=coalesce_headers(),
        session=coalesce_session(settings.base_url, observer=observer, runtime=runtime, in_flight=in_flight),
        config=runtime,
    )
    nodes_client = RESTClient(
        base_url=settings.base_url,
        auth=auth,
        headers=coalesce_headers(),
        session=coalesce_session(
            settings.base_url,
            timeout=settings.nodes_timeout,
            retry_read_timeouts=False,
            observer=observer,
            runtime=runtime,
            in_flight=in_flight,
        ),
        config=runtime,
    )
    return client, nodes_client


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fetch_node_snapshot(settings: SourceSettings, environments: Sequence[str]) -> NodeSnapshot:
    """The nodes of `environments` (ids or names) as Coalesce has them now.

    Raises `ConfigurationError` when no environment is configured or one names none of the
    account's environments, before any node page is read."""
    if not environments:
        raise ConfigurationError(NO_ENVIRONMENTS_HELP)
    client, nodes_client = rest_clients(settings)
    listed: list[Mapping[str, Any]] = []
    for page in read_pages(
        client,
        "api/v1/environments",
        {**ASCENDING, "detail": "false"},
        PageSize("environments", settings.page_size),
    ):
        listed.extend(env for env in page if isinstance(env, Mapping))
    chosen, unmatched = select_environments(listed, environments)
    if unmatched:
        known = ", ".join(f"{env.get('id')} ({env.get('name')})" for env in listed) or "none"
        raise ConfigurationError(
            f"[coalesce_dagster.nodes] environments names {', '.join(map(repr, unmatched))}, which "
            f"match no Coalesce environment by id or name. The account has: {known}."
        )
    page_size = PageSize("environment nodes", settings.nodes_page_size)
    return NodeSnapshot(
        environments=tuple(
            EnvironmentNodes(
                id=env_id,
                name=name,
                nodes=tuple(
                    parse_node(raw)
                    for raw in read_environment_nodes(nodes_client, env_id, page_size, settings.nodes_timeout)
                ),
            )
            for env_id, name in chosen
        ),
        fetched_at=now_iso(),
        base_url=settings.base_url,
        requested=tuple(environments),
    )


NO_ENVIRONMENTS_HELP = (
    "No Coalesce environment is chosen for node assets. Name them (by id or name) in .dlt/config.toml: "
    '[coalesce_dagster.nodes] environments = ["2", "Production"] '
    "(or COALESCE_DAGSTER__NODES__ENVIRONMENTS='[\"2\"]')."
)


class NodeCollector:
    """Node bodies seen by a load, per environment, for a snapshot once the load has succeeded.

    wanted: the environments (ids or names) the snapshot holds; previous: the stored snapshot of the
    same account, whose nodes stand for an environment the load does not re-read.
    Filled from dlt's extract threads, hence the lock."""

    def __init__(self, wanted: Sequence[str] = (), previous: NodeSnapshot | None = None) -> None:
        self._lock = threading.Lock()
        self._environments: dict[str, EnvironmentNodes] = {}
        self._listed: list[dict[str, str]] = []
        self._wanted = tuple(wanted)
        self.previous = previous
        self._previous = {env.id: env for env in previous.environments} if previous is not None else {}

    def lacks(self, environment_id: str, environment_name: str) -> bool:
        """Whether the snapshot needs this environment's nodes and the previous one does not hold
        them: the load must read them, changed or not."""
        chosen, _ = select_environments([{"id": environment_id, "name": environment_name}], self._wanted)
        return bool(chosen) and environment_id not in self._previous

    def keep(self, environment_id: str, environment_name: str) -> None:
        """The load did not re-read this environment: its nodes are the previous snapshot's."""
        kept = self._previous.get(environment_id)
        if kept is None:
            return  # not one the snapshot holds (`lacks` made the load read those)
        with self._lock:
            self._environments[environment_id] = replace(kept, name=environment_name)
            self._listed.append({"id": environment_id, "name": environment_name})

    def add(self, environment_id: str, environment_name: str, raw_nodes: Sequence[Mapping[str, Any]]) -> None:
        environment = EnvironmentNodes(
            id=environment_id, name=environment_name, nodes=tuple(parse_node(raw) for raw in raw_nodes)
        )
        with self._lock:
            self._environments[environment_id] = environment
            self._listed.append({"id": environment_id, "name": environment_name})

    def unchanged(self, snapshot: NodeSnapshot) -> bool:
        """Whether `snapshot` holds what the previous one does: then it need not be stored again."""
        previous = self.previous
        return previous is not None and (previous.base_url, previous.requested, previous.environments) == (
            snapshot.base_url,
            snapshot.requested,
            snapshot.environments,
        )

    def snapshot(self, environments: Sequence[str], base_url: str) -> tuple[NodeSnapshot | None, list[str]]:
        """The snapshot of `environments` (ids or names) of the account at `base_url` (the load's),
        and the entries the load did not see.

        None when nothing matched: a snapshot must not be replaced by an empty one."""
        with self._lock:
            chosen, unmatched = select_environments(self._listed, environments)
            if not chosen:
                return None, unmatched
            return (
                NodeSnapshot(
                    environments=tuple(self._environments[env_id] for env_id, _ in chosen),
                    fetched_at=now_iso(),
                    base_url=base_url,
                    requested=tuple(environments),
                ),
                unmatched,
            )
