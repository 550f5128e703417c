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
from typing import Any, Iterator, Mapping, Optional

import requests
from dlt.sources.helpers.rest_client.client import RESTClient

from .errors import raise_for_coalesce_status
from .pagination import CURSOR_PARAM, DATA_SELECTOR, CoalescePaginator

logger = logging.getLogger(__name__)

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
                reason, self.what, failed_size, self._size,
            )
            return True


def read_pages(
    client: RESTClient,
    path: str,
    params: Mapping[str, Any],
    page_size: PageSize,
    *,
    timeout: Optional[float] = None,
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
    cursor: Optional[str] = None
    extra: dict[str, Any] = {"timeout": timeout} if timeout else {}
    while True:
        size = page_size.value
        query = {**params, "limit": size}
        if cursor is not None:
            query[CURSOR_PARAM] = cursor
        paginator = CoalescePaginator()
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
