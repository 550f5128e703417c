"""Example code location: Coalesce nodes automated across tools.

    raw/tpch/src_shipment              (your ingestion: a dlt, Fivetran or Airbyte asset)
      -> coalesce_source/development/raw/tpch/src_shipment   (the Coalesce source node reading it)
      -> Development nodes reading it  (built by Dagster when the raw table updates: one Coalesce run)
      -> reporting/shipments           (a downstream asset of yours)

Production's nodes stay observed only (the default) and are late when Coalesce has not built them
for 26 hours. Run it beside the demo's data with `dagster dev -f examples/node_automation.py`
(docs/node-assets.md, "Declarative automation and freshness"); the test suite runs it under Dagster's automation daemon.
"""

from datetime import timedelta

import dagster as dg

from coalesce_dagster.defs.health.views import GROUP_NAME as HEALTH_GROUP
from coalesce_dagster.defs.metadata import metadata_definitions
from coalesce_dagster.defs.nodes.automation import upstream_tables_updated
from coalesce_dagster.defs.nodes.component import load_node_definitions
from coalesce_dagster.defs.nodes.translator import CoalesceNodeProps, DagsterCoalesceTranslator


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
# The health views have an automation sensor of their own (an asset may have only one).
automation = dg.AutomationConditionSensorDefinition(
    "coalesce_automation",
    target=dg.AssetSelection.all() - dg.AssetSelection.groups(HEALTH_GROUP),
    default_status=dg.DefaultSensorStatus.RUNNING,
)

defs = dg.Definitions.merge(
    metadata_definitions(),
    load_node_definitions(AutomatedNodes(), orchestrate=["Development"]),
    dg.Definitions(assets=[raw_shipments, shipments_report], sensors=[automation]),
)


def _show_one_tick() -> None:
    """`python examples/node_automation.py`: against the bundled simulator, what one automation
    tick requests once the raw table is loaded (the project's snapshot and settings untouched)."""
    import os
    import tempfile

    from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
    from coalesce_dagster.configuration import resolve_source_settings
    from coalesce_dagster.defs.nodes.state import store_snapshot
    from coalesce_simulator import CoalesceSimulator, SimulatorConfig

    with CoalesceSimulator(SimulatorConfig()) as simulator, tempfile.TemporaryDirectory() as scratch:
        os.environ.update(
            SOURCES__COALESCE_SOURCE__BASE_URL=simulator.base_url,
            SOURCES__COALESCE_SOURCE__ACCESS_TOKEN=simulator.config.token,
            COALESCE_DAGSTER__NODES__ENVIRONMENTS="Development",
            COALESCE_DAGSTER__NODES__SNAPSHOT_PATH=f"{scratch}/nodes.json",
        )
        store_snapshot(fetch_node_snapshot(resolve_source_settings(), ["Development"]))
        example = dg.Definitions.merge(
            load_node_definitions(AutomatedNodes(), orchestrate=["Development"]),
            dg.Definitions(assets=[raw_shipments, shipments_report]),
        )
        with dg.instance_for_test() as instance:
            first = dg.evaluate_automation_conditions(defs=example, instance=instance)
            print(f"Before the raw table is loaded: {first.total_requested} asset(s) requested.")
            instance.report_runless_asset_event(dg.AssetMaterialization(raw_shipments.key))
            second = dg.evaluate_automation_conditions(defs=example, instance=instance, cursor=first.cursor)
        requested = sorted(
            key.to_user_string()
            for key in example.resolve_asset_graph().get_all_asset_keys()
            if second.get_num_requested(key)
        )
        print(
            f"After {raw_shipments.key.to_user_string()} is loaded, one tick requests: {', '.join(requested)}"
        )
        print("Dagster runs those Development nodes as one Coalesce run.")


if __name__ == "__main__":
    _show_one_tick()
