"""A benchmark's figures against a recorded run of the same size: the regression line.

    python -m benchmarks.run --size harness ... --compare benchmarks/recorded/harness.json
    python -m benchmarks.compare benchmarks/results/<this run>.json benchmarks/recorded/harness.json

For each scenario both hold, the change of its figure against the recorded one (wall seconds; for
sensor_latency the p95 of finished -> rows). A full sync (`full`, `dagster_full`) more than 20%
slower than recorded is flagged `REGRESSION`. A flag in the output, not a failing exit code: timings
wander on a shared machine, so a person reads it (and re-runs) rather than a gate failing on it.
The recorded files are the benchmark's own JSON output, committed (`benchmarks/recorded/`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FULL_SYNCS = ("full", "dagster_full")
REGRESSION_THRESHOLD = 0.20
REGRESSION_FLAG = "REGRESSION"


def figure(entry: dict[str, Any]) -> tuple[str, float] | None:
    """The figure compared for one scenario's result: (what it is, seconds)."""
    if entry.get("ok") is not True:
        return None
    latency = entry.get("seconds", {}).get("to_rows")
    if latency:
        return "finished -> rows p95 s", float(latency["p95"])
    if "wall_seconds" in entry:
        return "wall s", float(entry["wall_seconds"])
    return None


def compare(current: dict[str, Any], recorded: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scenario of `current` with a figure: its recorded figure and the change."""
    rows = []
    for name, entry in current["scenarios"].items():
        now = figure(entry)
        if now is None:
            continue
        before = figure(recorded.get("scenarios", {}).get(name, {}))
        row: dict[str, Any] = {"scenario": name, "figure": now[0], "now": now[1]}
        if before is not None and before[0] == now[0] and before[1] > 0:
            change = now[1] / before[1] - 1
            row.update(recorded=before[1], change=round(change, 4),
                       regression=name in FULL_SYNCS and change > REGRESSION_THRESHOLD)  # fmt: skip
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], recorded: dict[str, Any], recorded_path: str) -> str:
    commit = recorded.get("machine", {}).get("git_commit")
    out = [
        f"Against {recorded_path} (recorded {recorded.get('date')}, commit {commit}, size {recorded.get('size')}):"
    ]
    width = max([len(row["scenario"]) for row in rows] + [8])
    for row in rows:
        text = f"  {row['scenario']:<{width}}  {row['figure']:<22} {row['now']:>9.2f} now"
        if "recorded" not in row:
            out.append(text + "  (not recorded)")
            continue
        text += f"  {row['recorded']:>9.2f} recorded  {row['change']:+8.1%}"
        if row["regression"]:
            text += (f"  {REGRESSION_FLAG}: the full sync is more than {REGRESSION_THRESHOLD:.0%} "
                     "slower than recorded")  # fmt: skip
        out.append(text)
    return "\n".join(out)


def comparison_text(current: dict[str, Any], recorded_path: str) -> tuple[str, list[dict[str, Any]]]:
    """The lines to print for `current` against the recorded file, and the rows behind them."""
    recorded = json.loads(Path(recorded_path).read_text())
    if recorded.get("size") != current.get("size"):
        return (f"Against {recorded_path}: recorded at size {recorded.get('size')}, this run is size "
                f"{current.get('size')}: not compared"), []  # fmt: skip
    rows = compare(current, recorded)
    return render(rows, recorded, recorded_path), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("current", help="a benchmark's JSON output")
    parser.add_argument(
        "recorded", help="the recorded JSON of the same size (benchmarks/recorded/<size>.json)"
    )
    args = parser.parse_args(argv)
    text, _ = comparison_text(json.loads(Path(args.current).read_text()), args.recorded)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
