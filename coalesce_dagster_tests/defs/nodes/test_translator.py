"""Fast tests of the node translator and of the definitions built from hand-made snapshots: keys,
groups, kinds and metadata; a subclass's keys followed by downstream deps; problems in the snapshot
(two nodes on one key, a cycle) logged and left out, never fatal. No simulator, no network."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from coalesce_dagster.coalesce.nodes import (
    CoalesceNode,
    EnvironmentNodes,
    NodeColumn,
    NodeRef,
    NodeSnapshot,
    NodeTest,
)
from coalesce_dagster.defs.nodes.assets import build_node_definitions
from coalesce_dagster.defs.nodes.translator import (
    RUN_CHECK_NAME,
    CoalesceNodeProps,
    DagsterCoalesceTranslator,
)


def node(
    node_id: str,
    name: str,
    *,
    node_type: str = "Stage",
    database: str = "Analytics",
    schema: str = "Staging",
    reads: tuple[str, ...] = (),
    columns: tuple[NodeColumn, ...] = (),
) -> CoalesceNode:
    return CoalesceNode(
        id=node_id,
        name=name,
        node_type=node_type,
        database=database,
        schema=schema,
        location_name=schema.upper(),
        columns=columns,
        dependencies=tuple(NodeRef(schema.upper(), upstream) for upstream in reads),
    )


ORDERS_SOURCE = node("s1", "RAW_ORDERS", node_type="Source", database="RAW", schema="Shop")
STG_ORDERS = node(
    "n1",
    "STG_Orders",
    columns=(NodeColumn("ORDER_ID", "NUMBER", "the key", nullable=False), NodeColumn("NOTE", "", "", True)),
)
FCT_ORDERS = node("n2", "FCT_ORDERS", node_type="Fact", reads=("STG_Orders",))
ENVIRONMENT = EnvironmentNodes("1", "QA Env-2", (ORDERS_SOURCE, STG_ORDERS, FCT_ORDERS))


def props(of: CoalesceNode, upstream: tuple[CoalesceNode, ...] = ()) -> CoalesceNodeProps:
    return CoalesceNodeProps(node=of, environment=ENVIRONMENT, upstream=upstream)


def snapshot(*environments: EnvironmentNodes) -> NodeSnapshot:
    return NodeSnapshot(environments=environments, fetched_at="2026-12-01T06:00:00+00:00")


# -- the translator on its own ---------------------------------------------------------------------


def test_a_node_is_keyed_by_its_table_lower_cased():
    translator = DagsterCoalesceTranslator()
    assert translator.get_asset_key(props(STG_ORDERS)) == dg.AssetKey(["analytics", "staging", "stg_orders"])
    assert translator.get_deps(props(FCT_ORDERS, upstream=(STG_ORDERS,))) == [
        dg.AssetKey(["analytics", "staging", "stg_orders"])
    ]


def test_a_source_node_has_its_own_key_per_environment_and_depends_on_its_table():
    translator = DagsterCoalesceTranslator()
    spec = translator.get_asset_spec(props(ORDERS_SOURCE))
    assert spec.key == dg.AssetKey(["coalesce_source", "qa_env_2", "raw", "shop", "raw_orders"])
    assert [dep.asset_key for dep in spec.deps] == [dg.AssetKey(["raw", "shop", "raw_orders"])]


def test_group_kinds_table_name_and_column_schema():
    spec = DagsterCoalesceTranslator(warehouse_kind="databricks").get_asset_spec(props(STG_ORDERS))
    assert spec.group_name == "coalesce_qa_env_2"
    assert spec.kinds == {"coalesce", "databricks"}
    assert spec.metadata["dagster/table_name"] == "Analytics.Staging.STG_Orders"
    columns = spec.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type, c.description, c.constraints.nullable) for c in columns] == [
        ("ORDER_ID", "NUMBER", "the key", False),
        ("NOTE", "unknown", None, True),
    ]
    assert spec.metadata["coalesce/node_id"] == "n1"
    assert spec.metadata["coalesce/environment_id"] == "1"
    assert spec.description == "Coalesce Stage STAGING.STG_Orders."


def test_the_default_warehouse_kind_is_snowflake():
    assert DagsterCoalesceTranslator().get_kinds(props(STG_ORDERS)) == {"coalesce", "snowflake"}


# -- definitions built from a snapshot ---------------------------------------------------------------


def test_an_orchestrated_snapshot_becomes_one_multi_asset_with_checks_and_source_specs():
    defs = build_node_definitions(snapshot(ENVIRONMENT), orchestrated={ENVIRONMENT.id})
    graph = defs.resolve_asset_graph()
    stg, fct = (
        dg.AssetKey(["analytics", "staging", "stg_orders"]),
        dg.AssetKey(["analytics", "staging", "fct_orders"]),
    )
    source = dg.AssetKey(["coalesce_source", "qa_env_2", "raw", "shop", "raw_orders"])
    assert graph.get(fct).parent_keys == {stg}
    assert graph.get(stg).parent_keys == set()
    assert graph.get(source).parent_keys == {dg.AssetKey(["raw", "shop", "raw_orders"])}
    assert graph.get(stg).is_executable and not graph.get(source).is_executable
    assert graph.asset_check_keys == {
        dg.AssetCheckKey(stg, RUN_CHECK_NAME),
        dg.AssetCheckKey(fct, RUN_CHECK_NAME),
    }
    assert {graph.get(key).group_name for key in (stg, fct, source)} == {"coalesce_qa_env_2"}
    assert graph.get(stg).assets_def is graph.get(fct).assets_def  # one multi-asset: one Coalesce run


def test_an_observed_environment_has_external_nodes_with_the_same_checks_and_lineage():
    """The default: nothing of an observed environment can be materialized from Dagster."""
    graph = build_node_definitions(snapshot(ENVIRONMENT)).resolve_asset_graph()
    stg, fct = (
        dg.AssetKey(["analytics", "staging", "stg_orders"]),
        dg.AssetKey(["analytics", "staging", "fct_orders"]),
    )
    assert graph.get(fct).parent_keys == {stg}
    assert not graph.get(stg).is_executable and not graph.get(fct).is_executable
    assert graph.materializable_asset_keys.isdisjoint({stg, fct})
    assert graph.asset_check_keys == {
        dg.AssetCheckKey(stg, RUN_CHECK_NAME),
        dg.AssetCheckKey(fct, RUN_CHECK_NAME),
    }


def test_each_coalesce_test_is_a_check_on_its_node():
    tested = CoalesceNode(
        id="n3",
        name="DIM_CUSTOMER",
        node_type="Dimension",
        database="Analytics",
        schema="Marts",
        location_name="MARTS",
        columns=(NodeColumn("CUSTOMER_ID", "NUMBER", tests=("Unique", "Not Null")),),
        tests=(
            NodeTest("Row count > 0", "Not empty", continue_on_failure=False, run_order="After"),
            NodeTest("Row count > 0", "again", continue_on_failure=True, run_order="Before"),
        ),
    )
    environment = EnvironmentNodes("1", "Dev", (tested,))
    graph = build_node_definitions(snapshot(environment), orchestrated={"1"}).resolve_asset_graph()
    key = dg.AssetKey(["analytics", "marts", "dim_customer"])
    names = sorted(check.name for check in graph.asset_check_keys)
    assert names == [
        RUN_CHECK_NAME,
        "coalesce_test_customer_id_not_null",
        "coalesce_test_customer_id_unique",
        "coalesce_test_row_count_0",
        "coalesce_test_row_count_0_2",
    ]
    first = graph.get_check_spec(dg.AssetCheckKey(key, "coalesce_test_row_count_0"))
    second = graph.get_check_spec(dg.AssetCheckKey(key, "coalesce_test_row_count_0_2"))
    assert first.blocking and not second.blocking  # continueOnFailure lets the run (and readers) go on
    assert first.description == "Coalesce test Row count > 0: Not empty"


class PrefixedTranslator(DagsterCoalesceTranslator):
    def get_asset_key(self, props: CoalesceNodeProps) -> dg.AssetKey:
        return dg.AssetKey(["warehouse", props.node.name.lower()])


def test_a_subclass_changes_the_keys_of_nodes_and_of_their_downstream_deps():
    graph = build_node_definitions(snapshot(ENVIRONMENT), PrefixedTranslator()).resolve_asset_graph()
    stg, fct = dg.AssetKey(["warehouse", "stg_orders"]), dg.AssetKey(["warehouse", "fct_orders"])
    assert graph.get(fct).parent_keys == {stg}
    assert dg.AssetKey(["analytics", "staging", "stg_orders"]) not in graph.get_all_asset_keys()
    assert dg.AssetCheckKey(fct, RUN_CHECK_NAME) in graph.asset_check_keys


def test_two_nodes_on_one_key_keep_the_first_and_warn(caplog):
    twin = node("n9", "stg_orders", database="ANALYTICS", schema="STAGING")  # same table, other case
    environment = EnvironmentNodes("1", "Development", (STG_ORDERS, twin, FCT_ORDERS))
    with caplog.at_level(logging.WARNING):
        graph = build_node_definitions(snapshot(environment)).resolve_asset_graph()
    stg = dg.AssetKey(["analytics", "staging", "stg_orders"])
    assert graph.get(stg).metadata["coalesce/node_id"] == "n1"
    assert (
        len([key for key in graph.get_all_asset_keys() if "coalesce/node_id" in graph.get(key).metadata]) == 2
    )
    assert "(n9)" in caplog.text and "already taken by" in caplog.text and "(n1)" in caplog.text


def test_a_cyclic_snapshot_still_loads():
    a = node("a", "A", reads=("C",))
    b = node("b", "B", reads=("A",))
    c = node("c", "C", reads=("B",))
    defs = build_node_definitions(snapshot(EnvironmentNodes("1", "Development", (a, b, c))))
    graph = defs.resolve_asset_graph()
    keys = {name: dg.AssetKey(["analytics", "staging", name]) for name in "abc"}
    edges = sum(len(graph.get(key).parent_keys) for key in keys.values())
    assert edges == 2  # one of the three left out
    assert graph.toposorted_asset_keys  # Dagster can order them


class OneGroupTranslator(DagsterCoalesceTranslator):
    def get_group_name(self, props: CoalesceNodeProps) -> str:
        return "coalesce"


@pytest.mark.parametrize(
    ("names", "translator", "group"),
    [
        (("QA-1", "qa 1"), DagsterCoalesceTranslator(), "coalesce_qa_1"),
        (("Development", "Production"), OneGroupTranslator(), "coalesce"),
    ],
    ids=["names-sharing-a-slug", "a-translator-with-one-group"],
)
def test_environments_sharing_a_group_still_load(names, translator, group):
    first = EnvironmentNodes("1", names[0], (STG_ORDERS,))
    second = EnvironmentNodes("2", names[1], (node("x", "X", database="OTHER"),))
    defs = build_node_definitions(snapshot(first, second), translator)
    dg.Definitions.validate_loadable(defs)  # Dagster refuses two ops of one name here
    graph = defs.get_repository_def().asset_graph
    assert {graph.get(key).group_name for key in graph.get_all_asset_keys()} == {group}
    assert len(list(graph.get_all_asset_keys())) == 2
