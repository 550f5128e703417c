"""Pure builders for simulated Coalesce objects.

Every function takes the ``random.Random`` it may draw from, so the caller decides what is
reproducible: the state generator threads one seeded RNG through the initial build, and run
lifecycle code uses per-run RNGs so that results do not depend on unrelated calls.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .timeutil import to_iso

# -- small helpers --------------------------------------------------------------------------


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def new_hex(rng: random.Random, length: int) -> str:
    return f"{rng.getrandbits(length * 4):0{length}x}"


def snowflake_query_id(rng: random.Random) -> str:
    # Snowflake query ids look like 01b2c3d4-0000-4f21-0000-1a2b00033c4e.
    return f"{new_hex(rng, 8)}-0000-{new_hex(rng, 4)}-0000-{new_hex(rng, 12)}"


def entity_of(node_name: str) -> str:
    """``STG_CUSTOMER_2`` -> ``CUSTOMER``: the business entity a node is about."""
    entity = node_name.split("_", 1)[1] if "_" in node_name else node_name
    return re.sub(r"_[0-9]+$", "", entity)


def user_summary(user: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "firstName": user["firstName"], "lastName": user["lastName"]}


# -- users and projects ---------------------------------------------------------------------

_FIRST_NAMES = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Linus"]
_LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Thompson",
    "Perlman",
]
_ID_ALPHABET = string.ascii_letters + string.digits


def make_user(rng: random.Random, index: int, created_at: datetime) -> dict[str, Any]:
    first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    return {
        # Coalesce user ids are opaque (Firebase-style) strings, not numbers.
        "id": "".join(rng.choice(_ID_ALPHABET) for _ in range(28)),
        "firstName": first,
        "lastName": last,
        # The index keeps emails unique when names repeat.
        "email": f"{first}.{last}{index}@example.com".lower(),
        "organizationRole": "Admin" if index == 1 else "Member",
        "isActive": True,
        "createdAt": to_iso(created_at),
    }


_PROJECT_NAMES = ["Sales Analytics", "Marketing Mart", "Finance", "Supply Chain", "Customer 360"]


def make_project(index: int, created_at: datetime) -> dict[str, Any]:
    name = _PROJECT_NAMES[index - 1] if index <= len(_PROJECT_NAMES) else f"Project {index}"
    return {
        "id": str(index),
        "name": name,
        "description": f"{name} pipelines (simulated)",
        "createdAt": to_iso(created_at),
        "environments": [],
        # Served only with includeWorkspaces / includeJobs.
        "workspaces": [],
        "jobs": [],
    }


def make_workspace(workspace_id: int, project_id: str, label: str) -> dict[str, Any]:
    return {"id": str(workspace_id), "name": f"{label} Workspace", "projectID": project_id}


def job_definition(number: int) -> tuple[str, str, str]:
    """(name, includeSelector, excludeSelector) of a project's ``number``-th job (from 1)."""
    if number == 1:
        return "Full refresh", "", ""
    if number == 2:
        return "Marts only", "{ location: MART }", ""
    return f"Job {number}", "{ location: STAGE } OR { location: MART }", "{ name: V_* }"


def make_job(job_id: int, name: str, include: str, exclude: str, project_id: str) -> dict[str, Any]:
    # Job ids are small integers in responses (doc §8).
    return {
        "id": job_id,
        "name": name,
        "includeSelector": include,
        "excludeSelector": exclude,
        "projectID": project_id,
    }


# -- environments ---------------------------------------------------------------------------

_ENVIRONMENTS = [
    ("Development", "DEV"),
    ("QA", "QA"),
    ("Production", "PROD"),
    ("UAT", "UAT"),
    ("Sandbox", "SBX"),
]
_TAG_COLORS = ["#1E88E5", "#43A047", "#E53935", "#8E24AA", "#FB8C00"]


