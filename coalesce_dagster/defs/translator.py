"""Map each dlt resource of `coalesce_source` to a Dagster asset spec."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from ..configuration import DestinationSettings, names, read_section

DESCRIPTIONS: dict[str, str] = {
    "environments": "Coalesce environments as listed by `GET /api/v1/environments` (summary fields).",
    "environment": "Full detail of each environment (`GET /api/v1/environments/{id}`): git state, "
    "storage mappings, runtime parameters.",
    "environment_nodes": "Every node deployed to each environment, with columns (child table "
    "`environment_nodes__columns`) and lineage (`source_mapping`). Reflects Coalesce's current state.",
    "jobs": "Saved jobs of each environment (`GET /api/v1/environments/{id}/jobs`): id, name and node "
    "selectors, to pick a job by name. None for an environment whose deployment has no jobs list (404).",
    "runs": "Coalesce deploy and refresh runs (`GET /api/v1/runs`), loaded incrementally; runs still "
    "in flight are re-read until they finish.",
    "run_results": "Per-node results of each run (`GET /api/v1/runs/{id}/results`), with each "
    "node's queries in the child table `run_results__query_results`.",
    "run_status": "Scheduler status of each run (`GET /scheduler/runStatus`), with its UI link.",
    "projects": "Coalesce projects, with their workspaces and jobs.",
    "users": "Users of the Coalesce organisation.",
}

# A run's results and status hang off the run; the rest hang off the environment list.
PARENTS: dict[str, str] = {
    "environment": "environments",
    "environment_nodes": "environments",
    "jobs": "environments",
    "run_results": "runs",
    "run_status": "runs",
}


# Every table is synced at least daily (the schedules); a day and two hours leaves room for a slow
# sync. Dagster's freshness daemon (`freshness: enabled` in dagster.yaml) marks a table late (WARN)
# after 25 hours and stale (FAIL) after 26.
FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=26), warn_window=timedelta(hours=25)
)


def asset_key(resource_name: str) -> dg.AssetKey:
    return dg.AssetKey([names.KEY_PREFIX, resource_name])


class CoalesceTranslator(DagsterDltTranslator):
    """Keys `coalesce/<resource>` in group `coalesce`; children depend on their parent asset."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        name = data.resource.name
        parent = PARENTS.get(name)
        if data.pipeline is not None:  # the definitions' pipeline, built from `[coalesce_dagster]`
            destination, dataset = data.pipeline.destination.destination_name, data.pipeline.dataset_name
        else:
            configured = read_section(DestinationSettings, strict=False)
            destination, dataset = configured.destination, configured.dataset_name
        return spec.replace_attributes(
            key=asset_key(name),
            deps=[asset_key(parent)] if parent else [],
            group_name=names.GROUP_NAME,
            description=DESCRIPTIONS.get(name, spec.description),
            kinds={"coalesce", "dlt", destination},
            freshness_policy=FRESHNESS_POLICY,
        ).merge_attributes(
            metadata={"dagster/table_name": f"{dataset}.{name}"},
        )
