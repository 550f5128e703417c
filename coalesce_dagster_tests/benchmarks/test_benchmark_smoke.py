"""The benchmark runs end to end at the small size and its loads agree (correctness only, never timing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("baseline", "full", "incremental", "one_percent", "sensor_tick", "definitions")
MAIN_TABLES = ("environments", "environment", "environment_nodes", "runs", "run_results", "run_status",
               "projects", "users")  # fmt: skip


def test_small_benchmark_end_to_end(tmp_path: Path) -> None:
    output = tmp_path / "small.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--size", "small", "--output", str(output)],
        cwd=REPO_ROOT,
        env=dict(os.environ),  # the fixture's isolated settings; each scenario sets its own files
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    report = json.loads(output.read_text())
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
