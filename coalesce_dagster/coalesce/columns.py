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
    return _columns(sources="json", config="json", hash_details="json", applied_column_tests="json")


def job_columns() -> dict[str, Any]:
    # Selectors typed up front: a job without one (or a first load where none has any) still
    # gets its text column.
    return _columns(environment_id="text!", id="text!", name="text", include_selector="text",
                    exclude_selector="text")  # fmt: skip


def run_columns() -> dict[str, Any]:
    # The job id (an int or a string, §10.8) and the end time typed up front: the health checks and
    # views read them even when no loaded run has one yet.
    return _columns(id="bigint!", run_time_parameters="json", run_history="json",
                    run_details__job_id="text", run_end_time="timestamp")  # fmt: skip


def run_result_columns() -> dict[str, Any]:
    return _columns(run_id="bigint!", node_id="text!", render_query_result="json")


def run_status_columns() -> dict[str, Any]:
    # Typed up front: a first load whose statuses or links are all still unknown (NULL) must
    # create the columns all the same.
    return _columns(run_id="bigint!", run_status="text", run_type="text", run_link="text")


def id_columns() -> dict[str, Any]:
    return _columns(id="text!")
