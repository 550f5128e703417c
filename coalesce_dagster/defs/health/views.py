"""Health views: SQL views in the destination (schema `<dataset>_health`, beside the loaded tables)
over the run tables, and one Dagster step that (re)creates them and records their headline figures.

- `run_health_daily`: per environment, saved job and day: runs, failures, success rate, p50/p95
  duration (seconds).
- `node_health`: per node, over the 7 and the 30 days up to the newest run loaded: runs, failures,
  p50/p95 duration, and the 7-day p50 against the 23 days before it (growth).

Windows end at the newest run loaded rather than now, so a history loaded late (or the demo's)
still has figures; on a live account the two coincide. Every figure is numeric metadata, which
Dagster plots across materializations (the Plots tab: e.g. each environment's 30-day success rate),
and the worst offenders are a Markdown table. The SQL is plain enough for DuckDB and Postgres both.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from ...configuration import names
from ...pipeline import make_pipeline, private_working_dir
from ..translator import asset_key
from .sql import FAILED, FAILED_NODE_STATES_SQL, SUCCEEDED, existing_tables, literal, rows

GROUP_NAME = "coalesce_health"
RUN_HEALTH = dg.AssetKey([names.KEY_PREFIX, "health", "run_health_daily"])
NODE_HEALTH = dg.AssetKey([names.KEY_PREFIX, "health", "node_health"])
# The worst offenders listed in each Markdown table.
TOP = 10
WINDOWS = (7, 30)
_TERMINAL = ", ".join(literal(status) for status in (SUCCEEDED, FAILED, "canceled"))


def health_schema(dataset_name: str) -> str:
    return f"{dataset_name}_health"


def _run_health_sql(t: dict[str, str], view: str) -> str:
    return f"""
    CREATE VIEW {view} AS
    WITH finished AS (
        SELECT r.environment_id, coalesce(e.name, r.environment_id) AS environment,
               CAST(r.run_details__job_id AS VARCHAR) AS job_id, j.name AS job,
               CAST(r.run_start_time AS DATE) AS day, r.run_status,
               extract(epoch FROM (r.run_end_time - r.run_start_time)) AS seconds
        FROM {t["runs"]} r
        LEFT JOIN {t["environments"]} e ON e.id = r.environment_id
        LEFT JOIN {t["jobs"]} j ON j.environment_id = r.environment_id
             AND j.id = CAST(r.run_details__job_id AS VARCHAR)
        WHERE r.run_status IN ({_TERMINAL})
    )
    SELECT environment_id, environment, job_id, job, day, count(*) AS runs,
           count(*) FILTER (WHERE run_status = {literal(FAILED)}) AS failures,
           avg(CASE WHEN run_status = {literal(SUCCEEDED)} THEN 1.0 ELSE 0.0 END) AS success_rate,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS p50_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds) AS p95_seconds
    FROM finished GROUP BY environment_id, environment, job_id, job, day
    """


def _node_health_sql(t: dict[str, str], view: str) -> str:
    windows = " UNION ALL ".join(f"SELECT {days} AS days" for days in WINDOWS)
    return f"""
    CREATE VIEW {view} AS
    WITH durations AS (
        SELECT _dlt_parent_id, extract(epoch FROM (max(end_time) - min(start_time))) AS seconds
        FROM {t["run_results__query_results"]} GROUP BY _dlt_parent_id
    ), node_runs AS (
        SELECT r.environment_id, coalesce(e.name, r.environment_id) AS environment, rr.node_id,
               rr.name AS node, r.run_start_time, d.seconds,
               CASE WHEN lower(rr.run_state) IN ({FAILED_NODE_STATES_SQL}) THEN 1 ELSE 0 END AS failed
        FROM {t["run_results"]} rr JOIN {t["runs"]} r ON r.id = rr.run_id
        LEFT JOIN {t["environments"]} e ON e.id = r.environment_id
        LEFT JOIN durations d ON d._dlt_parent_id = rr._dlt_id
    ), newest AS (SELECT max(run_start_time) AS at FROM {t["runs"]}),
    windows AS ({windows})
    SELECT w.days AS window_days, n.environment_id, n.environment, n.node_id, max(n.node) AS node,
           count(*) FILTER (WHERE n.run_start_time > x.at - w.days * INTERVAL '1 day') AS runs,
           coalesce(sum(n.failed) FILTER (WHERE n.run_start_time > x.at - w.days * INTERVAL '1 day'), 0)
               AS failures,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY n.seconds)
               FILTER (WHERE n.run_start_time > x.at - w.days * INTERVAL '1 day') AS p50_seconds,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY n.seconds)
               FILTER (WHERE n.run_start_time > x.at - w.days * INTERVAL '1 day') AS p95_seconds,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY n.seconds)
               FILTER (WHERE n.run_start_time <= x.at - w.days * INTERVAL '1 day'
                       AND n.run_start_time > x.at - 30 * INTERVAL '1 day') AS p50_before_seconds
    FROM node_runs n CROSS JOIN newest x CROSS JOIN windows w
    GROUP BY w.days, n.environment_id, n.environment, n.node_id
    """


READS = ("runs", "run_results", "run_results__query_results", "environments", "jobs")
# What stands in for a table not loaded yet (names of environments and jobs, node queries): the views
# still build, with names falling back to ids and durations unknown.
_EMPTY = {
    "environments": "(SELECT CAST(NULL AS VARCHAR) AS id, CAST(NULL AS VARCHAR) AS name WHERE 1 = 0)",
    "jobs": "(SELECT CAST(NULL AS VARCHAR) AS environment_id, CAST(NULL AS VARCHAR) AS id, "
    "CAST(NULL AS VARCHAR) AS name WHERE 1 = 0)",
    "run_results__query_results": "(SELECT CAST(NULL AS VARCHAR) AS _dlt_parent_id, "
    "CAST(NULL AS TIMESTAMP) AS start_time, CAST(NULL AS TIMESTAMP) AS end_time WHERE 1 = 0)",
}


def create_views(client: Any) -> dict[str, str]:
    """(Re)create both views; `{asset name: qualified view name}`."""
    schema = health_schema(client.dataset_name)
    present = existing_tables(client)
    tables = {
        name: client.make_qualified_table_name(name)
        if name in present or name not in _EMPTY
        else _EMPTY[name]
        for name in READS
    }
    quoted_schema = client.escape_column_name(schema)
    client.execute_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
    views = {
        "run_health_daily": f"{quoted_schema}.{client.escape_column_name('run_health_daily')}",
        "node_health": f"{quoted_schema}.{client.escape_column_name('node_health')}",
    }
    for name, build in (("run_health_daily", _run_health_sql), ("node_health", _node_health_sql)):
        client.execute_sql(f"DROP VIEW IF EXISTS {views[name]}")
        client.execute_sql(build(tables, views[name]))
    return views


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.0f}"


def run_health_metadata(client: Any, view: str) -> dict[str, Any]:
    """The last 30 days up to the newest run: per environment, and the worst saved jobs."""
    last_30 = f"day > (SELECT max(day) FROM {view}) - 30"
    per_environment = rows(
        client,
        f"SELECT environment, sum(runs), sum(failures), sum(success_rate * runs) / sum(runs), max(p95_seconds) "
        f"FROM {view} WHERE {last_30} GROUP BY environment ORDER BY environment",
    )
    worst = rows(
        client,
        f"SELECT environment, coalesce(job, job_id, '(no saved job)'), sum(runs), sum(failures), "
        f"sum(success_rate * runs) / sum(runs) AS rate FROM {view} WHERE {last_30} "
        f"GROUP BY environment, job, job_id ORDER BY rate, sum(failures) DESC LIMIT {TOP}",
    )
    total_runs = sum(int(row[1]) for row in per_environment)
    total_failures = sum(int(row[2]) for row in per_environment)
    # Completed runs over finished ones, as each environment's rate: a canceled run is no success.
    total_completed = sum(float(row[3]) * int(row[1]) for row in per_environment)
    metadata: dict[str, Any] = {
        "runs_30d": dg.MetadataValue.int(total_runs),
        "failures_30d": dg.MetadataValue.int(total_failures),
        "success_rate_30d": dg.MetadataValue.float(
            round(total_completed / total_runs, 4) if total_runs else 1.0
        ),
    }
    for environment, _, _, rate, p95 in per_environment:
        metadata[f"success_rate_30d/{environment}"] = dg.MetadataValue.float(round(float(rate), 4))
        if p95 is not None:
            metadata[f"p95_seconds_30d/{environment}"] = dg.MetadataValue.float(round(float(p95), 1))
    lines = ["| environment | saved job | runs | failures | success rate |", "|---|---|---|---|---|"]
    lines += [
        f"| {env} | {job} | {runs} | {fails} | {float(rate):.0%} |" for env, job, runs, fails, rate in worst
    ]
    metadata["worst_jobs_30d"] = dg.MetadataValue.md("\n".join(lines))
    metadata["dagster/row_count"] = dg.MetadataValue.int(rows(client, f"SELECT count(*) FROM {view}")[0][0])
    return metadata


def node_health_metadata(client: Any, view: str) -> dict[str, Any]:
    def top(window: int, order: str, where: str = "TRUE") -> list[tuple[Any, ...]]:
        return rows(
            client,
            f"SELECT environment, node, runs, failures, p50_seconds, p95_seconds, p50_before_seconds "
            f"FROM {view} WHERE window_days = {window} AND runs > 0 AND {where} ORDER BY {order} LIMIT {TOP}",
        )

    slowest = top(30, "p95_seconds DESC NULLS LAST", "p95_seconds IS NOT NULL")
    failing = top(30, "failures DESC, runs DESC", "failures > 0")
    growing = top(
        7,
        "p50_seconds - p50_before_seconds DESC",
        "p50_seconds IS NOT NULL AND p50_before_seconds IS NOT NULL",
    )
    totals = rows(
        client,
        f"SELECT window_days, count(*) FILTER (WHERE failures > 0), coalesce(sum(failures), 0), max(p95_seconds) "
        f"FROM {view} WHERE runs > 0 GROUP BY window_days",
    )
    metadata: dict[str, Any] = {}
    for window, failing_nodes, failures, p95 in totals:
        metadata[f"failing_nodes_{window}d"] = dg.MetadataValue.int(int(failing_nodes))
        metadata[f"node_failures_{window}d"] = dg.MetadataValue.int(int(failures))
        if p95 is not None:
            metadata[f"slowest_p95_seconds_{window}d"] = dg.MetadataValue.float(round(float(p95), 1))
    header = "| environment | node | runs | failures | p50 s | p95 s | p50 s, 23 days before |\n|---|---|---|---|---|---|---|"

    def table(found: list[tuple[Any, ...]]) -> str:
        body = [
            f"| {env} | {node} | {runs} | {fails} | {_seconds(p50)} | {_seconds(p95)} | {_seconds(before)} |"
            for env, node, runs, fails, p50, p95, before in found
        ]
        return "\n".join([header, *body]) if body else "none"

    metadata["slowest_nodes_30d"] = dg.MetadataValue.md(table(slowest))
    metadata["most_failing_nodes_30d"] = dg.MetadataValue.md(table(failing))
    metadata["growing_nodes_7d"] = dg.MetadataValue.md(table(growing))
    return metadata


_DEPS = [asset_key(name) for name in ("runs", "run_results", "environments", "jobs")]


# Refreshed after each load of what they read (eager), but not after one whose blocking integrity
# checks failed (a duplicated run): in a run of their own, as the automation sensor launches them,
# blocking alone would not stop them; this condition does.
_AFTER_CLEAN_LOADS = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RUN_HEALTH,
            deps=_DEPS,
            group_name=GROUP_NAME,
            kinds={"coalesce", "sql"},
            description="Coalesce runs per environment, saved job and day: runs, failures, success rate, "
            "p50/p95 duration. A view in `<dataset>_health`; figures cover the 30 days up to the newest run.",
            automation_condition=_AFTER_CLEAN_LOADS,
        ),
        dg.AssetSpec(
            NODE_HEALTH,
            deps=_DEPS,
            group_name=GROUP_NAME,
            kinds={"coalesce", "sql"},
            description="Coalesce nodes over 7 and 30 days: slowest (p95), most failing, and whose duration "
            "grew most. A view in `<dataset>_health`.",
            automation_condition=_AFTER_CLEAN_LOADS,
        ),
    ],
    name="coalesce_health_views",
    can_subset=True,
)
def coalesce_health_views(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
    """(Re)create the views in the destination, and record their headline figures."""
    with private_working_dir(f"health-{context.run_id[:8]}-") as working_dir:
        with make_pipeline(working_dir).sql_client() as client:
            views = create_views(client)
            if RUN_HEALTH in context.selected_asset_keys:
                metadata = run_health_metadata(client, views["run_health_daily"])
                yield dg.MaterializeResult(
                    asset_key=RUN_HEALTH, metadata={**metadata, **_table_name(client, "run_health_daily")}
                )
            if NODE_HEALTH in context.selected_asset_keys:
                metadata = node_health_metadata(client, views["node_health"])
                yield dg.MaterializeResult(
                    asset_key=NODE_HEALTH, metadata={**metadata, **_table_name(client, "node_health")}
                )


def _table_name(client: Any, view: str) -> dict[str, Any]:
    return {"dagster/table_name": f"{health_schema(client.dataset_name)}.{view}"}


# Runs the views' `eager` conditions: after a load of what they read (the sensor's, a schedule's, the
# UI's), one run refreshes them. Running by default, unlike Dagster's own default sensor.
health_automation_sensor = dg.AutomationConditionSensorDefinition(
    "coalesce_health_automation",
    # The two views by key, not their group: a Coalesce environment named "Health" gives its node
    # assets a group of the same name, and this always-running sensor must never launch a build.
    target=dg.AssetSelection.assets(RUN_HEALTH, NODE_HEALTH),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Refreshes the Coalesce health views after each load of the tables they read.",
)
