"""Shape Coalesce API objects into the rows we load.

dlt would load the raw objects as they are, but some need a hand:
* identifiers: run ids arrive as ints or strings (docs/coalesce-api.md §3.3), so they are coerced to
  int; job ids too (small ints in responses, strings in real clients' requests, §3.6, §10.8), so
  they are coerced to text; rows of child endpoints get explicit `run_id` / `environment_id` key
  columns;
* a run's `environmentID` sits at the top level in summaries but inside `runDetails` in details;
* a node's columns and lineage move out of `metadata`, to their own child table and column;
* an item without its key stops the load (`UnexpectedResponseError`) rather than load a row that
  could never be merged or replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import UnexpectedResponseError

# Secret-bearing keys Coalesce accepts in startRun bodies. Run objects should never echo them, but
# if one ever does, it must not reach the destination.
_CREDENTIAL_KEYS = frozenset({"snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass"})


def _require(record: Any, fields: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise UnexpectedResponseError(what, f"expected an object, got {type(record).__name__}")
    missing = [field for field in fields if record.get(field) in (None, "")]
    if missing:
        raise UnexpectedResponseError(what, f"an item has no {', '.join(missing)}")
    return record


def run_id_of(value: Any) -> int:
    """A run id as int, whether Coalesce sent 17 or "17"."""
    if type(value) is int:  # the common case, first: this runs once per result row
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a Coalesce run id: {value!r}")
    return int(str(value).strip())


def run_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A run, from a list page or by id: its id an int, its environment at the top level, and no
    credential values even if Coalesce ever echoed them."""
    _require(raw, ("id",), "a run")
    run = {k: v for k, v in raw.items() if k != "userCredentials"}
    run["id"] = run_id_of(raw["id"])
    given_details = raw.get("runDetails")
    details: Mapping[str, Any] = given_details if isinstance(given_details, Mapping) else {}
    # Explicit nulls count as absent: a detail run may carry `"environmentID": null` at the top.
    env_id = raw.get("environmentID")
    if env_id in (None, ""):
        env_id = details.get("environmentID")
    run["environmentID"] = None if env_id is None else str(env_id)
    credentials = raw.get("userCredentials")
    if isinstance(credentials, Mapping):
        run["userCredentials"] = {k: v for k, v in credentials.items() if k not in _CREDENTIAL_KEYS}
    # No `runLink` is made up here: the real UI's run URL carries a UUID, not the run id, so only
    # the link /scheduler/runStatus returns (table `run_status`) is stored.
    return run


def environment_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An environment's detail. Coalesce's spec declares no `id` in it: the id is the one asked for
    (rest_api passes it from the parent list as `_environments_id`)."""
    if not isinstance(raw, Mapping):
        _require(raw, ("id",), "an environment")
    record = {k: v for k, v in raw.items() if k != "_environments_id"}
    record["id"] = str(raw.get("id") or raw.get("_environments_id") or "")
    return row_by_id(record, "an environment")


def node_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """One node; its column list becomes the child table `environment_nodes__columns`."""
    _require(raw, ("id",), "a node")
    node = {k: v for k, v in raw.items() if not k.startswith("_environments_")}
    node["environment_id"] = str(raw.get("_environments_id", raw.get("environmentID", "")))
    node["id"] = str(raw["id"])
    metadata = dict(raw.get("metadata") or {})
    if "columns" in metadata:
        node["columns"] = metadata.pop("columns")
    if "sourceMapping" in metadata:
        node["sourceMapping"] = metadata.pop("sourceMapping")
    if metadata:
        node["metadata"] = metadata
    else:
        node.pop("metadata", None)
    return node


def job_row(raw: Mapping[str, Any], environment_id: str) -> dict[str, Any]:
    """A saved job of one environment: its id as text (`3` and `"3"` are the same job), keyed by
    the environment whose list named it."""
    record = row_by_id(raw, "a job")
    record.pop("environmentID", None)  # would land in the same column as the key below
    record["environment_id"] = environment_id
    return record


def run_result_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    return _of_run(raw, "nodeID", "a run result")


def run_status_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler's view of a run. Its `runStatus` is optional in Coalesce's spec: without it the
    row says NULL, and the run stays followed (the `runs` resource revisits unfinished runs)."""
    record = _of_run(raw, None, "a run status")
    record.setdefault("runStatus", None)
    return record


def _of_run(raw: Mapping[str, Any], required: str | None, what: str) -> dict[str, Any]:
    """A row of a per-run endpoint, keyed by `run_id` (rest_api passes the parent's id as `_runs_id`).

    Called for every run result (a million in a large organisation), hence the plain dict work."""
    if type(raw) is not dict or (required is not None and raw.get(required) in (None, "")):
        _require(raw, (required,) if required else (), what)
    record = dict(raw)
    record["run_id"] = run_id_of(record.pop("_runs_id"))
    return record


def row_by_id(raw: Mapping[str, Any], what: str = "an item") -> dict[str, Any]:
    _require(raw, ("id",), what)
    record = dict(raw)
    record["id"] = str(raw["id"])
    return record


def rows_by_id_of(what: str) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """`row_by_id` for the items of one list, whose errors name it ("a user of /api/v1/users"). A
    function of the item alone, for `map` and for dlt's map steps (which pass a second argument to a
    function that takes two)."""

    def row(raw: Mapping[str, Any]) -> dict[str, Any]:
        return row_by_id(raw, what)

    return row
