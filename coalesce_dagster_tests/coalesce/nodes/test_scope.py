"""Fast tests of what a stored node snapshot is trusted with (coalesce/nodes/scope.py): only the
environments configured now, of the account configured now, and building only where opted in.
Plus the snapshot's record of what it was made for, and reading snapshots written before it."""

from __future__ import annotations

import dataclasses
import json

import pytest

from coalesce_dagster.coalesce.nodes import (
    SNAPSHOT_VERSION,
    CoalesceNode,
    EnvironmentNodes,
    NodeColumn,
    NodeSnapshot,
    NodeTest,
    parse_node,
)
from coalesce_dagster.coalesce.nodes.scope import scope_snapshot

ACCOUNT = "https://app.eu.coalescesoftware.io"
OTHER_ACCOUNT = "https://acme.app.coalescesoftware.io"


def env(env_id: str, name: str) -> EnvironmentNodes:
    node = CoalesceNode(env_id + "-n", "STG_A", "Stage", "DB", "STAGING", "STAGING")
    return EnvironmentNodes(env_id, name, (node,))


SNAPSHOT = NodeSnapshot(
    environments=(env("2", "Development"), env("3", "Production")),
    fetched_at="2026-12-07T05:00:00+00:00",
    base_url=ACCOUNT,
    requested=("2", "Production"),
)


def ids(scope) -> list[str]:
    return [environment.id for environment in scope.environments]


def test_only_environments_configured_now_are_kept_by_id_or_name():
    scope = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=["production"])
    assert ids(scope) == ["3"] and scope.orchestrated == frozenset()
    assert len(scope.notes) == 1 and "'Development' (2)" in scope.notes[0] and "no longer" in scope.notes[0]


def test_no_environment_configured_keeps_nothing_and_says_so():
    scope = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=[])
    assert ids(scope) == []
    assert "environments" in scope.notes[0] and "2 nodes of 'Development', 'Production'" in scope.notes[0]


def test_a_snapshot_of_another_account_keeps_nothing_and_says_how_to_refresh():
    scope = scope_snapshot(SNAPSHOT, base_url=OTHER_ACCOUNT, environments=["2", "3"], orchestrate=["2"])
    assert ids(scope) == [] and scope.orchestrated == frozenset()
    (note,) = scope.notes
    assert ACCOUNT in note and OTHER_ACCOUNT in note and "refresh-defs-state" in note


def test_an_unusable_configured_account_keeps_nothing():
    scope = scope_snapshot(SNAPSHOT, base_url=None, environments=["2"])
    assert ids(scope) == [] and "unusable base_url" in scope.notes[0]


def test_building_is_opt_in_per_environment():
    observed = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=["2", "3"])
    assert ids(observed) == ["2", "3"] and observed.orchestrated == frozenset() and observed.notes == []
    opted = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=["2", "3"], orchestrate=["Development"])
    assert opted.orchestrated == frozenset({"2"}) and opted.notes == []


def test_orchestrate_outside_the_shown_environments_builds_nothing_there():
    scope = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=["2"], orchestrate=["Production"])
    assert ids(scope) == ["2"] and scope.orchestrated == frozenset()
    assert any("'Production'" in note and "builds nothing" in note for note in scope.notes)


def test_a_configured_environment_missing_from_the_snapshot_is_named():
    scope = scope_snapshot(SNAPSHOT, base_url=ACCOUNT, environments=["2", "QA"])
    assert ids(scope) == ["2"] and any(
        "'QA'" in note and "not in the node snapshot" in note for note in scope.notes
    )


def version_1(snapshot: NodeSnapshot) -> str:
    """The snapshot as written before it recorded its account (columns of four fields, no tests)."""
    data = json.loads(snapshot.to_json())
    data["version"] = 1
    del data["base_url"], data["requested"]
    for environment in data["environments"]:
        for node in environment["nodes"]:
            node["columns"] = [column[:4] for column in node["columns"]]
            del node["tests"]
    return json.dumps(data)


def test_a_snapshot_from_before_the_record_is_read_as_an_unknown_account_and_never_built():
    old = NodeSnapshot.from_json(version_1(SNAPSHOT))
    assert old.base_url is None and old.requested is None and old.node_count == 2
    scope = scope_snapshot(old, base_url=ACCOUNT, environments=["2", "3"], orchestrate=["2", "3"])
    assert ids(scope) == ["2", "3"]  # still shown, and still reported by the sensor
    assert scope.orchestrated == frozenset()
    assert any("predates" in note and "observed only" in note for note in scope.notes)


