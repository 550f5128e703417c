"""Fast tests of the node pieces: parsing a node body, resolving lineage, the snapshot's JSON,
choosing environments and reading a run's per-node results. Inputs are bodies shaped as Coalesce
sends them (docs/coalesce-api.md §3.2, §3.4, §10 items 4, 5, 11); no simulator, no network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from coalesce_dagster.coalesce.nodes import (
    SNAPSHOT_VERSION,
    CoalesceNode,
    EnvironmentNodes,
    NodeColumn,
    NodeRef,
    NodeSnapshot,
    SnapshotError,
    parse_node,
    resolve_lineage,
    select_environments,
)
from coalesce_dagster.coalesce.run_report import node_outcome, node_outcomes

# -- parse_node ----------------------------------------------------------------------------------

DETAIL = {
    "id": "n-3",
    "name": "FCT_ORDERS",
    "nodeType": "Fact",
    "database": "ANALYTICS",
    "schema": "MARTS",
    "locationName": "MARTS",
    "description": "Orders, one row each.",
    "materializationOption": "table",
    "metadata": {
        "columns": [
            {
                "columnID": "c1",
                "name": "ORDER_ID",
                "dataType": "NUMBER",
                "description": "key",
                "nullable": False,
            },
            {
                "columnID": "c2",
                "name": "AMOUNT",
                "dataType": "NUMBER(12,2)",
                "description": "",
                "nullable": True,
            },
            {"columnID": "c3", "name": "NOTE", "dataType": "VARCHAR"},  # nullable left out: nullable
        ],
        "sourceMapping": [
            {
                "name": "FCT_ORDERS",
                "aliases": {"o": "n-1", "c": "n-2"},
                "dependencies": [
                    {"locationName": "STAGING", "nodeName": "STG_ORDERS"},
                    {"locationName": "STAGING", "nodeName": "STG_CUSTOMERS"},
                ],
            },
            {
                "name": "FCT_ORDERS_late",
                "aliases": {"o": "n-1", "r": "n-9"},
                "dependencies": [
                    {"locationName": "STAGING", "nodeName": "STG_ORDERS"},  # again: kept once
                    {"locationName": "RAW", "nodeName": "REFUNDS"},
                ],
            },
        ],
    },
}


def test_a_detail_body_gives_columns_dependencies_and_alias_ids():
    node = parse_node(DETAIL)
    assert (node.id, node.name, node.node_type) == ("n-3", "FCT_ORDERS", "Fact")
    assert (node.database, node.schema, node.location_name) == ("ANALYTICS", "MARTS", "MARTS")
    assert node.table_name == "ANALYTICS.MARTS.FCT_ORDERS"
    assert node.materialization == "table" and node.description == "Orders, one row each."
    assert node.columns == (
        NodeColumn("ORDER_ID", "NUMBER", "key", nullable=False, id="c1"),
        NodeColumn("AMOUNT", "NUMBER(12,2)", "", nullable=True, id="c2"),
        NodeColumn("NOTE", "VARCHAR", "", nullable=True, id="c3"),
    )
    assert node.dependencies == (
        NodeRef("STAGING", "STG_ORDERS"),
        NodeRef("STAGING", "STG_CUSTOMERS"),
        NodeRef("RAW", "REFUNDS"),
    )
    assert node.alias_ids == ("n-1", "n-2", "n-9")
    assert not node.is_source


def test_a_summary_body_has_no_columns_and_no_dependencies():
    summary = {k: v for k, v in DETAIL.items() if k not in ("metadata", "description")}
    node = parse_node({**summary, "nodeType": "Source"})
    assert node.columns == () and node.dependencies == () and node.alias_ids == ()
    assert node.description == "" and node.is_source


@pytest.mark.parametrize(
    "metadata",
    [
        "not a dict",
        ["columns"],
        {"columns": "ORDER_ID", "sourceMapping": {"dependencies": []}},
        {"columns": None, "sourceMapping": None},
        {"columns": ["ORDER_ID", 7, None], "sourceMapping": ["x", None]},
    ],
    ids=["string", "list", "wrong-types", "nulls", "non-objects"],
)
def test_malformed_metadata_is_skipped_not_raised(metadata):
    node = parse_node({**DETAIL, "metadata": metadata})
    assert node.columns == () and node.dependencies == () and node.alias_ids == ()
    assert node.name == "FCT_ORDERS"  # the rest of the node is still read


def test_malformed_parts_are_skipped_and_the_good_ones_kept():
    node = parse_node(
        {
            **DETAIL,
            "metadata": {
                "columns": [
                    {"dataType": "NUMBER"},  # no name
                    {"name": "  ", "dataType": "NUMBER"},  # blank name
                    {"name": None},
                    {"name": "OK", "dataType": None, "description": None},
                ],
                "sourceMapping": [
                    {"dependencies": "STG_ORDERS", "aliases": ["n-1"]},
                    {"dependencies": [{"locationName": "STAGING"}, "x", {"nodeName": "ORPHAN"}]},
                    {"aliases": {"a": None, "b": "", "c": "n-5"}},
                ],
            },
        }
    )
    assert node.columns == (NodeColumn("OK", "", "", True),)
    assert node.dependencies == (NodeRef("", "ORPHAN"),)
    assert node.alias_ids == ("n-5",)


# -- resolve_lineage -----------------------------------------------------------------------------


def make_node(
    node_id: str,
    name: str | None = None,
    *,
    location: str = "STAGING",
    reads: tuple[tuple[str, str], ...] = (),
    aliases: tuple[str, ...] = (),
    node_type: str = "Stage",
) -> CoalesceNode:
    return CoalesceNode(
        id=node_id,
        name=name or node_id.upper(),
        node_type=node_type,
        database="ANALYTICS",
        schema=location,
        location_name=location,
        dependencies=tuple(NodeRef(loc, nm) for loc, nm in reads),
        alias_ids=aliases,
    )


def environment(*nodes: CoalesceNode, name: str = "Development") -> EnvironmentNodes:
    return EnvironmentNodes(id="1", name=name, nodes=nodes)


def is_acyclic(upstream: dict[str, tuple[str, ...]]) -> bool:
    """Kahn's algorithm: every node can be ordered after what it reads."""
    waiting = {node: len(reads) for node, reads in upstream.items()}
    readers: dict[str, list[str]] = {}
    for node, reads in upstream.items():
        for read in reads:
            readers.setdefault(read, []).append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    ordered = 0
    while ready:
        ordered += 1
        for reader in readers.get(ready.pop(), ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                ready.append(reader)
    return ordered == len(upstream)


def test_is_acyclic_tells_a_cycle():
    assert is_acyclic({"a": ("b",), "b": ()}) and not is_acyclic({"a": ("b",), "b": ("a",)})


def test_dependencies_resolve_by_location_and_name_exactly_then_ignoring_case():
    lineage = resolve_lineage(
        environment(
            make_node("a", "ORDERS", location="RAW"),
            make_node("b", "ORDERS", location="STAGING"),  # same name, another location
            make_node("c", reads=(("STAGING", "ORDERS"),)),
            make_node("d", reads=(("raw", "orders"),)),  # Snowflake folds unquoted names
        )
    )
    assert lineage.upstream == {"a": (), "b": (), "c": ("b",), "d": ("a",)}
    assert lineage.problems == []


def test_an_exact_match_wins_over_one_ignoring_case():
    lineage = resolve_lineage(
        environment(
            make_node("upper", "ORDERS"),
            make_node("lower", "orders"),
            make_node("reader", reads=(("STAGING", "orders"),)),
        )
    )
    assert lineage.upstream["reader"] == ("lower",)


def test_alias_ids_that_are_nodes_of_the_environment_count_as_dependencies():
    lineage = resolve_lineage(
        environment(
            make_node("a"),
            make_node("b"),
            make_node("c", reads=(("STAGING", "A"),), aliases=("a", "b", "elsewhere", "c")),
        )
    )
    assert lineage.upstream["c"] == ("a", "b")  # `a` once, unknown and own ids ignored
    assert lineage.problems == []


def test_a_dependency_naming_no_node_is_left_out_and_reported():
    lineage = resolve_lineage(
        environment(
            make_node("a"), make_node("b", "FCT", location="MARTS", reads=(("STAGING", "A"), ("RAW", "GONE")))
        )
    )
    assert lineage.upstream == {"a": (), "b": ("a",)}
    (problem,) = lineage.problems
    assert "MARTS.FCT" in problem and "RAW.GONE" in problem and "'Development'" in problem


def test_a_self_reference_is_ignored():
    lineage = resolve_lineage(environment(make_node("a", reads=(("STAGING", "A"),), aliases=("a",))))
    assert lineage.upstream == {"a": ()}
    assert lineage.problems == []


@pytest.mark.parametrize("length", [2, 3, 7])
def test_a_cycle_is_broken_by_leaving_out_one_edge_and_reported(length):
    ids = [f"n{i}" for i in range(length)]
    # n0 reads n1, n1 reads n2, ..., the last reads n0.
    nodes = [
        make_node(node_id, reads=(("STAGING", ids[(i + 1) % length].upper()),))
        for i, node_id in enumerate(ids)
    ]
    lineage = resolve_lineage(environment(*nodes))
    edges = {(node, up) for node, ups in lineage.upstream.items() for up in ups}
    assert len(edges) == length - 1
    assert is_acyclic(lineage.upstream)
    (problem,) = lineage.problems
    assert "closes a cycle" in problem


def test_two_cycles_sharing_a_node_each_lose_one_edge():
    # a <-> b and a -> c -> a
    lineage = resolve_lineage(
        environment(
            make_node("a", reads=(("STAGING", "B"), ("STAGING", "C"))),
            make_node("b", reads=(("STAGING", "A"),)),
            make_node("c", reads=(("STAGING", "A"),)),
        )
    )
    assert sum(len(ups) for ups in lineage.upstream.values()) == 2
    assert is_acyclic(lineage.upstream)
    assert len(lineage.problems) == 2


def test_a_diamond_is_no_cycle():
    lineage = resolve_lineage(
        environment(
            make_node("top", reads=(("STAGING", "LEFT"), ("STAGING", "RIGHT"))),
            make_node("left", reads=(("STAGING", "BOTTOM"),)),
            make_node("right", reads=(("STAGING", "BOTTOM"),)),
            make_node("bottom"),
        )
    )
    assert lineage.upstream["top"] == ("left", "right") and lineage.problems == []


def test_a_chain_of_5000_nodes_does_not_recurse():
    count = 5000
    nodes = [make_node(f"n{i}", reads=((("STAGING", f"N{i - 1}"),) if i else ())) for i in range(count)]
    # Also closed into a cycle at the far end: the walk reaches the bottom before it can tell.
    nodes[0] = make_node("n0", reads=(("STAGING", f"N{count - 1}"),))
    lineage = resolve_lineage(environment(*nodes))
    assert sum(len(ups) for ups in lineage.upstream.values()) == count - 1
    assert len(lineage.problems) == 1 and is_acyclic(lineage.upstream)


# -- NodeSnapshot --------------------------------------------------------------------------------


def snapshot() -> NodeSnapshot:
    return NodeSnapshot(
        environments=(
            EnvironmentNodes("1", "Development", (parse_node(DETAIL), make_node("a", node_type="Source"))),
            EnvironmentNodes("2", "Production", ()),
        ),
        fetched_at="2026-12-01T06:00:00+00:00",
    )


def test_a_snapshot_round_trips_through_json():
    original = snapshot()
    again = NodeSnapshot.from_json(original.to_json())
    assert again == original
    assert again.node_count == 2
    assert json.loads(original.to_json())["version"] == SNAPSHOT_VERSION


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            json.dumps({**json.loads(snapshot().to_json()), "version": SNAPSHOT_VERSION + 1}),
            f"version {SNAPSHOT_VERSION + 1} is not {SNAPSHOT_VERSION}",
        ),
        (
            json.dumps({k: v for k, v in json.loads(snapshot().to_json()).items() if k != "version"}),
            "version None",
        ),
        ("{not json", "unreadable node snapshot \\(JSONDecodeError"),
        ("", "unreadable node snapshot"),
        ("[]", "unreadable node snapshot \\(AttributeError"),
        (
            json.dumps({"version": SNAPSHOT_VERSION, "fetched_at": "x"}),
            "unreadable.*KeyError: 'environments'",
        ),
        (
            json.dumps(
                {"version": SNAPSHOT_VERSION, "fetched_at": "x", "environments": [{"id": "1", "name": "D"}]}
            ),
            "KeyError: 'nodes'",
        ),
        (
            json.dumps(
                {
                    "version": SNAPSHOT_VERSION,
                    "fetched_at": "x",
                    "environments": [{"id": "1", "name": "D", "nodes": [{}]}],
                }
            ),
            "KeyError: 'id'",
        ),
        (json.dumps({"version": SNAPSHOT_VERSION, "environments": []}), "KeyError: 'fetched_at'"),
        (json.dumps({"version": True, "fetched_at": "x", "environments": []}), "version True"),
    ],
    ids=[
        "newer",
        "no-version",
        "invalid",
        "empty",
        "array",
        "no-environments",
        "no-nodes",
        "no-node-id",
        "no-date",
        "boolean-version",
    ],
)
def test_an_unreadable_snapshot_raises_snapshot_error_saying_why(text, message):
    with pytest.raises(SnapshotError, match=message):
        NodeSnapshot.from_json(text)


