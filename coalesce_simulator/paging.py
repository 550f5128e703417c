"""Cursor pagination as Coalesce documents it (doc §4), plus the variants Faults can switch on.

A request names a sort (``orderBy``/``orderByDirection``), a page size (``limit``) and an
optional exclusive cursor (``startingFrom``). The cursor can take several forms, all decoded
here:

* the opaque token the server hands out as ``next``: unpadded base64url of
  ``{"id": <last id on the page>}`` (plus the sort value when sorting by something else);
* a bare integer: a run/environment id (the v6.2 runs style), or for collections whose ids
  are not numeric, an offset (the ``next_style="number"`` fault);
* for runs only, an ISO date-time compared with the run's start (or end) time (v6.2 style).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .faults import Faults
from .responses import ApiError
from .timeutil import UTC, parse_iso, to_iso

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000

_DIGITS = re.compile(r"[0-9]+")
_BASE64 = re.compile(r"[A-Za-z0-9_\-+/]+=*")
# Sorts missing values (e.g. runEndTime of a live run) after every real one.
_MISSING_RANK = 1
_MIN_TIME = datetime.min.replace(tzinfo=UTC)

SortValue = Callable[[Mapping[str, Any], str], "datetime | None"]


@dataclass(frozen=True)
class PageParams:
    limit: int
    order_by: str
    direction: str  # "asc" | "desc"
    starting_from: str | None  # raw cursor as sent; None when absent or empty


def parse_page_params(
    query: Mapping[str, str],
    *,
    order_fields: Sequence[str],
    default_direction: str,
    max_limit: int | None = None,
) -> PageParams:
    """Validate the paging query parameters; 400 on anything malformed.

    ``max_limit`` (the ``max_page_size`` fault): accept only ``1..max_limit``, in the words real
    accounts use, instead of the documented ``0..MAX_LIMIT``.
    """
    raw_limit = query.get("limit")
    numeric = raw_limit is not None and _DIGITS.fullmatch(raw_limit.strip()) is not None
    if raw_limit is None:
        # A request without a limit is never refused, so the default fits under any cap.
        limit = DEFAULT_LIMIT if max_limit is None else min(DEFAULT_LIMIT, max_limit)
    elif max_limit is not None:
        if not (numeric and 1 <= int(raw_limit) <= max_limit):
            raise ApiError(400, f"limit must be between 1 and {max_limit}")
        limit = int(raw_limit)
    elif numeric and int(raw_limit) <= MAX_LIMIT:
        limit = int(raw_limit)
    else:
        raise ApiError(400, f"limit must be an integer between 0 and {MAX_LIMIT}, got {raw_limit!r}")

    order_by = query.get("orderBy") or None  # an empty parameter counts as absent
    if order_by is not None and order_by not in order_fields:
        raise ApiError(400, f"orderBy must be one of {', '.join(order_fields)}, got {order_by!r}")

    direction = query.get("orderByDirection") or default_direction
    if direction not in ("asc", "desc"):
        raise ApiError(400, f"orderByDirection must be asc or desc, got {direction!r}")

    starting_from = query.get("startingFrom") or None
    if starting_from is not None and order_by is None:
        # Documented rule (doc §4.2): a cursor is only meaningful with its sort.
        raise ApiError(400, "startingFrom requires orderBy")
    return PageParams(limit, order_by or "id", direction, starting_from)


# -- cursor decoding ------------------------------------------------------------------------


@dataclass(frozen=True)
class _ItemCursor:
    item_id: int | str
    sort_value: datetime | None
    has_sort_value: bool


@dataclass(frozen=True)
class _OffsetCursor:
    offset: int


@dataclass(frozen=True)
class _DateCursor:
    moment: datetime


_Cursor = _ItemCursor | _OffsetCursor | _DateCursor


def _bad_cursor(raw: str) -> ApiError:
    return ApiError(400, f"Invalid startingFrom cursor {raw!r}")


def _decode_cursor(raw: str, *, numeric_ids: bool, allow_dates: bool) -> _Cursor:
    text = raw.strip()
    if _DIGITS.fullmatch(text):
        return _ItemCursor(int(text), None, False) if numeric_ids else _OffsetCursor(int(text))
    if allow_dates:
        try:
            return _DateCursor(parse_iso(text))
        except ValueError:
            pass  # not a date; try the opaque token form
    if not _BASE64.fullmatch(text):
        raise _bad_cursor(raw)
    try:
        # Accept the standard alphabet too; clients sometimes re-encode tokens.
        normalised = text.rstrip("=").replace("+", "-").replace("/", "_")
        decoded = json.loads(base64.urlsafe_b64decode(normalised + "=" * (-len(normalised) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_cursor(raw) from None
    if not isinstance(decoded, dict) or "id" not in decoded:
        raise _bad_cursor(raw)
    item_id = decoded["id"]
    if numeric_ids:
        if isinstance(item_id, str) and _DIGITS.fullmatch(item_id):
            item_id = int(item_id)
        if isinstance(item_id, bool) or not isinstance(item_id, int):
            raise _bad_cursor(raw)
    elif not isinstance(item_id, str):
        raise _bad_cursor(raw)
    sort_value: datetime | None = None
    if decoded.get("value") is not None:
        try:
            sort_value = parse_iso(decoded["value"])
        except ValueError:
            raise _bad_cursor(raw) from None
    return _ItemCursor(item_id, sort_value, "value" in decoded)


def _encode_token(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


# -- the pager ------------------------------------------------------------------------------


def paginate(
    items: Sequence[Mapping[str, Any]],
    params: PageParams,
    faults: Faults,
    *,
    numeric_ids: bool,
    sort_value: SortValue | None = None,
    date_fields: Mapping[str, str] | None = None,
    v62: bool = False,
    presorted: bool = False,
) -> tuple[list[Mapping[str, Any]], dict[str, Any]]:
    """Return (items on the requested page, envelope fields other than ``data``).

    ``numeric_ids``: ids are ints or numeric strings and compare numerically.
    ``sort_value(item, field)``: value for a non-id ``orderBy`` (None sorts last).
    ``date_fields``: orderBy -> item field compared with a date-time cursor; None disables
    date-time cursors. ``v62``: omit ``next``/``total`` (the runs_v62_paging fault).
    ``presorted``: ``items`` are already in ascending id order (spares sorting a large collection
    on every page).
    """

    def id_key(item: Mapping[str, Any]) -> int | str:
        return int(item["id"]) if numeric_ids else str(item["id"])

    def key(item: Mapping[str, Any]) -> tuple[Any, ...]:
        if params.order_by == "id":
            return (id_key(item),)
        assert sort_value is not None, "non-id orderBy needs sort_value"
        return _value_key(sort_value(item, params.order_by), id_key(item))

    descending = params.direction == "desc"
    if presorted and params.order_by == "id":
        ascending = items if isinstance(items, list) else list(items)
    else:
        ascending = sorted(items, key=key)
    # Keys are unique (ids break ties), so descending order is exactly the ascending one reversed.
    ordered = ascending[::-1] if descending else ascending
    inclusive = faults.inclusive_cursor

    remaining, start = ordered, 0  # the page starts at remaining[start]
    if params.starting_from is not None:
        cursor = _decode_cursor(
            params.starting_from, numeric_ids=numeric_ids, allow_dates=date_fields is not None
        )
        if isinstance(cursor, _OffsetCursor):
            start = max(cursor.offset - 1, 0) if inclusive else cursor.offset
        elif isinstance(cursor, _DateCursor):
            assert date_fields is not None and sort_value is not None
            field = date_fields[params.order_by]
            bound: tuple[Any, ...] = _value_key(cursor.moment, None)

            def position(item: Mapping[str, Any]) -> tuple[Any, ...]:
                return _value_key(sort_value(item, field), None)

            # The date field need not follow the sort order: filter, keeping the order.
            remaining = [item for item in ordered if _after(position(item), bound, descending, inclusive)]
        else:
            bound = _item_cursor_bound(cursor, ordered, key, params, id_key)
            # The items after the cursor are a contiguous tail of the sorted list: bisect for it
            # (O(log n) key calls) instead of testing every item; large collections page fast.
            if descending:
                below = (
                    bisect_right(ascending, bound, key=key)
                    if inclusive
                    else bisect_left(ascending, bound, key=key)
                )
                start = len(ascending) - below
            else:
                start = (
                    bisect_left(ascending, bound, key=key)
                    if inclusive
                    else bisect_right(ascending, bound, key=key)
                )

    page = list(remaining[start : start + params.limit])
    more = 0 < len(page) < len(remaining) - start

    meta: dict[str, Any] = {}
    if not v62 and not faults.total_absent:
        meta["total"] = None if faults.total_null else len(ordered)
    meta["limit"] = params.limit
    if not v62:
        if more:
            meta["next"] = _next_cursor(page[-1], ordered, params, faults, numeric_ids, sort_value)
        elif faults.end_style == "null":
            meta["next"] = None
        elif faults.end_style == "empty":
            meta["next"] = ""
    meta["orderBy"] = params.order_by
    meta["orderByDirection"] = params.direction
    if params.starting_from is not None:
        meta["startingFrom"] = params.starting_from
    return page, meta


def _value_key(value: datetime | None, item_id: int | str | None) -> tuple[Any, ...]:
    base = (0, value) if value is not None else (_MISSING_RANK, _MIN_TIME)
    return base if item_id is None else (*base, item_id)


def _after(position: tuple[Any, ...], bound: tuple[Any, ...], descending: bool, inclusive: bool) -> bool:
    if descending:
        return position <= bound if inclusive else position < bound
    return position >= bound if inclusive else position > bound


def _item_cursor_bound(
    cursor: _ItemCursor,
    ordered: Sequence[Mapping[str, Any]],
    key: Callable[[Mapping[str, Any]], tuple[Any, ...]],
    params: PageParams,
    id_key: Callable[[Mapping[str, Any]], int | str],
) -> tuple[Any, ...]:
    if params.order_by == "id":
        # Whether or not the named item still exists (it may have been deleted between pages),
        # its sort key is its id.
        return (cursor.item_id,)
    for item in ordered:
        if id_key(item) == cursor.item_id:
            return key(item)
    # The named item is gone (deleted between pages): resume from the sort value the token carried.
    if cursor.has_sort_value:
        return _value_key(cursor.sort_value, cursor.item_id)
    raise ApiError(400, f"startingFrom names an unknown item {cursor.item_id!r}")


def _next_cursor(
    last: Mapping[str, Any],
    ordered: Sequence[Mapping[str, Any]],
    params: PageParams,
    faults: Faults,
    numeric_ids: bool,
    sort_value: SortValue | None,
) -> str | int:
    if faults.next_style == "number":
        if numeric_ids:
            return int(last["id"])
        # Non-numeric ids cannot be a number, so the number is an offset into the sort order.
        return next(i for i, item in enumerate(ordered) if item is last) + 1
    payload: dict[str, Any] = {"id": last["id"]}
    if params.order_by != "id" and sort_value is not None:
        value = sort_value(last, params.order_by)
        payload["value"] = to_iso(value) if value is not None else None
    return _encode_token(payload)
