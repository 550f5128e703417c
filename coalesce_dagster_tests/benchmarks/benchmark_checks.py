"""What a correct small-size benchmark report holds (correctness only, never timing)."""

from __future__ import annotations

import json
from pathlib import Path

SCENARIOS = (
    "baseline",
    "full",
    "incremental",
    "one_percent",
    "sensor_tick",
    "definitions",
    "node_definitions",
)
MAIN_TABLES = ("environments", "environment", "environment_nodes", "jobs", "runs", "run_results",
               "run_status", "projects", "users")  # fmt: skip


def assert_small_benchmark_report(path: Path) -> None:
    report = json.loads(path.read_text())
    assert report["ok"] and not report["failures"]
    scenarios = report["scenarios"]
    for name in SCENARIOS:
        assert scenarios.get(name, {}).get("ok") is True, name

    baseline, full = scenarios["baseline"]["table_counts"], scenarios["full"]["table_counts"]
    assert baseline == full
    assert all(full[table] for table in MAIN_TABLES)
    assert full == report["simulator"]["initial_sizes"]
    assert all(check["ok"] for check in report["checks"])
    assert 0 < scenarios["incremental"]["requests"] < scenarios["full"]["requests"]
    assert scenarios["one_percent"]["runs_added"] > 0
    assert scenarios["sensor_tick"]["ticks"]["poll"]["polled"] == scenarios["sensor_tick"]["runs_in_flight"]
    # The definitions load with node assets: one asset per node of the environment (the size's).
    nodes = scenarios["node_definitions"]
    assert nodes["node_assets"] == nodes["nodes"] == report["sizes"]["nodes_per_environment"]
    assert 0 < nodes["source_nodes"] < nodes["nodes"] and nodes["edges"] > 0