def make_environment(
    rng: random.Random,
    index: int,
    project: Mapping[str, Any],
    creator: Mapping[str, Any] | None,
    created_at: datetime,
) -> dict[str, Any]:
    if index <= len(_ENVIRONMENTS):
        name, code = _ENVIRONMENTS[index - 1]
    else:
        name, code = f"Environment {index}", f"ENV{index}"
    commit = new_hex(rng, 40)
    env: dict[str, Any] = {
        "id": str(index),
        "name": name,
        "description": f"{name} environment of {project['name']} (simulated)",
        "project": project["id"],
        "connectionAccount": f"sim-{code.lower()}.us-east-1",
        "defaultStorageMapping": "STAGE",
        "oauthEnabled": code == "PROD",
        "tagColors": {"backgroundColor": _TAG_COLORS[(index - 1) % len(_TAG_COLORS)], "textColor": "#FFFFFF"},
        "createdAt": to_iso(created_at),
        "updatedAt": to_iso(created_at + timedelta(days=rng.randint(1, 20))),
        "currentGitBranch": "main",
        "currentGitCommit": commit,
        "currentGitURL": f"https://github.com/example-org/coalesce-project-{project['id']}.git",
        "currentlyRunningJobs": [],  # kept in sync with runs by the state
        "deployedCommit": commit,
        "status": "Waiting",  # kept in sync with runs by the state
        "runTimeParameters": {"TARGET_ENV": code},
        "currentMappings": {
            "RAW": {"database": "RAW", "schema": "TPCH"},
            "STAGE": {"database": f"{code}_EDW", "schema": "STAGE"},
            "MART": {"database": f"{code}_EDW", "schema": "MART"},
        },
    }
    if creator is not None:
        env["createdBy"] = user_summary(creator)
    return env


# -- nodes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    prefix: str
    node_type: str
    location: str
    materialization: str
    description: str


SOURCE = Layer("SRC", "Source", "RAW", "table", "Raw source table")
_DERIVED_LAYERS = [
    Layer("STG", "Stage", "STAGE", "table", "Cleansed staging table"),
    Layer("PSTG", "persistentStage", "STAGE", "table", "Persistent history table"),
    Layer("DIM", "Dimension", "MART", "table", "Dimension"),
    Layer("FCT", "Fact", "MART", "table", "Fact table"),
    Layer("V", "View", "MART", "view", "Reporting view"),
]
_DERIVED_WEIGHTS = [4, 1, 3, 3, 2]

_ENTITIES = [
    "CUSTOMER", "ORDERS", "PRODUCT", "SUPPLIER", "REGION", "NATION", "LINEITEM", "PAYMENT",
    "SHIPMENT", "STORE", "EMPLOYEE", "INVENTORY", "CAMPAIGN", "INVOICE", "ACCOUNT",
]  # fmt: skip
_COLUMN_POOL = [
    ("NAME", "VARCHAR"), ("CREATED_AT", "TIMESTAMP_NTZ"), ("UPDATED_AT", "TIMESTAMP_NTZ"),
    ("AMOUNT", "NUMBER(38,2)"), ("QUANTITY", "NUMBER(38,0)"), ("STATUS", "VARCHAR"),
    ("IS_ACTIVE", "BOOLEAN"), ("REGION_CODE", "VARCHAR"), ("EMAIL", "VARCHAR"), ("PRICE", "NUMBER(38,2)"),
]  # fmt: skip


def _column(rng: random.Random, name: str, data_type: str, nullable: bool) -> dict[str, Any]:
    return {
        "columnID": new_uuid(rng),
        "name": name,
        "dataType": data_type,
        "description": name.replace("_", " ").capitalize(),
        "nullable": nullable,
        "defaultValue": "",
        "transform": "",
        "sources": [],
    }


def _unique_name(base: str, taken: set[str]) -> str:
    name, suffix = base, 2
    while name in taken:
        name, suffix = f"{base}_{suffix}", suffix + 1
    return name


class LineageIndex:
    """What :func:`_pick_upstreams` needs to know about an environment's nodes so far.

    Kept up to date node by node (:meth:`add`), so building an environment of N nodes costs
    O(N) rather than rescanning every earlier node for each new one (O(N^2)).
    """

    def __init__(self, nodes: Sequence[Mapping[str, Any]] = ()) -> None:
        self.sources: list[Mapping[str, Any]] = []
        self.derived: list[Mapping[str, Any]] = []
        self._position: dict[int, int] = {}  # id(node) -> execution order
        for node in nodes:
            self.add(node)

    def __len__(self) -> int:
        return len(self._position)

    def add(self, node: Mapping[str, Any]) -> None:
        self._position[id(node)] = len(self._position)
        (self.sources if node["nodeType"] == "Source" else self.derived).append(node)

    def position(self, node: Mapping[str, Any]) -> int:
        return self._position[id(node)]


