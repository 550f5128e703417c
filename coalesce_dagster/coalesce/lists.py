"""Reading Coalesce's paged lists, with page sizes that adapt to what Coalesce will answer.

Every paged list (environments, nodes, runs, users) is read here, through dlt's `RESTClient.paginate`
and `CoalescePaginator`. Two answers of real accounts make a fixed page size fragile:

* a page size above what the account accepts is refused with 400 (real clients cap `limit` at 500,
  older docs said 1000): the list is asked again with a smaller page;
* a `detail=true` node page can take minutes on a large workspace: when such a page times out, it is
  asked again, smaller, from the same cursor, so a large environment loads, only more slowly.

A `PageSize` is shared by every paging of one list (all environments' node lists, say), so the
lesson is learned, and logged, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from dlt.sources.helpers.rest_client.client import RESTClient

from .errors import raise_for_coalesce_status
from .pagination import CURSOR_PARAM, DATA_SELECTOR, CoalescePaginator
from .rows import run_row

logger = logging.getLogger(__name__)

RUNS_PATH = "api/v1/runs"

# Lists whose order does not matter to us are read oldest id first, so new items land on later pages.
ASCENDING = {"orderBy": "id", "orderByDirection": "asc"}

# Halving goes down to pages of one item: from 500 that is at most 9 more requests before an
# error that a smaller page cannot help is reported.
MIN_PAGE_SIZE = 1


class PageSize:
    """The page size of one list, shrunk (halved) when Coalesce refuses it or a page times out."""

    def __init__(self, what: str, size: int, minimum: int = MIN_PAGE_SIZE) -> None:
        self.what = what
        self._size = size
        self.minimum = minimum
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._size

    def shrink(self, failed_size: int, reason: str) -> bool:
        """After a page of `failed_size` failed: whether to try again (with `value`)."""
        with self._lock:
            if self._size < failed_size:
                return True  # another paging of this list already shrank it: use the new size
            if failed_size <= self.minimum:
                return False
            self._size = max(self.minimum, failed_size // 2)
            logger.warning(
                "Coalesce %s for %s pages of %d; asking for pages of %d from now on.",
                reason,
                self.what,
                failed_size,
                self._size,
            )
            return True


def read_pages(
    client: RESTClient,
    path: str,
    params: Mapping[str, Any],
    page_size: PageSize,
    *,
    timeout: float | None = None,
    shrink_on_timeout: bool = False,
) -> Iterator[list[Any]]:
    """The pages of the list at `path`, in order, each page once.

    params: the query without `limit` and `startingFrom`, which this function sets.
    timeout: the request timeout for these pages, instead of the session's.
    shrink_on_timeout: answer a read timeout with a smaller page from the same cursor (use a
        session that does not itself retry read timeouts: see `http.coalesce_session`).
    Raises `requests.HTTPError` (as `CoalesceApiError`) for an error answer that a smaller page
    cannot help, after dlt's retries of transient ones.
    """
    cursor: str | None = None
    extra: dict[str, Any] = {"timeout": timeout} if timeout else {}
    while True:
        size = page_size.value
        query = {**params, "limit": size}
        if cursor is not None:
            query[CURSOR_PARAM] = cursor
        paginator = CoalescePaginator(v62_runs=path.strip("/") == RUNS_PATH)
        try:
            for page in client.paginate(
                path,
                params=query,
                paginator=paginator,
                data_selector=DATA_SELECTOR,
                hooks={"response": [raise_for_coalesce_status]},
                **extra,
            ):
                cursor = paginator.next_cursor  # where to resume if a later page fails
                yield page
            return
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else None
            if status != 400 or not page_size.shrink(size, "refused (400)"):
                raise
        except requests.ReadTimeout:
            waited = f"within {timeout:g} s" if timeout else "in time"
            if not shrink_on_timeout or not page_size.shrink(size, f"did not answer {waited}"):
                raise


@dataclass(frozen=True)
class RunsPage:
    new_runs: list[dict[str, Any]]  # this page's runs not yet known, as `rows.run_row` shapes them
    highest_id: int | None  # the highest run id on the page, known or not


def read_runs_newest_first(
    client: RESTClient,
    page_size: PageSize,
    *,
    detail: bool,
    is_known: Callable[[dict[str, Any]], bool],
    filters: Mapping[str, str] | None = None,
) -> Iterator[RunsPage]:
    """`/api/v1/runs`, newest first, each run once, down to the runs already known.

    Paging stops after the first page that reached a known run, so the cost grows with new runs,
    not with history; a server that ignored `orderByDirection` (a page not in descending order) is
    read to the end instead. Used by the `runs` resource (known: at or below its frontier) and the
    run-status sensor (known: at or below its cursor, or older than its look-back), and the node
    re-read plan (`filters` {"runType": "deploy"}: the deploy runs since the last sync).
    """
    params = {
        **(filters or {}),
        "detail": "true" if detail else "false",
        "orderBy": "id",
        "orderByDirection": "desc",
    }
    seen: set[int] = set()
    # The order is judged over every id read so far, across pages: one run (a page of one) shows
    # no order at all, and stopping on it could stop at the oldest run of a server that ignored
    # the order asked for.
    descending, last_id, ids_read = True, None, 0
    for page in read_pages(client, RUNS_PATH, params, page_size):
        runs = [run_row(raw) for raw in page]
        new_runs, reached_known = [], False
        for run in runs:
            if run["id"] in seen:
                continue  # an inclusive cursor repeats the last run of the previous page
            seen.add(run["id"])
            if is_known(run):
                reached_known = True
            else:
                new_runs.append(run)
        yield RunsPage(new_runs, max((run["id"] for run in runs), default=None))
        for run in runs:
            descending = descending and (last_id is None or last_id >= run["id"])
            last_id, ids_read = run["id"], ids_read + 1
        if reached_known and descending and ids_read >= 2:
            return


class FirstSeen:
    """A filter that drops records whose key was already seen in this extraction.

    Guards against APIs whose `startingFrom` turns out to be inclusive (one repeated item per page)
    and against a list that shifts while it is being paged.
    """

    def __init__(self, *key_fields: str) -> None:
        self.key_fields = key_fields
        self._seen: set[tuple[Any, ...]] = set()

    def __call__(self, record: Mapping[str, Any]) -> bool:
        key = tuple(str(record.get(field)) for field in self.key_fields)
        if key in self._seen:
            return False
        self._seen.add(key)
        return True
