"""One benchmark scenario, run in a fresh process by `benchmarks.run` (which measures it from outside).

    python -m benchmarks.scenario baseline --base-url URL --token T --duckdb FILE --pipelines-dir DIR
    python -m benchmarks.scenario full     --base-url URL --token T --duckdb FILE --pipelines-dir DIR
    python -m benchmarks.scenario sensor_tick --base-url URL --token T
    python -m benchmarks.scenario node_snapshot --nodes N

`full` is this project's load: `coalesce_source` through `make_pipeline()` and `run_load`, with the
project's own settings; `benchmarks.run` runs it again on the same files for `incremental` and
`one_percent`. `sensor_tick` times the run-status sensor's logic (`run_tracker.track_runs`) with 100
runs in flight. `node_snapshot` stores the node snapshot of one simulated environment of N nodes
where `COALESCE_DAGSTER__NODES__SNAPSHOT_PATH` says, and counts the node assets the definitions
then load (`benchmarks.run` times that load in fresh processes of its own: `node_definitions`).

The last stdout line is `BENCHMARK_RESULT <json>`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC
from typing import Any

RESULT_MARKER = "BENCHMARK_RESULT "
SENSOR_RUNS_IN_FLIGHT = 100


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_MARKER + json.dumps(result, sort_keys=True), flush=True)


def _rows_loaded(pipeline: Any) -> dict[str, int]:
    info = pipeline.last_trace.last_normalize_info
    return {
        table: int(count) for table, count in sorted(info.row_counts.items()) if not table.startswith("_dlt")
    }


def _step_seconds(pipeline: Any) -> dict[str, float]:
    """Wall seconds of each dlt step (extract, normalize, load) of the last run."""
    return {
        step.step: round((step.finished_at - step.started_at).total_seconds(), 3)
        for step in pipeline.last_trace.steps
        if step.finished_at is not None
    }


def _load_result(name: str, pipeline: Any, started: float) -> dict[str, Any]:
    rows = _rows_loaded(pipeline)
    return {
        "scenario": name,
        "rows": rows,
        "total_rows": sum(rows.values()),
        "inner_seconds": round(time.perf_counter() - started, 3),
        "step_seconds": _step_seconds(pipeline),
    }


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    from .baseline import baseline_pipeline, baseline_source

    started = time.perf_counter()
    pipeline = baseline_pipeline(args.duckdb, args.pipelines_dir)
    pipeline.run(baseline_source(args.base_url, args.token))
    return _load_result("baseline", pipeline, started)


def run_full(args: argparse.Namespace) -> dict[str, Any]:
    # Before coalesce_dagster is imported: where the pipeline keeps its files and loads to.
    os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = args.duckdb
    os.environ["COALESCE_DAGSTER_PIPELINES_DIR"] = args.pipelines_dir
    started = time.perf_counter()
    from coalesce_dagster.coalesce.source import coalesce_source
    from coalesce_dagster.pipeline import make_pipeline, run_load

    run_load(coalesce_source(base_url=args.base_url, access_token=args.token))
    pipeline = make_pipeline()  # what the load left: its trace and row counts
    result = _load_result(args.label or "full", pipeline, started)
    result["runner"] = "coalesce_dagster.pipeline.run_load"
    return result


def run_sensor_tick(args: argparse.Namespace) -> dict[str, Any]:
    """Two measured ticks of the sensor's run tracking with 100 runs in flight.

    A first tick establishes the cursor (its look-back window is set so that no existing run
    counts: the cursor ends at the newest run, with nothing in flight). Then 100 runs start and stay
    `running`. `discover` is the next tick: the 100 are above the cursor's high-water mark, so it finds
    them by paging /api/v1/runs. `poll` is the tick after: the 100 are now in the cursor's in-flight
    set, and each is asked about through /scheduler/runStatus, as every tick does until they finish.
    """
    from datetime import datetime, timedelta

    import requests

    from coalesce_dagster.coalesce.client import CoalesceClient
    from coalesce_dagster.coalesce.run_tracker import TrackerCursor, track_runs

    control = args.base_url.rstrip("/") + "/_simulator"
    client = CoalesceClient(args.base_url, args.token)
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    first = track_runs(client, TrackerCursor(), lookback=timedelta(0), time_budget_seconds=40, now=far_future)
    response = requests.post(
        control + "/runs/add", json={"count": SENSOR_RUNS_IN_FLIGHT, "status": "running"}, timeout=60
    )
    response.raise_for_status()
    added = response.json()["run_ids"]

    ticks: dict[str, Any] = {}
    cursor = first.cursor
    for tick in ("discover", "poll"):
        requests.post(control + "/reset-log", timeout=10).raise_for_status()
        started = time.perf_counter()
        result = track_runs(client, cursor, lookback=timedelta(hours=6), time_budget_seconds=40)
        seconds = time.perf_counter() - started
        stats = requests.get(control + "/stats", timeout=10).json()
        ticks[tick] = {
            "seconds": round(seconds, 3),
            "requests": stats["requests"],
            "max_concurrency": stats["max_concurrency"],
            "discovered": result.discovered,
            "polled": result.polled,
            "in_flight": result.in_flight,
            "budget_exhausted": result.budget_exhausted,
        }
        cursor = result.cursor
    return {
        "scenario": "sensor_tick",
        "runs_in_flight": len(added),
        "highest_run_id_before": first.cursor.highest_run_id,
        "ticks": ticks,
    }


def run_node_snapshot(args: argparse.Namespace) -> dict[str, Any]:
    """The snapshot `node_definitions` loads: environment 1 of a simulator of its own (in this
    process, one environment of `--nodes` nodes), fetched as `dg utils refresh-defs-state` fetches
    it, stored at `COALESCE_DAGSTER__NODES__SNAPSHOT_PATH`; then the node assets the definitions
    load from it, counted (the check that the timed load is the load of every node)."""
    from coalesce_dagster.coalesce.nodes import resolve_lineage
    from coalesce_dagster.coalesce.nodes.snapshot import fetch_node_snapshot
    from coalesce_dagster.configuration import resolve_source_settings
    from coalesce_dagster.defs.nodes.state import configured_environments, store_snapshot
    from coalesce_simulator import CoalesceSimulator, SimulatorConfig

    config = SimulatorConfig(environments=1, nodes_per_environment=args.nodes, runs=0, results_per_run=0,
                             users=1, projects=1, in_flight_runs=0)  # fmt: skip
    started = time.perf_counter()
    with CoalesceSimulator(config) as simulator:
        settings = resolve_source_settings(base_url=simulator.base_url, access_token=config.token)
        snapshot = fetch_node_snapshot(settings, configured_environments())
    fetch_seconds = time.perf_counter() - started
    path = store_snapshot(snapshot)
    # The definitions trust a snapshot only for the account it was read from: configure that one.
    os.environ["SOURCES__COALESCE_SOURCE__BASE_URL"] = simulator.base_url

    from coalesce_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    node_assets = [key for key in graph.get_all_asset_keys() if "coalesce/node_id" in graph.get(key).metadata]
    nodes = [node for environment in snapshot.environments for node in environment.nodes]
    return {
        "scenario": "node_snapshot",
        "environments": [environment.id for environment in snapshot.environments],
        "nodes": len(nodes),
        "source_nodes": sum(node.is_source for node in nodes),
        "edges": sum(
            len(upstream)
            for environment in snapshot.environments
            for upstream in resolve_lineage(environment).upstream.values()
        ),
        "node_assets": len(node_assets),
        "base_url": simulator.base_url,
        "snapshot_bytes": path.stat().st_size,
        "fetch_seconds": round(fetch_seconds, 3),
    }


SCENARIOS = {"baseline": run_baseline, "full": run_full, "sensor_tick": run_sensor_tick,
             "node_snapshot": run_node_snapshot}  # fmt: skip
NEEDS_SIMULATOR = ("baseline", "full", "sensor_tick")
SNAPSHOT_ENV = ("COALESCE_DAGSTER__NODES__SNAPSHOT_PATH", "COALESCE_DAGSTER__NODES__ENVIRONMENTS")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scenario")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--base-url", help="the simulator (baseline, full, sensor_tick)")
    parser.add_argument("--token", help="its token (baseline, full, sensor_tick)")
    parser.add_argument("--duckdb", help="DuckDB file to load into (baseline, full)")
    parser.add_argument("--pipelines-dir", help="dlt pipelines dir (baseline, full)")
    parser.add_argument("--label", help="name to report (full: incremental, one_percent)")
    parser.add_argument("--nodes", type=int, default=2000, help="nodes of the environment (node_snapshot)")
    args = parser.parse_args(argv)
    if args.scenario in NEEDS_SIMULATOR and not (args.base_url and args.token):
        parser.error(f"{args.scenario} needs --base-url and --token")
    if args.scenario == "node_snapshot":
        if args.nodes < 1:
            parser.error("--nodes must be >= 1")
        # Never the checkout's own snapshot: the file, and the environment, are the caller's to name.
        missing = [name for name in SNAPSHOT_ENV if not os.environ.get(name)]
        if missing:
            parser.error(f"node_snapshot needs {' and '.join(missing)} set")
    if args.scenario in ("baseline", "full") and not (args.duckdb and args.pipelines_dir):
        parser.error(f"{args.scenario} needs --duckdb and --pipelines-dir")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    _emit(SCENARIOS[args.scenario](args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
