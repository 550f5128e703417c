"""Coalesce nodes as typed records, their lineage, and the snapshot the node assets are built from.

A node's detail (`GET /api/v1/environments/{id}/nodes?detail=true`, docs/coalesce-api.md §3.2)
carries its table (`database`, `schema`, `name`), its columns (`metadata.columns[]`) and what it
reads (`metadata.sourceMapping[].dependencies[]` as `{locationName, nodeName}`, plus `aliases`
naming node ids). Only what the asset graph needs is kept, so a snapshot of 2,000 nodes stays small
and loads fast; the full bodies are in the `environment_nodes` table.

Lineage is resolved per environment: a dependency names a node of the same environment by storage
location and name. One that names no node (dangling), or that would close a cycle, is reported in
`Lineage.problems` and left out: Dagster cannot load a cyclic graph, and a bad reference in
Coalesce must not take the whole code location down.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

logger = logging.getLogger(__name__)

# Version 2 records the account and environments a snapshot was made for; version 1 (before that)
# is still read, as a snapshot of an unknown account.
SNAPSHOT_VERSION = 2
READABLE_SNAPSHOT_VERSIONS = (1, 2)
SOURCE_NODE_TYPE = "source"


class SnapshotError(ValueError):
    """A stored node snapshot cannot be read (corrupt, or written by an incompatible version)."""


@dataclass(frozen=True)
class ColumnRef:
    """Where a column's value comes from, in one of the two shapes Coalesce states it (API notes
    §11.4): a node and column by id (`sources[].columnReferences[]`), or a table and column by name
    (`columnReferences[]`; the table may be unnamed)."""

    column: str  # a column id (with node_id) or a column name (with table)
    node_id: str = ""
    table: str = ""


@dataclass(frozen=True)
class NodeColumn:
    name: str
    data_type: str = ""
    description: str = ""
    nullable: bool = True
    id: str = ""
    sources: tuple[ColumnRef, ...] = ()
    tests: tuple[str, ...] = ()  # enabled `appliedColumnTests`, by name


@dataclass(frozen=True)
class NodeTest:
    """A Coalesce test of a node (`metadata.appliedNodeTests[]`, API notes §11.1), or of one of its
    columns (`columns[].appliedColumnTests`, §11.2: `column` set, no description)."""

    name: str
    description: str = ""
    continue_on_failure: bool = False
    run_order: str = ""  # "Before" or "After" the node's own build
    column: str = ""


@dataclass(frozen=True)
class NodeRef:
    """A dependency as Coalesce states it: a node by storage location and name."""

    location_name: str
    node_name: str

    def __str__(self) -> str:
        return f"{self.location_name}.{self.node_name}"


@dataclass(frozen=True)
class CoalesceNode:
    id: str
    name: str
    node_type: str
    database: str
    schema: str
    location_name: str
    description: str = ""
    materialization: str = ""
    columns: tuple[NodeColumn, ...] = ()
    dependencies: tuple[NodeRef, ...] = ()
    alias_ids: tuple[str, ...] = ()  # node ids named by `sourceMapping[].aliases`
    tests: tuple[NodeTest, ...] = ()  # node tests, then column tests

    @property
    def all_tests(self) -> tuple[NodeTest, ...]:
        """The node's tests and its columns' tests, each once."""
        column_tests = tuple(
            NodeTest(name=test, column=column.name) for column in self.columns for test in column.tests
        )
        return self.tests + column_tests

    @property
    def is_source(self) -> bool:
        """Source nodes stand for tables Coalesce reads but does not build."""
        return self.node_type.lower() == SOURCE_NODE_TYPE

    @property
    def table_name(self) -> str:
        """The warehouse table, `DATABASE.SCHEMA.NAME` as Coalesce names it."""
        return ".".join(part for part in (self.database, self.schema, self.name) if part)


@dataclass(frozen=True)
class EnvironmentNodes:
    id: str
    name: str
    nodes: tuple[CoalesceNode, ...] = ()

    @cached_property
    def by_id(self) -> dict[str, CoalesceNode]:
        return {node.id: node for node in self.nodes}


@dataclass(frozen=True)
class NodeSnapshot:
    """The nodes of the configured environments at one moment (`fetched_at`, ISO 8601, UTC).

    `base_url` (the canonical host, never a token) and `requested` (the environments asked for)
    say what the snapshot was made for; both are None in a snapshot written before they were kept,
    whose account is therefore unknown."""

    environments: tuple[EnvironmentNodes, ...]
    fetched_at: str
    base_url: str | None = None
    requested: tuple[str, ...] | None = None
    version: int = SNAPSHOT_VERSION

    @property
    def node_count(self) -> int:
        return sum(len(environment.nodes) for environment in self.environments)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "fetched_at": self.fetched_at,
                "base_url": self.base_url,
                "requested": None if self.requested is None else list(self.requested),
                "environments": [_environment_json(env) for env in self.environments],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> NodeSnapshot:
        try:
            data = json.loads(text)
            version = data.get("version")
            if type(version) is not int or version not in READABLE_SNAPSHOT_VERSIONS:
                raise SnapshotError(f"snapshot version {version!r} is not {SNAPSHOT_VERSION}; refresh it")
            requested = data.get("requested")
            return cls(
                environments=tuple(_environment_from_json(env) for env in data["environments"]),
                fetched_at=str(data["fetched_at"]),
                base_url=str(data["base_url"]) if data.get("base_url") else None,
                requested=None if requested is None else tuple(str(entry) for entry in requested),
            )
        except SnapshotError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise SnapshotError(f"unreadable node snapshot ({type(error).__name__}: {error})") from None


def parse_node(raw: Mapping[str, Any]) -> CoalesceNode:
    """A node from Coalesce's detail body; optional parts missing or malformed are left empty."""
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    columns = tuple(
        NodeColumn(
            name=_text(column.get("name")),
            data_type=_text(column.get("dataType")),
            description=_text(column.get("description")),
            nullable=column.get("nullable") is not False,
            id=_text(column.get("columnID")),
            sources=_column_sources(column),
            tests=_enabled_column_tests(column.get("appliedColumnTests")),
        )
        for column in _objects(metadata.get("columns"))
        if _text(column.get("name"))
    )
    tests = tuple(
        NodeTest(
            name=_text(test.get("name")),
            description=_text(test.get("description")),
            continue_on_failure=test.get("continueOnFailure") is True,
            run_order=_text(test.get("runOrder")),
        )
        for test in _objects(metadata.get("appliedNodeTests"))
        if _text(test.get("name")) and test.get("enabled") is not False
    )
    dependencies: list[NodeRef] = []
    alias_ids: list[str] = []
    for mapping in _objects(metadata.get("sourceMapping")):
        for dependency in _objects(mapping.get("dependencies")):
            ref = NodeRef(_text(dependency.get("locationName")), _text(dependency.get("nodeName")))
            if ref.node_name and ref not in dependencies:
                dependencies.append(ref)
        aliases = mapping.get("aliases")
        if isinstance(aliases, Mapping):
            alias_ids.extend(_text(node_id) for node_id in aliases.values() if _text(node_id))
    return CoalesceNode(
        id=_text(raw.get("id")),
        name=_text(raw.get("name")),
        node_type=_text(raw.get("nodeType")),
        database=_text(raw.get("database")),
        schema=_text(raw.get("schema")),
        location_name=_text(raw.get("locationName")),
        description=_text(raw.get("description")),
        materialization=_text(raw.get("materializationOption")),
        columns=columns,
        dependencies=tuple(dependencies),
        alias_ids=tuple(dict.fromkeys(alias_ids)),
        tests=tests,
    )