# -- select_environments ---------------------------------------------------------------------------

ENVIRONMENTS = [
    {"id": "1", "name": "Development"},
    {"id": "2", "name": "3"},  # a name that is another environment's id
    {"id": "3", "name": "Production"},
]


def test_environments_are_chosen_by_id_or_by_name_in_the_order_asked():
    assert select_environments(ENVIRONMENTS, ["Production", "1"]) == (
        [("3", "Production"), ("1", "Development")],
        [],
    )


def test_names_match_ignoring_case():
    assert select_environments(ENVIRONMENTS, ["production"]) == ([("3", "Production")], [])


def test_an_id_wins_over_a_name_equal_to_it():
    assert select_environments(ENVIRONMENTS, ["3"]) == ([("3", "Production")], [])


def test_an_exact_name_wins_over_one_matching_ignoring_case():
    listed = [{"id": "7", "name": "prod"}, {"id": "8", "name": "Prod"}]
    assert select_environments(listed, ["Prod"]) == ([("8", "Prod")], [])
    assert select_environments(listed, ["prod"]) == ([("7", "prod")], [])
    # No exact one, and two ignoring case: neither, rather than whichever Coalesce listed first.
    assert select_environments(listed, ["PROD"]) == ([], ["PROD"])


def test_unmatched_entries_are_returned_and_duplicates_chosen_once():
    chosen, unmatched = select_environments(ENVIRONMENTS, ["1", "Nope", "development", "1", "42"])
    assert chosen == [("1", "Development")]
    assert unmatched == ["Nope", "42"]


