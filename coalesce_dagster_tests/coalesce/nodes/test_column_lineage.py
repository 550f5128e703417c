"""Fast tests of column-level lineage (coalesce/nodes/column_lineage.py): both reference shapes of the
API notes §11.4, and references that name nothing (left out, said)."""

from __future__ import annotations

from coalesce_dagster.coalesce.nodes import CoalesceNode, ColumnRef, EnvironmentNodes, NodeColumn
from coalesce_dagster.coalesce.nodes.column_lineage import resolve_column_lineage


def node(node_id: str, name: str, *columns: NodeColumn) -> CoalesceNode:
    return CoalesceNode(node_id, name, "Stage", "DB", "STAGING", "STAGING", columns=columns)


ORDERS = node("n1", "STG_ORDERS", NodeColumn("ORDER_ID", id="c1"), NodeColumn("AMOUNT", id="c2"))
CUSTOMERS = node("n2", "STG_CUSTOMERS", NodeColumn("CUSTOMER_ID", id="c3"), NodeColumn("AMOUNT", id="c4"))


def reader(*columns: NodeColumn) -> CoalesceNode:
    return node("n3", "FCT_ORDERS", *columns)


def resolve(target: CoalesceNode, upstream=(ORDERS, CUSTOMERS)):
    environment = EnvironmentNodes("1", "Dev", (ORDERS, CUSTOMERS, target))
    return resolve_column_lineage(environment, target, upstream)


def test_references_by_node_and_column_id():
    fct = reader(NodeColumn("ORDER_ID", sources=(ColumnRef("c1", node_id="n1"),)))
    lineage = resolve(fct)
    assert lineage.sources == {"ORDER_ID": ((ORDERS, "ORDER_ID"),)} and lineage.problems == []


def test_references_by_table_and_column_name_qualified_or_not_in_any_case():
    fct = reader(
        NodeColumn("ORDER_ID", sources=(ColumnRef("order_id", table='"DB"."STAGING"."STG_ORDERS"'),)),
        NodeColumn("CUSTOMER_ID", sources=(ColumnRef("CUSTOMER_ID", table="stg_customers"),)),
    )
    lineage = resolve(fct)
    assert lineage.sources == {
        "ORDER_ID": ((ORDERS, "ORDER_ID"),),
        "CUSTOMER_ID": ((CUSTOMERS, "CUSTOMER_ID"),),
    }


def test_an_unnamed_table_is_found_among_the_nodes_read_when_one_column_fits():
    fct = reader(NodeColumn("CUSTOMER_ID", sources=(ColumnRef("CUSTOMER_ID"),)))
    assert resolve(fct).sources == {"CUSTOMER_ID": ((CUSTOMERS, "CUSTOMER_ID"),)}


def test_a_column_that_fits_two_upstream_columns_is_left_out_and_said():
    fct = reader(NodeColumn("AMOUNT", sources=(ColumnRef("AMOUNT"),)))
    lineage = resolve(fct)
    assert lineage.sources == {}
    assert lineage.problems == [
        "Column STAGING.FCT_ORDERS.AMOUNT in environment 'Dev' reads column AMOUNT of an unnamed table, "
        "which matches 2 node columns; that column dependency is left out."
    ]


def test_dangling_references_are_left_out_and_the_rest_kept():
    fct = reader(
        NodeColumn(
            "ORDER_ID",
            sources=(
                ColumnRef("c9", node_id="n1"),  # no such column
                ColumnRef("c1", node_id="gone"),  # no such node
                ColumnRef("X", table="NOPE"),  # no such table
                ColumnRef("c1", node_id="n1"),
            ),
        )
    )
    lineage = resolve(fct)
    assert lineage.sources == {"ORDER_ID": ((ORDERS, "ORDER_ID"),)}
    assert len(lineage.problems) == 3
    assert "column id c9 of STAGING.STG_ORDERS" in lineage.problems[0]
    assert "node id gone" in lineage.problems[1] and "table NOPE" in lineage.problems[2]