def _column_sources(column: Mapping[str, Any]) -> tuple[ColumnRef, ...]:
    """Both shapes of §11.4, each reference once: `sources[].columnReferences[]{nodeID, columnID}`
    (a `sources[]` item without references is a column with no upstream), and
    `columnReferences[]{tableName, columnName}`."""
    refs: list[ColumnRef] = []
    for source in _objects(column.get("sources")):
        for ref in _objects(source.get("columnReferences")):
            node_id, column_id = _text(ref.get("nodeID")), _text(ref.get("columnID"))
            if node_id and column_id:
                refs.append(ColumnRef(column=column_id, node_id=node_id))
    for ref in _objects(column.get("columnReferences")):
        if _text(ref.get("columnName")):
            refs.append(ColumnRef(column=_text(ref.get("columnName")), table=_text(ref.get("tableName"))))
    return tuple(dict.fromkeys(refs))


def _enabled_column_tests(tests: Any) -> tuple[str, ...]:
    """`appliedColumnTests`: test name -> enabled (§11.2); the enabled ones, by name."""
    if not isinstance(tests, Mapping):
        return ()
    return tuple(_text(name) for name, enabled in tests.items() if enabled is True and _text(name))


@dataclass(frozen=True)
class Lineage:
    """Per node id, the ids of the nodes it reads (in the order Coalesce lists them)."""

    upstream: dict[str, tuple[str, ...]]
    problems: list[str] = field(default_factory=list)


