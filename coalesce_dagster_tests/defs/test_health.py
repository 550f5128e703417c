"""Coalesce health (`defs/health/`): readable load metadata and the data dictionary, the checks the
load evaluates on its tables, Coalesce's own freshness turning red after one sensor tick and one load,
and the health views computed in the destination (DuckDB and Postgres), all through real Dagster
against the simulator."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from coalesce_dagster.defs.assets import coalesce_assets
from coalesce_dagster.defs.health.coalesce_freshness import FAILURES_CHECK, FRESHNESS_CHECK
from coalesce_dagster.defs.health.column_docs import undescribed_columns
from coalesce_dagster.defs.health.views import NODE_HEALTH, RUN_HEALTH, coalesce_health_views
from coalesce_dagster.defs.resources import CoalesceResource, resource_defs
from coalesce_dagster.defs.sensors import coalesce_run_status_sensor
from coalesce_dagster_tests.helpers import materialize, on_every_destination
from coalesce_simulator import SimulatorConfig

RUNS = dg.AssetKey(["coalesce", "runs"])
RUN_TABLES = ["runs", "run_results", "run_status"]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=3, nodes_per_environment=8, runs=30, results_per_run=4)


def _checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}


def _production(simulator) -> str:
    return next(i for i, env in simulator.state.environments.items() if env["name"] == "Production")


def test_every_loaded_column_is_described_and_the_run_metadata_reads_first(simulator, instance, warehouse):
    result = materialize(instance)
    assert result.success

    loaded = {}
    for table, column in warehouse.rows(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'coalesce_data' "
        "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\'"
    ):
        loaded.setdefault(table, []).append(column)
    assert len(loaded) >= 9
    assert undescribed_columns(loaded) == []

    events = {
        e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    runs = events["runs"]
    # What a person reads first: this load's rows beside the table's total, then the runs it covered.
    assert list(runs)[:3] == ["rows_loaded", "dagster/row_count", "coalesce/runs_covered"]
    assert runs["coalesce/runs_covered"].value == warehouse.count("runs") == 30
    assert runs["coalesce/runs_failed"].value == warehouse.count("runs", "WHERE run_status = 'failed'") > 0
    failed_node = warehouse.scalar(
        "SELECT name FROM coalesce_data.run_results WHERE run_state IN ('error', 'failed') LIMIT 1"
    )
    assert failed_node in runs["coalesce/runs"].value
    # dlt's load details come last, its job list one line per job without the working folder's path.
    assert list(runs)[-1] == "dlt/load_jobs" and "jobs" not in runs
    assert "/" not in runs["dlt/load_jobs"].value
    assert runs["dagster/table_name"].value == "coalesce_data.runs"
    columns = {c.name: c.description for c in runs["dagster/column_schema"].value.columns}
    assert "canceled" in columns["run_status"]
    child = events["run_results"]["run_results__query_results"].value
    assert all(column.description for column in child.columns)


def test_integrity_checks_pass_then_a_duplicate_run_blocks_the_health_views(simulator, instance, duckdb_file):
    assets = [coalesce_assets, coalesce_health_views]
    first = dg.materialize(assets, instance=instance, resources=resource_defs())
    assert first.success
    checks = _checks(first)
    integrity = {
        key: e for key, e in checks.items() if key[1] == "unique_key" or key[1].startswith("no_orphans")
    }
    assert len(integrity) == 13 and all(e.passed for e in integrity.values()), integrity

    with duckdb.connect(str(duckdb_file)) as con:  # corrupt the table behind the loader's back
        con.execute("INSERT INTO coalesce_data.runs SELECT * FROM coalesce_data.runs WHERE id = 3")
    second = dg.materialize(
        assets,
        instance=instance,
        resources=resource_defs(),
        selection=dg.AssetSelection.assets(*[dg.AssetKey(["coalesce", t]) for t in RUN_TABLES], RUN_HEALTH),
        raise_on_error=False,
    )
    assert not second.success
    duplicate = _checks(second)[("runs", "unique_key")]
    assert not duplicate.passed and "3" in duplicate.description
    assert duplicate.severity == dg.AssetCheckSeverity.ERROR
    # Blocking: the views downstream are not computed from a table with a duplicated run.
    assert RUN_HEALTH not in {e.asset_key for e in second.get_asset_materialization_events()}


def test_a_failing_production_run_turns_freshness_red_after_one_tick_and_one_load(
    simulator, instance, monkeypatch
):
    monkeypatch.setenv(
        "COALESCE_DAGSTER__HEALTH__FRESHNESS",
        json.dumps(
            [
                {"environment": "Production", "hours": 24, "failures_in_a_row": 1},
                {"environment": "QA", "hours": 1, "severity": "warn"},
            ]
        ),
    )
    state = simulator.state
    state.use_real_clock()
    production = _production(simulator)
    state.add_runs(1, environment_id=production, status="completed")  # a success just now
    first = materialize(instance, selection=RUN_TABLES + ["environments"])
    freshness = _checks(first)[("runs", FRESHNESS_CHECK)]
    # Production ran well within 24 h; QA's last success is in the old history: a warning only.
    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.WARN
    assert freshness.description.startswith("QA: last success") and "Production" not in freshness.description
    assert "| Production | 24 h |" in freshness.metadata["verdicts"].value

    with dg.build_sensor_context(instance=instance, resources={"coalesce": CoalesceResource()}) as context:
        cursor = coalesce_run_status_sensor(context).cursor
    (failed_run,) = state.add_runs(1, environment_id=production, status="running")
    state.set_run_status(failed_run, "failed")
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"coalesce": CoalesceResource()}
    ) as context:
        (request,) = coalesce_run_status_sensor(context).run_requests
    second = materialize(instance, selection=RUN_TABLES, run_config=request.run_config, tags=request.tags)
    assert second.success  # Coalesce's failure is a failed check, never a failed load
    freshness = _checks(second)[("runs", FRESHNESS_CHECK)]
    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.ERROR
    assert "Production: failed 1 times in a row (limit 1)" in freshness.description


def test_failures_in_a_row_are_counted_per_environment_since_its_last_success(
    simulator, instance, monkeypatch
):
    monkeypatch.setenv("COALESCE_DAGSTER__HEALTH__FAILURES_IN_A_ROW", "2")
    monkeypatch.setenv("COALESCE_DAGSTER__HEALTH__FAILURES_IN_A_ROW_SEVERITY", "error")
    production = _production(simulator)
    simulator.state.add_runs(1, environment_id=production, status="completed")
    simulator.state.add_runs(2, environment_id=production, status="failed")
    result = materialize(instance, selection=RUN_TABLES + ["environments"])
    streaks = _checks(result)[("runs", FAILURES_CHECK)]
    assert not streaks.passed and streaks.severity == dg.AssetCheckSeverity.ERROR
    assert "Production: 2 failures in a row" in streaks.description
    assert streaks.metadata["longest_failure_streak"].value == 2


def test_the_freshness_checks_run_alone_without_loading(simulator, instance):
    assert materialize(instance, selection=RUN_TABLES).success
    requests_before = simulator.request_count()
    checks_only = dg.materialize(
        [coalesce_assets],
        instance=instance,
        resources=resource_defs(),
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(RUNS, FRESHNESS_CHECK), dg.AssetCheckKey(RUNS, FAILURES_CHECK)
        ),
    )
    assert checks_only.success
    assert {key[1] for key in _checks(checks_only)} == {FRESHNESS_CHECK, FAILURES_CHECK}
    assert checks_only.get_asset_materialization_events() == []
    assert simulator.request_count() == requests_before  # nothing asked of Coalesce


@on_every_destination
def test_health_views_are_computed_in_the_destination(destination, simulator, instance, warehouse):
    result = dg.materialize(
        [coalesce_assets, coalesce_health_views], instance=instance, resources=resource_defs()
    )
    assert result.success
    events = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}

    runs = events[RUN_HEALTH]
    finished = warehouse.count("runs", "WHERE run_status IN ('completed', 'failed', 'canceled')")
    failed = warehouse.count("runs", "WHERE run_status = 'failed'")
    # Every run of the simulated history lies within 30 days of the newest one.
    assert runs["runs_30d"].value == finished and runs["failures_30d"].value == failed > 0
    assert runs["success_rate_30d/Production"].value == pytest.approx(
        float(
            warehouse.scalar(
                "SELECT avg(CASE WHEN r.run_status = 'completed' THEN 1.0 ELSE 0.0 END) FROM coalesce_data.runs r "
                "JOIN coalesce_data.environments e ON e.id = r.environment_id WHERE e.name = 'Production' "
                "AND r.run_status IN ('completed', 'failed', 'canceled')"
            )
        ),
        abs=1e-4,
    )
    assert warehouse.scalar("SELECT sum(runs) FROM coalesce_data_health.run_health_daily") == finished
    # The overall rate is the same figure over every environment: a canceled run is no success.
    completed = warehouse.count("runs", "WHERE run_status = 'completed'")
    assert warehouse.count("runs", "WHERE run_status = 'canceled'") > 0  # so the two readings differ
    assert runs["success_rate_30d"].value == pytest.approx(completed / finished, abs=1e-4)

    nodes = events[NODE_HEALTH]
    failed_nodes = warehouse.count("run_results", "WHERE run_state IN ('error', 'failed')")
    assert nodes["node_failures_30d"].value == failed_nodes > 0
    a_failed_node = warehouse.scalar(
        "SELECT name FROM coalesce_data.run_results WHERE run_state IN ('error', 'failed') LIMIT 1"
    )
    assert a_failed_node in nodes["most_failing_nodes_30d"].value
    assert nodes["slowest_p95_seconds_30d"].value > 0


def test_a_load_of_what_the_views_read_requests_them(simulator, instance):
    """The views' `eager` condition, as the code location's automation sensor evaluates it."""
    from coalesce_dagster.definitions import defs

    health = dg.AssetSelection.groups("coalesce_health")
    assert materialize(instance).success  # eager waits until every table the views read exists
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=health)
    assert materialize(instance, selection=RUN_TABLES).success  # what the sensor loads
    after = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=health, cursor=before.cursor
    )
    assert (after.get_num_requested(RUN_HEALTH), after.get_num_requested(NODE_HEALTH)) == (1, 1)


def test_a_load_whose_blocking_checks_failed_does_not_request_the_views(simulator, instance, duckdb_file):
    """The automation sensor refreshes the views in runs of their own, where blocking cannot stop
    them: their condition waits for the upstream blocking checks to pass."""
    from coalesce_dagster.definitions import defs

    health = dg.AssetSelection.groups("coalesce_health")
    assert materialize(instance).success
    before = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=health)
    with duckdb.connect(str(duckdb_file)) as con:  # a duplicated run, behind the loader's back
        con.execute("INSERT INTO coalesce_data.runs SELECT * FROM coalesce_data.runs WHERE id = 3")
    assert not materialize(
        instance, selection=RUN_TABLES, raise_on_error=False
    ).success  # as the sensor loads
    after = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, asset_selection=health, cursor=before.cursor
    )
    assert (after.get_num_requested(RUN_HEALTH), after.get_num_requested(NODE_HEALTH)) == (0, 0)


def test_the_views_build_with_only_the_run_tables_loaded(simulator, instance):
    """Names fall back to ids while environments and jobs are not loaded yet."""
    assert materialize(instance, selection=RUN_TABLES).success
    result = dg.materialize([coalesce_health_views], instance=instance)
    runs = result.asset_materializations_for_node("coalesce_health_views")[0]
    assert result.success and runs.metadata["runs_30d"].value > 0
    assert "success_rate_30d/1" in runs.metadata  # environment 1, named by its id


ALERT_SNIPPET = re.compile(r"readme-test: skip an example to adapt, run by[^\n]*\n```python\n(.*?)```", re.S)


class Webhook:
    """A loopback webhook that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        posted = self.posted = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_alert_sensor_of_the_guide_posts_each_new_failure_once(simulator, instance, monkeypatch):
    """docs/health.md's alerting example, as written there, against a webhook of the test's own."""
    guide = (Path(__file__).resolve().parents[2] / "docs" / "health.md").read_text()
    (snippet,) = ALERT_SNIPPET.findall(guide)
    namespace: dict = {}
    exec(compile(snippet, "docs/health.md", "exec"), namespace)
    alerts = namespace["coalesce_check_alerts"]
    webhook = Webhook()
    monkeypatch.setenv("ALERT_WEBHOOK", webhook.url)
    monkeypatch.setenv("COALESCE_DAGSTER__HEALTH__FAILURES_IN_A_ROW", "2")
    production = _production(simulator)
    simulator.state.add_runs(1, environment_id=production, status="completed")
    simulator.state.add_runs(2, environment_id=production, status="failed")

    def tick(cursor):
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            alerts(context)
            return context.cursor

    try:
        assert materialize(instance, selection=RUN_TABLES + ["environments"]).success
        cursor = tick(None)
        assert [post["text"].split(":")[0] for post in webhook.posted] == [FAILURES_CHECK]
        cursor = tick(cursor)
        assert len(webhook.posted) == 1  # the same evaluation is not posted twice
        assert materialize(instance, selection=RUN_TABLES).success  # evaluated again, failing again
        tick(cursor)
        assert len(webhook.posted) == 2
    finally:
        webhook.close()
