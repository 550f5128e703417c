"""dlt column hints for the tables Coalesce objects land in.

Fields whose *keys* are data (`currentMappings`, `runTimeParameters`, lineage `aliases`) would become
one column per key; they are stored as JSON instead. Key columns are NOT NULL. Functions, not
constants: dlt writes into the hint dicts it is given, so every resource must get its own copies.
"""

from __future__ import annotations

from typing import Any


def _columns(**types: str) -> dict[str, Any]:
    """`{name: column}` hints; key columns (type ending in `!`) are NOT NULL."""
    return {
        name: {"name": name, "data_type": data_type.rstrip("!"), "nullable": not data_type.endswith("!")}
        for name, data_type in types.items()
    }


def environment_columns() -> dict[str, Any]:
    return _columns(
        id="text!", current_mappings="json", run_time_parameters="json", currently_running_jobs="json"
    )


def node_columns() -> dict[str, Any]:
    return _columns(environment_id="text!", id="text!", source_mapping="json", metadata="json", config="json",
                    storage_locations="json")  # fmt: skip


def node_column_columns() -> dict[str, Any]:
    # The root key declared, not left to dlt: the node tables are merged on most syncs and replaced on
    # a full re-read, and a row loaded by a replace must still be found by the next merge's delete.
    root_key = {"name": "_dlt_root_id", "data_type": "text", "nullable": False, "root_key": True}
    return {**_columns(sources="json", config="json", hash_details="json", applied_column_tests="json"),
            "_dlt_root_id": root_key}  # fmt: skip


# A row that stands for "this environment has no nodes now": it makes a merge delete the
# environment's old rows (its `environment_id` is the merge key), and is itself never stored.
NO_NODES_COLUMN = "_environment_has_no_nodes"


def no_nodes_column(*, merging: bool) -> dict[str, Any]:
    # dlt honours (and warns about) `hard_delete` only in a merge.
    return {"name": NO_NODES_COLUMN, "data_type": "bool", "nullable": True, "hard_delete": merging}


def job_columns() -> dict[str, Any]:
    # Selectors typed up front: a job without one (or a first load where none has any) still
    # gets its text column.
    return _columns(environment_id="text!", id="text!", name="text", include_selector="text",
                    exclude_selector="text")  # fmt: skip


def run_columns() -> dict[str, Any]:
    # What the health checks and views read typed up front (the job id is an int or a string,
    # §10.8): they read these columns even when no loaded run has a value in them yet (optional
    # fields, or sent as null).
    return _columns(id="bigint!", run_time_parameters="json", run_history="json", environment_id="text",
                    run_status="text", run_start_time="timestamp", run_end_time="timestamp",
                    run_details__job_id="text")  # fmt: skip


def run_result_columns() -> dict[str, Any]:
    return _columns(run_id="bigint!", node_id="text!", render_query_result="json")


def run_status_columns() -> dict[str, Any]:
    # Typed up front: a first load whose statuses or links are all still unknown (NULL) must
    # create the columns all the same.
    return _columns(run_id="bigint!", run_status="text", run_type="text", run_link="text")


def id_columns() -> dict[str, Any]:
    return _columns(id="text!")