def resolve_lineage(environment: EnvironmentNodes) -> Lineage:
    """The node-to-node edges of one environment; dangling and cycle-closing references are left
    out and described in `problems` (never raised)."""
    by_id = {node.id: node for node in environment.nodes}
    by_ref = {(node.location_name, node.name): node.id for node in environment.nodes}
    # Names are matched exactly first, then ignoring case (Snowflake folds unquoted names).
    by_folded_ref = {(loc.lower(), name.lower()): node_id for (loc, name), node_id in by_ref.items()}
    problems: list[str] = []
    named: dict[str, list[str]] = {}
    for node in environment.nodes:
        ids: list[str] = []
        for ref in node.dependencies:
            found = by_ref.get((ref.location_name, ref.node_name)) or by_folded_ref.get(
                (ref.location_name.lower(), ref.node_name.lower())
            )
            if found is None:
                problems.append(
                    f"Node {node.location_name}.{node.name} in environment {environment.name!r} reads "
                    f"{ref}, which is not a node of that environment; that dependency is left out."
                )
            elif found != node.id and found not in ids:
                ids.append(found)
        for alias_id in node.alias_ids:
            if alias_id in by_id and alias_id != node.id and alias_id not in ids:
                ids.append(alias_id)
        named[node.id] = ids
    upstream = _without_cycles(named, by_id, environment.name, problems)
    return Lineage(upstream=upstream, problems=problems)


def _without_cycles(
    edges: dict[str, list[str]], by_id: Mapping[str, CoalesceNode], environment: str, problems: list[str]
) -> dict[str, tuple[str, ...]]:
    """Drop every edge that closes a cycle (depth-first, iterative: lineage can be thousands deep)."""
    kept: dict[str, list[str]] = {node_id: [] for node_id in edges}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        state[start] = 1
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node_id, position = stack[-1]
            upstreams = edges[node_id]
            if position == len(upstreams):
                state[node_id] = 2
                stack.pop()
                continue
            stack[-1] = (node_id, position + 1)
            upstream = upstreams[position]
            if state.get(upstream) == 1:
                reader, read = by_id[node_id], by_id[upstream]
                problems.append(
                    f"Node {reader.location_name}.{reader.name} in environment {environment!r} reads "
                    f"{read.location_name}.{read.name}, which closes a cycle; that dependency is left out."
                )
                continue
            kept[node_id].append(upstream)
            if not state.get(upstream):
                state[upstream] = 1
                stack.append((upstream, 0))
    return {node_id: tuple(ids) for node_id, ids in kept.items()}


