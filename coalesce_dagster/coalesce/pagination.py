"""A cursor paginator that tolerates every pagination variant the Coalesce docs leave open.

The documented protocol (docs/coalesce-api.md §4): a list response carries an opaque `next`; pass it
back as `startingFrom` with the same `orderBy`. Left open, and so all accepted here:

* the end of data is a missing `next`, `next: null` or an empty/blank `next`;
* `next` may be a number instead of a string;
* `total` may be null or absent;
* `startingFrom` may be inclusive, repeating the last item of the previous page (callers de-duplicate
  by key; this class only makes sure a repeated cursor cannot loop forever);
* the older v6.2 runs API has no `next`/`total` at all: the client passes the last id of a full page
  as `startingFrom` (exclusive). Only for the runs list (`v62_runs`): v6.2 paged nothing else, and
  on any other list a page without `next` is the last, full or not (`total` is optional, §4.3); a
  raw id sent there as a cursor would be refused.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from dlt.common.jsonpath import compile_path
from dlt.sources.helpers.requests import Request, Response
from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator

from .errors import UnexpectedResponseError

logger = logging.getLogger(__name__)

CURSOR_PARAM = "startingFrom"

# Compiled once: dlt compiles a selector given as text on every response, and building the JSONPath
# parser cost more CPU than anything else in a profile of the run-results extract.
DATA_SELECTOR = compile_path("data")
ROOT_SELECTOR = compile_path("$")


class CoalescePaginator(BaseReferencePaginator):
    """Follows `next` into `startingFrom`; falls back to last-id paging for v6.2-style responses."""

    def __init__(self, id_field: str = "id", *, v62_runs: bool = False) -> None:
        super().__init__()
        self.id_field = id_field
        self.v62_runs = v62_runs  # the runs list: a full page without `next` or `total` may go on
        self._limit: int | None = None
        self._seen_cursors: set[str] = set()

    def init_request(self, request: Request) -> None:
        # dlt reuses one paginator instance for every evaluation of a top-level resource and
        # deep-copies it per parent item for child resources: start each pagination clean.
        self._next_reference = None
        self._has_next_page = True
        self._seen_cursors = set()
        limit = request.params.get("limit") if isinstance(request.params, dict) else None
        self._limit = int(limit) if limit is not None and str(limit).isdigit() else None

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()  # parsed once, shared with dlt's data selector (`http.JsonResponse`)
        check_list_envelope(body, response)
        if not isinstance(body, dict) or not data:
            # A bare list is one page by definition; an empty page cannot advance a cursor.
            self._next_reference = None
            return
        cursor = _as_cursor(body.get("next"))
        if cursor is None and self.v62_runs and _is_v62_runs_page(body) and self._is_full_page(data, body):
            last_id = data[-1].get(self.id_field) if isinstance(data[-1], dict) else None
            cursor = _as_cursor(last_id)
        if cursor is not None and cursor in self._seen_cursors:
            logger.warning(
                "Coalesce returned the cursor %r twice for %s; stopping pagination there.",
                cursor,
                response.request.path_url.split("?")[0] if response.request else "?",
            )
            cursor = None
        if cursor is not None:
            self._seen_cursors.add(cursor)
        self._next_reference = cursor

    @property
    def next_cursor(self) -> str | None:
        """The `startingFrom` of the page after the last one read (None at the end of data)."""
        return self._next_reference

    def update_request(self, request: Request) -> None:
        if not isinstance(request.params, dict):
            request.params = {}
        request.params[CURSOR_PARAM] = self._next_reference

    def _is_full_page(self, data: list[Any], body: dict) -> bool:
        # Against the limit the page says it had (v6.2 echoes it), where that is below the one asked
        # for: a server that caps pages quietly must not end the paging after its first page.
        limits = [limit for limit in (self._limit, body.get("limit")) if type(limit) is int and limit > 0]
        return bool(limits) and len(data) >= min(limits)


def run_results_envelope(response: Response, *args: Any, **kwargs: Any) -> Response:
    """Response hook for `/api/v1/runs/{id}/results`: present the answer as `{"data": [...]}`.

    Coalesce documents `{"data": [...]}`; clients have also met `{"results": [...]}` and bare lists
    (docs/coalesce-api.md section 3.4). The body is parsed (once: `http.JsonResponse` keeps the
    result), so the key is found wherever it sits. Any other shape stops the load before anything
    is written: loading nothing for a run would lose its results for good.
    """
    if response.status_code != 200:
        return response
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return response
    if isinstance(body, list):
        items = body
    elif isinstance(body, dict) and isinstance(body.get("results"), list):
        items = body["results"]
    else:
        raise UnexpectedResponseError(
            f"the results of run {_run_id_in(response)}",
            f'expected {{"data": [...]}}, {{"results": [...]}} or a list, got {_shape(body)}',
        )
    response._content = orjson.dumps({"data": items})
    return response


def check_list_envelope(body: Any, response: Response) -> None:
    """A list answer must carry its items under `data`; anything else stops the load.

    Read before the page is handed on (dlt yields a page only after `update_state`), so a body of the
    wrong shape never reaches the destination, where an empty page would replace a table with nothing.
    """
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return
    what = response.request.path_url.split("?")[0] if response.request is not None else response.url
    raise UnexpectedResponseError(what, f"expected an object with a `data` list, got {_shape(body)}")


def _shape(body: Any) -> str:
    if isinstance(body, dict):
        return f"an object with keys {sorted(body)[:8]}"
    return type(body).__name__


def _run_id_in(response: Response) -> str:
    """The run id in `/api/v1/runs/{id}/results`, for messages."""
    path = response.request.path_url.split("?")[0] if response.request is not None else str(response.url)
    parts = path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == "results" else path


def _as_cursor(value: Any) -> str | None:
    """`next` as the string to send back, or None at the end of data."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _is_v62_runs_page(body: dict) -> bool:
    # The current API always sends `total` (possibly null) and `next` until the last page; v6.2
    # responses carry neither key. Only then is "a full page without a cursor" ambiguous.
    return "next" not in body and "total" not in body