def test_nothing_asked_chooses_nothing():
    assert select_environments(ENVIRONMENTS, []) == ([], [])


# -- run_report.node_outcome ----------------------------------------------------------------------


def query(**fields: object) -> dict[str, object]:
    return {
        "name": "Insert",
        "sql": "...",
        "status": "Success",
        "success": True,
        "isRunning": False,
        **fields,
    }


RESULT = {
    "nodeID": "n-3",
    "name": "FCT_ORDERS",
    "isRunning": False,
    "runState": "complete",
    "renderQueryResult": query(
        name="Render", warehouse="RENDER_WH", queryID="q-render", startTime="2026-12-01T05:59:58Z"
    ),
    "queryResults": [
        query(
            rowsInserted=10,
            rowsUpdated=2,
            rowsDeleted=1,
            warehouse="COMPUTE_WH",
            queryID="q-1",
            startTime="2026-12-01T06:00:00Z",
            endTime="2026-12-01T06:00:05.500Z",
        ),
        query(
            rowsInserted="5",
            rowsUpdated=None,
            warehouse="COMPUTE_WH",
            queryID="q-2",
            startTime="2026-12-01T07:00:01+01:00",  # 06:00:01 UTC
            endTime="2026-12-01T06:00:09",  # no offset: UTC
        ),
        query(rowsDeleted=3, warehouse="BIG_WH", queryID="q-1"),
        "not a query",
    ],
}