def select_environments(
    available: Iterable[Mapping[str, Any]], wanted: Sequence[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """The (id, name) of the environments `wanted` names, by id, else by name (exactly, else
    ignoring case), and the entries that matched none. An empty `wanted` selects nothing.

    A name that several environments share selects none of them (it is among the unmatched, with a
    warning naming their ids): which one it meant would depend on the order Coalesce lists them in,
    and building in the wrong one starts work nobody chose."""
    environments = [(_text(env.get("id")), _text(env.get("name"))) for env in available]
    chosen: list[tuple[str, str]] = []
    unmatched: list[str] = []
    for entry in wanted:
        matches = (
            [env for env in environments if env[0] == entry]
            or [env for env in environments if env[1] == entry]
            or [env for env in environments if env[1].lower() == entry.lower()]
        )
        if len(matches) > 1:
            logger.warning(
                "%r names %d Coalesce environments (ids %s): name one of them by its id instead.",
                entry,
                len(matches),
                ", ".join(env_id for env_id, _ in matches),
            )
            unmatched.append(entry)
        elif not matches:
            unmatched.append(entry)
        elif matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen, unmatched


def _environment_json(environment: EnvironmentNodes) -> dict[str, Any]:
    return {
        "id": environment.id,
        "name": environment.name,
        "nodes": [
            {
                "id": n.id,
                "name": n.name,
                "node_type": n.node_type,
                "database": n.database,
                "schema": n.schema,
                "location_name": n.location_name,
                "description": n.description,
                "materialization": n.materialization,
                "columns": [_column_json(c) for c in n.columns],
                "dependencies": [[d.location_name, d.node_name] for d in n.dependencies],
                "alias_ids": list(n.alias_ids),
                "tests": [[t.name, t.description, t.continue_on_failure, t.run_order] for t in n.tests],
            }
            for n in environment.nodes
        ],
    }


def _environment_from_json(data: Mapping[str, Any]) -> EnvironmentNodes:
    return EnvironmentNodes(
        id=str(data["id"]),
        name=str(data["name"]),
        nodes=tuple(
            CoalesceNode(
                id=str(n["id"]),
                name=str(n["name"]),
                node_type=str(n["node_type"]),
                database=str(n["database"]),
                schema=str(n["schema"]),
                location_name=str(n["location_name"]),
                description=str(n.get("description", "")),
                materialization=str(n.get("materialization", "")),
                columns=tuple(_column_from_json(c) for c in n["columns"]),
                dependencies=tuple(NodeRef(str(d[0]), str(d[1])) for d in n["dependencies"]),
                alias_ids=tuple(str(a) for a in n.get("alias_ids", ())),
                tests=tuple(
                    NodeTest(str(t[0]), str(t[1]), bool(t[2]), str(t[3])) for t in n.get("tests", ())
                ),
            )
            for n in data["nodes"]
        ),
    )


def _column_json(column: NodeColumn) -> list[Any]:
    # Lists, not objects: a snapshot of thousands of nodes stays small and quick to read.
    return [
        column.name,
        column.data_type,
        column.description,
        column.nullable,
        column.id,
        [[ref.column, ref.node_id, ref.table] for ref in column.sources],
        list(column.tests),
    ]


def _column_from_json(data: Sequence[Any]) -> NodeColumn:
    """A column of either version (version 1 kept the first four fields only)."""
    extra = list(data[4:]) + [None] * (7 - len(data))
    column_id, sources, tests = extra[0], extra[1] or (), extra[2] or ()
    return NodeColumn(
        name=str(data[0]),
        data_type=str(data[1]),
        description=str(data[2]),
        nullable=bool(data[3]),
        id=str(column_id or ""),
        sources=tuple(ColumnRef(str(ref[0]), str(ref[1]), str(ref[2])) for ref in sources),
        tests=tuple(str(test) for test in tests),
    )


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()