def _pick_upstreams(rng: random.Random, layer: Layer, index: LineageIndex) -> list[Mapping[str, Any]]:
    if not len(index):
        return []
    sources, derived = index.sources, index.derived
    # Staging reads sources; marts read staging or other marts when there are any.
    if layer.location == "STAGE":
        pool = sources or derived
    else:
        pool = derived or sources
    count = 2 if len(pool) > 1 and rng.random() < (0.6 if layer.node_type == "Fact" else 0.25) else 1
    chosen = rng.sample(pool, count)
    return sorted(chosen, key=index.position)  # keep execution order stable


def make_node(
    rng: random.Random,
    environment: Mapping[str, Any],
    existing: Sequence[Mapping[str, Any]],
    taken_names: set[str],
    *,
    as_source: bool,
    lineage: LineageIndex | None = None,
) -> dict[str, Any]:
    """Build one full node; ``existing`` are the env's nodes so far (lineage only points back).

    ``lineage``: a :class:`LineageIndex` of ``existing`` kept by a caller that builds many nodes
    in a row (the caller adds the new node to it); built from ``existing`` when omitted.
    """
    layer = SOURCE if as_source or not existing else rng.choices(_DERIVED_LAYERS, _DERIVED_WEIGHTS)[0]
    if layer is SOURCE:
        upstreams: list[Mapping[str, Any]] = []
    else:
        upstreams = _pick_upstreams(rng, layer, lineage if lineage is not None else LineageIndex(existing))
    entity = entity_of(upstreams[0]["name"]) if upstreams else rng.choice(_ENTITIES)
    name = _unique_name(f"{layer.prefix}_{entity}", taken_names)
    taken_names.add(name)
    mapping = environment["currentMappings"][layer.location]
    width = rng.randint(2, 6)

    if not upstreams:
        columns = [_column(rng, f"{entity}_ID", "NUMBER(38,0)", False)]
        columns += [_column(rng, col, dtype, True) for col, dtype in rng.sample(_COLUMN_POOL, width - 1)]
    else:
        columns = _derived_columns(rng, upstreams, width)

    node: dict[str, Any] = {
        "id": new_uuid(rng),
        "name": name,
        "nodeType": layer.node_type,
        "database": mapping["database"],
        "schema": mapping["schema"],
        "locationName": layer.location,
        "description": f"{layer.description} for {entity.lower().replace('_', ' ')}",
        "materializationOption": layer.materialization,
        "isMultisource": False,
        "overrideSQL": False,
        "config": {},
        "metadata": {
            "columns": columns,
            "sourceMapping": [_source_mapping(name, upstreams)],
            "appliedNodeTests": [],
            "enabledColumnTestIDs": [],
        },
    }
    if upstreams and rng.random() < 0.2:
        table = f'"{mapping["database"]}"."{mapping["schema"]}"."{name}"'
        node["metadata"]["appliedNodeTests"].append(
            {
                "id": new_uuid(rng),
                "name": "Row count greater than zero",
                "templateString": f"SELECT COUNT(*) = 0 AS FAILED FROM {table}",
                "continueOnFailure": False,
                "runOrder": "After",
                "enabled": True,
            }
        )
    return node


def _derived_columns(
    rng: random.Random, upstreams: Sequence[Mapping[str, Any]], width: int
) -> list[dict[str, Any]]:
    # Column-level lineage: each column copies one upstream column and says where it came from.
    candidates: list[tuple[Mapping[str, Any], Mapping[str, Any]]] = []
    seen: set[str] = set()
    for upstream in upstreams:
        for column in upstream["metadata"]["columns"]:
            if column["name"] not in seen:
                seen.add(column["name"])
                candidates.append((upstream, column))
    picked = [candidates[0]] + rng.sample(candidates[1:], min(width - 1, len(candidates) - 1))
    columns = []
    for upstream, source_column in picked:
        column = _column(rng, source_column["name"], source_column["dataType"], source_column["nullable"])
        transform = f'"{upstream["name"]}"."{source_column["name"]}"'
        column["transform"] = transform
        column["sources"] = [
            {
                "transform": transform,
                "columnReferences": [{"nodeID": upstream["id"], "columnID": source_column["columnID"]}],
            }
        ]
        columns.append(column)
    return columns


def join_condition(upstreams: Sequence[Mapping[str, Any]]) -> str:
    if not upstreams:
        return ""
    first = upstreams[0]
    text = f"FROM {{{{ ref('{first['locationName']}', '{first['name']}') }}}} \"{first['name']}\""
    key = first["metadata"]["columns"][0]["name"]
    for other in upstreams[1:]:
        text += (
            f"\nLEFT JOIN {{{{ ref('{other['locationName']}', '{other['name']}') }}}} \"{other['name']}\""
            f'\n  ON "{first["name"]}"."{key}" = "{other["name"]}"."{key}"'
        )
    return text


