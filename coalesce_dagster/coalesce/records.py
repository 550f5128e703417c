"""Shape Coalesce API objects into the rows we load.

dlt would load the raw objects as they are, but three things need a hand:
* identifiers: run ids arrive as ints or strings (docs/coalesce-api.md §3.3), so they are coerced to
  int, and rows of child endpoints get explicit `run_id` / `environment_id` key columns;
* fields whose *keys* are data (`currentMappings`, `runTimeParameters`, lineage `aliases`) would
  become one column per key; they are stored as JSON instead (see the column hints below);
* a run's `environmentID` sits at the top level in summaries but inside `runDetails` in details.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .errors import UnexpectedResponseError

TERMINAL_RUN_STATUSES = frozenset({"completed", "failed", "canceled"})
# /scheduler/runStatus also reports these early phases (docs §5); all are "not finished yet".
IN_FLIGHT_RUN_STATUSES = frozenset({"waitingToRun", "initializing", "rendering", "running"})
# A node that failed reports runState `error` on some accounts and `failed` on others. The raw value
# is stored as reported; everything that counts or reports failures treats both as a failure.
FAILED_NODE_STATES = frozenset({"error", "failed"})


def is_failed_node_state(run_state: Any) -> bool:
    return str(run_state or "").strip().lower() in FAILED_NODE_STATES

# Secret-bearing keys Coalesce accepts in startRun bodies. Run objects should never echo them, but
# if one ever does, it must not reach the destination.
_CREDENTIAL_KEYS = frozenset({"snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass"})

# Column hints. Functions, not constants: dlt writes into the hint dicts it is given, so every
# resource must get its own copies.


def _columns(**types: str) -> dict[str, Any]:
    """`{name: column}` hints; key columns (type ending in `!`) are NOT NULL."""
    return {
        name: {"name": name, "data_type": data_type.rstrip("!"), "nullable": not data_type.endswith("!")}
        for name, data_type in types.items()
    }


def environment_columns() -> dict[str, Any]:
    return _columns(id="text!", current_mappings="json", run_time_parameters="json", currently_running_jobs="json")


def node_columns() -> dict[str, Any]:
    return _columns(environment_id="text!", id="text!", source_mapping="json", metadata="json", config="json",
                    storage_locations="json")


def node_column_columns() -> dict[str, Any]:
    return _columns(sources="json", config="json", hash_details="json", applied_column_tests="json")


def run_columns() -> dict[str, Any]:
    return _columns(id="bigint!", run_time_parameters="json", run_history="json")


def run_result_columns() -> dict[str, Any]:
    return _columns(run_id="bigint!", node_id="text!", render_query_result="json")


def run_status_columns() -> dict[str, Any]:
    # Typed up front: a first load whose statuses or links are all still unknown (NULL) must
    # create the columns all the same.
    return _columns(run_id="bigint!", run_status="text", run_type="text", run_link="text")


def id_columns() -> dict[str, Any]:
    return _columns(id="text!")


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


def normalize_run(raw: Mapping[str, Any]) -> dict[str, Any]:
    _require(raw, ("id",), "a run")
    run = {k: v for k, v in raw.items() if k != "userCredentials"}
    run["id"] = run_id_of(raw["id"])
    details = raw.get("runDetails") if isinstance(raw.get("runDetails"), Mapping) else {}
    env_id = raw.get("environmentID", details.get("environmentID"))
    run["environmentID"] = None if env_id is None else str(env_id)
    credentials = raw.get("userCredentials")
    if isinstance(credentials, Mapping):
        run["userCredentials"] = {k: v for k, v in credentials.items() if k not in _CREDENTIAL_KEYS}
    # No `runLink` is made up here: the real UI's run URL carries a UUID, not the run id, so only
    # the link /scheduler/runStatus returns (table `run_status`) is stored.
    return run


def normalize_environment(raw: Mapping[str, Any]) -> dict[str, Any]:
    """An environment's detail. Coalesce's spec declares no `id` in it: the id is the one asked for
    (rest_api passes it from the parent list as `_environments_id`)."""
    if not isinstance(raw, Mapping):
        _require(raw, ("id",), "an environment")
    record = {k: v for k, v in raw.items() if k != "_environments_id"}
    record["id"] = str(raw.get("id") or raw.get("_environments_id") or "")
    return normalize_by_id(record, "an environment")


def normalize_node(raw: Mapping[str, Any]) -> dict[str, Any]:
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


def normalize_run_result(raw: Mapping[str, Any]) -> dict[str, Any]:
    return _of_run(raw, "nodeID", "a run result")


def normalize_run_status(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The scheduler's view of a run. Its `runStatus` is optional in Coalesce's spec: without it the
    row says NULL, and the run stays followed (the `runs` resource revisits unfinished runs)."""
    record = _of_run(raw, None, "a run status")
    record.setdefault("runStatus", None)
    return record


def _of_run(raw: Mapping[str, Any], required: Optional[str], what: str) -> dict[str, Any]:
    """A row of a per-run endpoint, keyed by `run_id` (rest_api passes the parent's id as `_runs_id`).

    Called for every run result (a million in a large organisation), hence the plain dict work."""
    if type(raw) is not dict or (required is not None and raw.get(required) in (None, "")):
        _require(raw, (required,) if required else (), what)
    record = dict(raw)
    record["run_id"] = run_id_of(record.pop("_runs_id"))
    return record


def normalize_by_id(raw: Mapping[str, Any], what: str = "an item") -> dict[str, Any]:
    _require(raw, ("id",), what)
    record = dict(raw)
    record["id"] = str(raw["id"])
    return record


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