def test_the_record_round_trips_and_names_no_token():
    again = NodeSnapshot.from_json(SNAPSHOT.to_json())
    assert again == SNAPSHOT and again.version == SNAPSHOT_VERSION
    assert set(json.loads(SNAPSHOT.to_json())) == {
        "version",
        "fetched_at",
        "base_url",
        "requested",
        "environments",
    }


# -- tests and column references in a node body (API notes §11) --------------------------------------

TESTED = {
    "id": "n-5",
    "name": "DIM_CUSTOMER",
    "nodeType": "Dimension",
    "database": "ANALYTICS",
    "schema": "MARTS",
    "locationName": "MARTS",
    "metadata": {
        "columns": [
            {
                "columnID": "c1",
                "name": "CUSTOMER_ID",
                "dataType": "NUMBER",
                "description": "",
                "nullable": False,
                "sources": [
                    {"transform": "", "columnReferences": [{"nodeID": "n-1", "columnID": "k1"}]},
                    {"transform": "1"},  # the V2 shape: a column with no upstream
                ],
                "appliedColumnTests": {"Unique": True, "Not Null": True, "Accepted Values": False},
            },
            {
                "columnID": "c2",
                "name": "REGION",
                "dataType": "VARCHAR",
                "description": "",
                "nullable": True,
                "columnReferences": [
                    {"tableName": "STG_REGIONS", "columnName": "REGION"},
                    {"tableName": None, "columnName": "REGION_CODE"},
                ],
            },
        ],
        "appliedNodeTests": [
            {
                "name": "Row count > 0",
                "description": "never empty",
                "continueOnFailure": True,
                "runOrder": "After",
                "templateString": "SELECT ...",
            },
            {"name": "", "description": "nameless: skipped"},
            {"name": "Disabled", "enabled": False},
        ],
    },
}


def test_node_and_column_tests_and_both_column_reference_shapes_are_read():
    node = parse_node(TESTED)
    assert node.tests == (
        NodeTest("Row count > 0", "never empty", continue_on_failure=True, run_order="After"),
    )
    customer, region = node.columns
    assert customer.tests == ("Unique", "Not Null")
    assert [(ref.node_id, ref.column) for ref in customer.sources] == [("n-1", "k1")]
    assert [(ref.table, ref.column) for ref in region.sources] == [
        ("STG_REGIONS", "REGION"),
        ("", "REGION_CODE"),
    ]
    assert [(test.column, test.name) for test in node.all_tests] == [
        ("", "Row count > 0"),
        ("CUSTOMER_ID", "Unique"),
        ("CUSTOMER_ID", "Not Null"),
    ]


def test_tests_and_column_references_survive_the_snapshot():
    snapshot = NodeSnapshot(
        environments=(EnvironmentNodes("1", "Dev", (parse_node(TESTED),)),), fetched_at="x", base_url=ACCOUNT
    )
    assert NodeSnapshot.from_json(snapshot.to_json()) == snapshot


@pytest.mark.parametrize("value", [None, [], "Unique", {"Unique": "yes"}])
def test_malformed_column_tests_are_none(value):
    raw = {**TESTED, "metadata": {"columns": [{"name": "A", "appliedColumnTests": value}]}}
    assert parse_node(raw).columns == (NodeColumn("A"),)


def test_a_name_two_environments_share_selects_neither_and_says_to_use_the_id(caplog):
    twins = NodeSnapshot(
        environments=(env("7", "Prod"), env("3", "Prod"), env("2", "Development")),
        fetched_at="2026-12-07T05:00:00+00:00",
        base_url=ACCOUNT,
        requested=("Prod", "Development"),
    )
    for order in (twins, dataclasses.replace(twins, environments=twins.environments[::-1])):
        scope = scope_snapshot(order, base_url=ACCOUNT, environments=["2", "3", "7"], orchestrate=["Prod"])
        assert scope.orchestrated == frozenset()  # never whichever Coalesce happened to list first
        by_id = scope_snapshot(order, base_url=ACCOUNT, environments=["2", "3", "7"], orchestrate=["3"])
        assert by_id.orchestrated == frozenset({"3"})
    assert "'Prod' names 2 Coalesce environments (ids 7, 3)" in caplog.text