def _source_mapping(name: str, upstreams: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "aliases": {},
        "customSQL": {"customSQL": ""},
        "dependencies": [{"locationName": u["locationName"], "nodeName": u["name"]} for u in upstreams],
        "join": {"joinCondition": join_condition(upstreams)},
        "noLinkRefs": [],
    }


def run_node_snapshot(node: Mapping[str, Any]) -> dict[str, Any]:
    """What a run remembers about a node: enough to write results even if the node goes away."""
    keys = ("id", "name", "nodeType", "database", "schema", "locationName", "materializationOption")
    return {key: node[key] for key in keys}


# -- run results ----------------------------------------------------------------------------

NODE_STATES = ("complete", "error", "skipped", "running")


def _steps(node: Mapping[str, Any], run_type: str) -> list[tuple[str, str]]:
    """(stage name, SQL) pairs Coalesce would execute for ``node`` in a run of ``run_type``."""
    target = f'"{node["database"]}"."{node["schema"]}"."{node["name"]}"'
    is_view = node["materializationOption"] == "view"
    if run_type == "deploy":
        ddl = "CREATE OR REPLACE VIEW" if is_view else "CREATE OR REPLACE TABLE"
        return [("Create View" if is_view else "Create Table", f"{ddl} {target} AS SELECT ...")]
    if node["nodeType"] == "Source":
        return [("Validate Source", f"SELECT COUNT(*) FROM {target}")]
    if is_view:
        return [("Create View", f"CREATE OR REPLACE VIEW {target} AS SELECT ...")]
    if node["nodeType"] in ("Dimension", "persistentStage"):
        return [("Merge Data", f"MERGE INTO {target} USING (SELECT ...) AS SRC ON ...")]
    return [
        ("Truncate Data", f"TRUNCATE TABLE {target}"),
        ("Insert Data", f"INSERT INTO {target} SELECT ..."),
    ]


def _rows(rng: random.Random, stage: str) -> dict[str, int]:
    inserted = updated = 0
    if stage == "Insert Data":
        inserted = rng.randint(1, 100_000)
    elif stage == "Merge Data":
        inserted, updated = rng.randint(0, 5_000), rng.randint(0, 2_000)
    return {"rowsInserted": inserted, "rowsUpdated": updated, "rowsDeleted": 0}


def error_text(node: Mapping[str, Any]) -> str:
    return f"SQL compilation error: error line 1 at position 7 invalid identifier '{node['name']}.UNKNOWN_COLUMN'"


def make_result(
    rng: random.Random,
    node: Mapping[str, Any],
    run_type: str,
    state: str,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    """One RunResult (doc §3.4) for ``node`` in ``state``: complete, error, skipped or running."""
    assert state in NODE_STATES, state
    result: dict[str, Any] = {
        "nodeID": node["id"],
        "name": node["name"],
        "isRunning": state == "running",
        "runState": state,
        "queryResults": [],
    }
    if state == "skipped":
        return result  # never executed: no queries, nothing rendered

    steps = _steps(node, run_type)
    slot = (end - start) / len(steps)
    for index, (stage, sql) in enumerate(steps):
        step_start = start + slot * index
        is_last = index == len(steps) - 1
        query: dict[str, Any] = {
            "name": stage,
            "sql": sql,
            "status": "Success",
            "success": True,
            "isRunning": False,
            "startTime": to_iso(step_start),
            "endTime": to_iso(step_start + slot),
            "queryID": snowflake_query_id(rng),
            **_rows(rng, stage),
            "warehouse": "COMPUTE_WH",
        }
        if state == "running":
            # The first step is executing; later steps have not been issued yet.
            query.update(status="Running", success=False, isRunning=True, rowsInserted=0, rowsUpdated=0)
            del query["endTime"]
            result["queryResults"].append(query)
            break
        if state == "error" and is_last:
            message = error_text(node)
            query.update(
                status="Error",
                success=False,
                rowsInserted=0,
                rowsUpdated=0,
                error={"errorString": message, "errorDetail": f"{message}\nQuery: {sql}"},
            )
        result["queryResults"].append(query)

    result["renderQueryResult"] = {
        "name": "Render",
        "sql": steps[0][1],
        "status": "Success",
        "success": True,
        "isRunning": False,
        "startTime": to_iso(start),
        "endTime": to_iso(start),
    }
    return result
