"""The fields the project knows per endpoint (docs/coalesce-api.md), to say which ones are new.

A field outside these sets is not an error: the load stores it as a new column (dlt schema
evolution). The check names it, by field and endpoint, so a report can show what a real account
sends that the notes do not describe. Required fields are checked by the load's own row functions
(`coalesce/rows.py`), not here.
"""

from __future__ import annotations

# Keys of a paged list's envelope (doc §4): the items under `data`, the rest paging.
ENVELOPE_FIELDS = frozenset({"data", "next", "total", "limit", "orderBy", "orderByDirection", "startingFrom"})

_ENVIRONMENT_SUMMARY = {"createdAt", "createdBy", "id", "name", "project", "status"}  # doc §3.1
_NODE_SUMMARY = {"id", "name", "nodeType", "database", "schema", "locationName"}  # doc §3.2

ITEM_FIELDS: dict[str, frozenset[str]] = {
    "environments": frozenset(_ENVIRONMENT_SUMMARY),
    "environment": frozenset(
        _ENVIRONMENT_SUMMARY
        | {
            "description",
            "connectionAccount",
            "defaultStorageMapping",
            "oauthEnabled",
            "tagColors",
            "updatedAt",
            "currentGitBranch",
            "currentGitCommit",
            "currentGitURL",
            "deployedCommit",
            "currentlyRunningJobs",
            "runTimeParameters",
            "currentMappings",
        }
    ),
    "nodes": frozenset(
        _NODE_SUMMARY | {"description", "materializationOption", "isMultisource", "overrideSQL"}
    ),
    "nodes_detail": frozenset(
        _NODE_SUMMARY
        | {
            "description",
            "materializationOption",
            "isMultisource",
            "overrideSQL",
            "metadata",
            "config",
            "storageLocations",
        }
    ),
    # doc §10.9 (INFERRED), and the jobs projects carry (§3.0)
    "jobs": frozenset({"id", "name", "includeSelector", "excludeSelector", "projectID", "environmentID"}),
    "runs": frozenset(  # doc §3.3: RunSummary and RunInfo
        {
            "id",
            "version",
            "reRunID",
            "runStartTime",
            "runEndTime",
            "runHistory",
            "userID",
            "runDetails",
            "runStatus",
            "runTimeParameters",
            "runType",
            "runFailureReason",
            "environmentID",
            "userCredentials",
        }
    ),
    "run_results": frozenset(  # doc §3.4
        {"nodeID", "name", "isRunning", "runState", "queryResults", "renderQueryResult", "origin"}
    ),
    "run_status": frozenset({"runStatus", "runType", "runLink"}),  # doc §3.5
    "projects": frozenset({"id", "name", "description", "createdAt", "environments", "workspaces", "jobs"}),
    "users": frozenset(
        {"id", "firstName", "lastName", "email", "organizationRole", "isActive", "createdAt", "updatedAt"}
    ),
}

# Run objects should never echo these (doc §3.3); the load drops them if one does (`rows.run_row`).
ECHOED_SECRET_FIELDS = frozenset({"snowflakePassword", "snowflakeKeyPairKey", "snowflakeKeyPairPass"})
