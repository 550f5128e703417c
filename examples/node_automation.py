"""Example code location: Coalesce nodes automated across tools.

    raw/tpch/src_shipment              (your ingestion: a dlt, Fivetran or Airbyte asset)
      -> coalesce_source/development/raw/tpch/src_shipment   (the Coalesce source node reading it)
      -> Development nodes reading it  (built by Dagster when the raw table updates: one Coalesce run)
      -> reporting/shipments           (a downstream asset of yours)

Production's nodes stay observed only (the default) and are late when Coalesce has not built them
for 26 hours. Run it beside the demo's data with `dagster dev -f examples/node_automation.py`
(README: declarative automation); the test suite runs it under Dagster's automation daemon.
"""

from datetime import timedelta

import dagster as dg

from coalesce_dagster.defs.metadata import metadata_definitions
from coalesce_dagster.defs.node_automation import upstream_tables_updated
from coalesce_dagster.defs.node_component import load_node_definitions
from coalesce_dagster.defs.node_translator import CoalesceNodeProps, DagsterCoalesceTranslator


class AutomatedNodes(DagsterCoalesceTranslator):
    def get_automation_condition(self, props: CoalesceNodeProps) -> dg.AutomationCondition | None:
        if props.environment.name == "Development":
            return upstream_tables_updated()
        return None

    def get_freshness_policy(self, props: CoalesceNodeProps) -> dg.FreshnessPolicy | None:
        if props.environment.name == "Production":
            return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))
        return None


@dg.asset(key=["raw", "tpch", "src_shipment"], kinds={"dlt"}, group_name="ingestion")
def raw_shipments() -> None:
    """Stands for your ingestion of the raw table Coalesce's source node SRC_SHIPMENT reads."""


@dg.asset(
    key=["reporting", "shipments"],
    deps=[dg.AssetKey(["dev_edw", "stage", "stg_shipment"])],
    automation_condition=dg.AutomationCondition.eager(),
    group_name="reporting",
)
def shipments_report() -> None:
    """Stands for a BI asset reading a Coalesce table."""


# Dagster makes a default automation sensor, stopped until switched on in the UI; this one runs.
automation = dg.AutomationConditionSensorDefinition(
    "coalesce_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
)

defs = dg.Definitions.merge(
    metadata_definitions(),
    load_node_definitions(AutomatedNodes(), orchestrate=["Development"]),
    dg.Definitions(assets=[raw_shipments, shipments_report], sensors=[automation]),
)