def test_an_outcome_sums_rows_and_keeps_warehouses_and_query_ids_once_in_order():
    outcome = node_outcome(RESULT)
    assert outcome is not None
    assert (outcome.node_id, outcome.name, outcome.state) == ("n-3", "FCT_ORDERS", "complete")
    assert (outcome.rows_inserted, outcome.rows_updated, outcome.rows_deleted) == (15, 2, 4)
    assert outcome.warehouses == ("RENDER_WH", "COMPUTE_WH", "BIG_WH")
    assert outcome.query_ids == ("q-render", "q-1", "q-2")
    assert outcome.completed and not outcome.failed and outcome.error is None


def test_an_outcome_spans_its_earliest_start_to_its_latest_end_in_utc():
    outcome = node_outcome(RESULT)
    assert outcome is not None and outcome.started_at is not None and outcome.ended_at is not None
    assert outcome.started_at == datetime(2026, 12, 1, 5, 59, 58, tzinfo=UTC)
    assert outcome.ended_at == datetime(2026, 12, 1, 6, 0, 9, tzinfo=UTC)
    assert outcome.started_at.tzinfo is not None and outcome.ended_at.tzinfo is not None
    assert outcome.duration_seconds == 11.0


def test_times_with_an_offset_compare_as_instants():
    outcome = node_outcome(
        {
            "nodeID": "n",
            "queryResults": [
                query(startTime="2026-12-01T06:00:00-05:00", endTime="2026-12-01T11:30:00Z"),
                query(startTime="2026-12-01T10:00:00", endTime="not a time"),
            ],
        }
    )
    assert outcome is not None
    assert outcome.started_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert outcome.ended_at == datetime(2026, 12, 1, 6, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert outcome.duration_seconds == 5400.0


def test_an_outcome_without_times_has_no_duration():
    outcome = node_outcome({"nodeID": "n", "runState": "skipped", "queryResults": []})
    assert outcome is not None
    assert outcome.started_at is None and outcome.ended_at is None and outcome.duration_seconds is None
    assert not outcome.completed and not outcome.failed


@pytest.mark.parametrize("state", ["error", "failed", "Error", " FAILED "])
def test_error_and_failed_both_mean_failed(state):
    outcome = node_outcome({**RESULT, "runState": state})
    assert outcome is not None and outcome.failed and not outcome.completed


@pytest.mark.parametrize(
    ("queries", "failed"),
    [
        ([query()], False),
        ([], False),
        ([query(), query(success=False)], True),
        ([query(error={"errorString": "boom"})], True),
        ([query(error="plain text error")], True),
        ([query(error={"errorString": "", "errorDetail": ""})], False),
    ],
    ids=["succeeded", "no-queries", "success-false", "error-object", "error-string", "empty-error"],
)
def test_without_run_state_a_failed_query_means_a_failed_node(queries, failed):
    outcome = node_outcome({"nodeID": "n", "name": "N", "isRunning": False, "queryResults": queries})
    assert outcome is not None
    assert outcome.failed is failed
    assert outcome.completed is not failed


def test_a_node_still_running_is_not_completed():
    outcome = node_outcome({**RESULT, "isRunning": True})
    assert outcome is not None and outcome.is_running and not outcome.completed and not outcome.failed
    without_state = node_outcome({"nodeID": "n", "isRunning": True, "queryResults": []})
    assert without_state is not None and not without_state.completed


def test_the_error_text_is_the_first_error_string_and_detail():
    outcome = node_outcome(
        {
            **RESULT,
            "runState": "error",
            "queryResults": [
                query(),
                query(success=False, error={"errorString": "SQL compilation error", "errorDetail": "line 3"}),
                query(success=False, error={"errorString": "second"}),
            ],
        }
    )
    assert outcome is not None and outcome.error == "SQL compilation error\nline 3"
    only_detail = node_outcome({"nodeID": "n", "queryResults": [query(error={"errorDetail": "just detail"})]})
    assert only_detail is not None and only_detail.error == "just detail" and only_detail.failed


def test_items_without_a_node_id_are_left_out():
    assert node_outcome({"name": "no id", "runState": "complete"}) is None
    assert node_outcome({**RESULT, "nodeID": ""}) is None
    assert [o.node_id for o in node_outcomes([RESULT, {"name": "x"}, "junk", {**RESULT, "nodeID": 7}])] == [
        "n-3",
        "7",
    ]
