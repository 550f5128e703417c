"""What each column of the metadata tables means, in Coalesce's terms: the data dictionary the asset
pages show in their Columns section (`dagster/column_schema`).

dlt flattens nested objects into `parent__child` columns and lists into child tables
(`run_results__query_results`); both are listed here as they land. A column Coalesce adds later
(dlt schema evolution) has no entry until one is written; `undescribed_columns` finds them.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

# dlt's bookkeeping columns, on every table.
DLT_COLUMNS: dict[str, str] = {
    "_dlt_load_id": "dlt: the load that last wrote this row (a row of `_dlt_loads`).",
    "_dlt_id": "dlt: this row's unique id.",
    "_dlt_parent_id": "dlt: `_dlt_id` of the parent row this child row belongs to.",
    "_dlt_root_id": "dlt: `_dlt_id` of the top-level row this nested row belongs to.",
    "_dlt_list_idx": "dlt: position of this item in the parent's list.",
}

_CREATED_BY = {
    "created_by__id": "Coalesce user id of who created it.",
    "created_by__first_name": "First name of who created it.",
    "created_by__last_name": "Last name of who created it.",
}

_JOB = {
    "id": "Saved job id (text: Coalesce sends it as a number or as text).",
    "name": "Saved job name, as shown in Coalesce's Jobs list.",
    "include_selector": "Node selector of the nodes the job runs (Coalesce selector syntax).",
    "exclude_selector": "Node selector of the nodes the job leaves out.",
    "project_id": "Project the job belongs to (an environment's jobs are its project's).",
}

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "environments": {
        "id": "Environment id (`environmentID` in runs and run results).",
        "name": "Environment name, as shown in Coalesce's Deploy tab.",
        "project": "Project id the environment belongs to.",
        "status": "Environment status as Coalesce reports it.",
        "created_at": "When the environment was created.",
        **_CREATED_BY,
    },
    "environment": {
        "id": "Environment id.",
        "name": "Environment name.",
        "description": "Environment description.",
        "project": "Project id the environment belongs to.",
        "status": "Environment status as Coalesce reports it.",
        "current_mappings": "Storage location to database/schema mappings in force (JSON).",
        "run_time_parameters": "Parameters every run of this environment gets (JSON).",
        "currently_running_jobs": "Jobs running in the environment when it was read (JSON).",
        "connection_account": "Warehouse account the environment connects to.",
        "default_storage_mapping": "Storage location used when a node names none.",
        "oauth_enabled": "Whether runs authenticate to the warehouse with OAuth.",
        "created_at": "When the environment was created.",
        "updated_at": "When the environment was last changed.",
        "current_git_branch": "Git branch last deployed to the environment.",
        "current_git_commit": "Git commit last deployed to the environment.",
        "current_git_url": "Git repository the environment deploys from.",
        "deployed_commit": "Commit currently deployed.",
        "tag_colors__background_color": "Background colour of the environment's tag in the UI.",
        "tag_colors__text_color": "Text colour of the environment's tag in the UI.",
        **_CREATED_BY,
    },
    "environment_nodes": {
        "environment_id": "Environment the node is deployed to.",
        "id": "Node id, unique within the environment (`nodeID` in run results).",
        "name": "Node name: the warehouse table or view it builds.",
        "node_type": "Node type (Stage, Dimension, Fact, View, Source, or a user-defined type).",
        "database": "Warehouse database the node's table lives in.",
        "schema": "Warehouse schema the node's table lives in.",
        "location_name": "Coalesce storage location of the node.",
        "description": "The node's description, as written in Coalesce.",
        "materialization_option": "How the node is materialized (table, view, ...).",
        "is_multisource": "Whether the node unions several sources.",
        "override_sql": "Whether the node's SQL is written by hand instead of generated.",
        "source_mapping": "Lineage: the nodes this node reads, with aliases and joins (JSON).",
        "metadata": "The node's metadata as Coalesce sends it (JSON).",
        "config": "The node type's configuration values (JSON).",
        "storage_locations": "Storage locations the node references (JSON).",
        "_environment_has_no_nodes": "Always NULL here: it marks the row a sync sends when a re-read "
        "environment has no nodes left, so its old rows are deleted; that row is never stored.",
    },
    "environment_nodes__columns": {
        "column_id": "Column id within the node.",
        "name": "Column name.",
        "data_type": "Warehouse data type of the column.",
        "description": "The column's description, as written in Coalesce.",
        "nullable": "Whether the column may be NULL.",
        "default_value": "The column's default value.",
        "transform": "SQL transform applied to the source column.",
        "sources": "Source columns it is derived from (JSON).",
        "config": "Column-level configuration (JSON).",
        "hash_details": "Hash settings of the column (JSON).",
        "applied_column_tests": "Tests applied to the column (JSON).",
    },
    "jobs": {"environment_id": "Environment whose jobs list the job was read from.", **_JOB},
    "runs": {
        "id": "Run id (the run counter: `runCounter` of `/scheduler/runStatus`).",
        "environment_id": "Environment the run ran in.",
        "run_type": "`deploy` (a deployment) or `refresh` (a data refresh, often of a saved job).",
        "run_status": "`waitingToRun`, `running`, `completed`, `failed` or `canceled`.",
        "run_start_time": "When the run started.",
        "run_end_time": "When the run ended; NULL while it runs.",
        "run_failure_reason": "Why the run failed, as Coalesce says it.",
        "version": "Version of the run record.",
        "re_run_id": "The run this one re-runs, if any.",
        "user_id": "Coalesce user who started the run.",
        "run_time_parameters": "Parameters the run was started with (JSON).",
        "run_history": "Ids of earlier attempts of this run (JSON).",
        "run_details__environment_id": "Environment id as given in the run's details.",
        "run_details__job_id": "Saved job the refresh ran (a row of `jobs`); NULL for ad-hoc runs.",
        "run_details__parallelism": "Nodes the run built at once.",
        "run_details__deploy_commit": "Git commit a deploy run deployed.",
        "run_details__deploy_commit_message": "Message of the deployed commit.",
        "run_details__nodes_in_run": "Number of nodes in the run.",
        "run_details__canceled": "Whether the run was canceled.",
        "run_details__force_ignore_environment_status": "Whether the run ignored a failing environment.",
        "run_details__refresh_description": "Description of the refresh (e.g. its job's name).",
        "run_details__include_nodes_selector": "Node selector the refresh ran.",
        "run_details__exclude_nodes_selector": "Node selector the refresh left out.",
        "user_credentials__snowflake_account": "Snowflake account the run used (no secret is stored).",
        "user_credentials__snowflake_auth_type": "How the run authenticated to Snowflake.",
        "user_credentials__snowflake_username": "Snowflake user the run ran as.",
        "user_credentials__snowflake_role": "Snowflake role the run used.",
        "user_credentials__snowflake_warehouse": "Snowflake warehouse the run used.",
    },
    "run_results": {
        "run_id": "Run the result belongs to (a row of `runs`).",
        "node_id": "Node the result is for (a row of `environment_nodes`).",
        "name": "Node name at the time of the run.",
        "run_state": "The node's outcome: `complete`, `error` or `failed` (failed; accounts differ), "
        "`skipped`, or running.",
        "is_running": "Whether the node was still running when the result was read.",
        "render_query_result": "The rendered SQL of the node (JSON).",
    },
    "run_results__query_results": {
        "name": "What the query did (e.g. Create, Insert).",
        "sql": "The SQL Coalesce ran.",
        "status": "The query's status.",
        "success": "Whether the query succeeded.",
        "is_running": "Whether the query was still running when read.",
        "start_time": "When the query started.",
        "end_time": "When the query ended.",
        "query_id": "The warehouse's query id (e.g. Snowflake's).",
        "rows_inserted": "Rows the query inserted.",
        "rows_updated": "Rows the query updated.",
        "rows_deleted": "Rows the query deleted.",
        "warehouse": "Warehouse the query ran on.",
        "error__error_string": "The warehouse's error message, for a failed query.",
        "error__error_detail": "More detail on the error.",
    },
    "run_status": {
        "run_id": "Run id (a row of `runs`).",
        "run_status": "Status from Coalesce's scheduler; NULL when it leaves it out.",
        "run_type": "Run type from the scheduler.",
        "run_link": "Link to the run in Coalesce, as the scheduler gave it.",
    },
    "projects": {
        "id": "Project id.",
        "name": "Project name.",
        "description": "Project description.",
        "created_at": "When the project was created.",
    },
    "projects__environments": {"value": "Id of an environment of the project."},
    "projects__workspaces": {
        "id": "Workspace id (a development workspace of the project).",
        "name": "Workspace name.",
        "project_id": "Project the workspace belongs to.",
    },
    "projects__jobs": _JOB,
    "users": {
        "id": "Coalesce user id.",
        "first_name": "First name.",
        "last_name": "Last name.",
        "email": "Email address.",
        "organization_role": "The user's role in the Coalesce organisation.",
        "is_active": "Whether the user can log in.",
        "created_at": "When the user was created.",
    },
}


def column_description(table: str, column: str) -> str | None:
    return COLUMN_DESCRIPTIONS.get(table, {}).get(column) or DLT_COLUMNS.get(column)


def describe_columns(table: str, schema: dg.TableSchema) -> dg.TableSchema:
    """The schema with each column's description from the dictionary (kept if it had one)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=column.type,
                description=column.description or column_description(table, column.name),
                constraints=column.constraints,
                tags=column.tags,
            )
            for column in schema.columns
        ],
        constraints=schema.constraints,
    )


def undescribed_columns(tables: Mapping[str, list[str]]) -> list[str]:
    """`table.column` of every given column that has no description."""
    return [
        f"{table}.{column}"
        for table, columns in tables.items()
        for column in columns
        if column_description(table, column) is None
    ]
