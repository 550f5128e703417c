"""The shape report (`coalesce-dagster check --report FILE`): what the check saw, without a value.

Per endpoint (a path template, never an id): each answer's status, the page size asked for, its
seconds, and the merged shape of the bodies (`shapes.py`: field names and JSON types); per check,
its verdict and the variants it named. Hosts, ids, names, SQL, emails and tokens never enter it:
a user can attach it to a public issue.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .checks import CheckResult
from .shapes import merge_shapes, shape_of, string_values

REPORT_FORMAT = 1
# The only keys whose numbers the report carries: statuses, page sizes, timings and settings,
# which describe the requests, not the account's data (the no-value test skips exactly these).
NUMERIC_KEYS = frozenset(
    {"format", "status", "limit", "seconds", "page_sizes_accepted", "page_sizes_refused", "settings"}
)


def build_report(result: CheckResult) -> dict[str, Any]:
    exchanges = result.recorder.exchanges
    data_strings = string_values(e.body for e in exchanges)
    endpoints: dict[str, dict[str, Any]] = {}
    for exchange in exchanges:
        entry = endpoints.setdefault(
            exchange.endpoint, {"answers": [], "page_sizes_accepted": [], "page_sizes_refused": []}
        )
        entry["answers"].append(
            {
                "status": exchange.status,
                "limit": exchange.limit,
                "seconds": round(exchange.seconds, 3),
                "json": exchange.is_json,
            }
        )
        if exchange.limit is not None:
            accepted = exchange.status == 200
            sizes = entry["page_sizes_accepted" if accepted else "page_sizes_refused"]
            if exchange.status in (200, 400) and exchange.limit not in sizes:
                sizes.append(exchange.limit)
        if exchange.is_json:
            key = "body" if exchange.status < 400 else "error_body"
            shape = shape_of(exchange.body, data_strings)
            entry[key] = merge_shapes([entry[key], shape]) if key in entry else shape
    return {
        "report": "coalesce-dagster check",
        "format": REPORT_FORMAT,
        "coalesce_dagster_version": __version__,
        "region": result.region,
        "settings": result.settings,
        "checks": [
            {"check": line.check, "verdict": line.verdict, "variants": line.variants} for line in result.lines
        ],
        "endpoints": endpoints,
    }
