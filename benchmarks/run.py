"""Benchmark this project's Coalesce load against the plain pipeline, on the bundled simulator.

    python -m benchmarks.run [--size small|medium|harness|large] [--latency-ms 20] [--output benchmarks/results/<name>.json]
                             [--scenarios baseline,full,incremental,one_percent,sensor_tick,definitions,node_definitions,
                                          dagster_full,dagster_no_change,sensor_latency]
                             [--baseline-timeout SECONDS] [--definition-nodes N] [--sensor-runs N] [--sensor-spacing S]
                             [--compare benchmarks/recorded/<size>.json]

The simulator runs in its own process (its CPU and memory do not count), at the chosen size and
per-request latency. Each scenario runs in a fresh subprocess (`python -m benchmarks.scenario`);
this process measures it from outside: wall time, peak RSS, and
the HTTP requests the simulator answered while it ran (`/_simulator/stats`, log reset before each).

Scenarios, each into its own new DuckDB file and pipelines dir unless noted:
  baseline     the plain `rest_api_source` pipeline of `benchmarks/baseline.py`
  full         this project: `coalesce_source` through `make_pipeline()`, project settings
  incremental  `full` again on the same files, nothing changed in Coalesce
  one_percent  1% new (completed) runs added, then `full` again on the same files
  sensor_tick  the run-status sensor's tracking with 100 runs in flight (see `benchmarks.scenario`)
  definitions  `python -c "import coalesce_dagster.definitions"`, best of 3 (small: 1, a correctness check)
  node_definitions  the same with node assets: a snapshot of one simulated environment of
               `--definition-nodes` nodes (default: the size's nodes per environment) stored at a
               file of its own (`python -m benchmarks.scenario node_snapshot`), then the import
               timed, best of 3; its node assets are counted against the nodes
Under Dagster (`benchmarks/under_dagster.py`; asked for by name, not run by default):
  dagster_full, dagster_no_change  `dagster asset materialize` of the load's assets, fresh Dagster home
  sensor_latency  `dagster-daemon run` with the run-status sensor on: Coalesce run finished -> rows

`--compare` prints each scenario's change against a recorded run of the same size and flags a full
sync more than 20% slower (`benchmarks/compare.py`).

Peak RSS is the larger of the child's own peak (`os.wait4` rusage: the largest single process of the
tree) and the peak of the whole tree's summed memory (Pss, so pages a forked worker shares with its
parent count once), sampled every 100 ms from /proc (Linux): memory held in dlt's normalize workers
counts together with the parent's.

Correctness: the main tables of each load are counted in DuckDB and compared with what the
simulator holds, and baseline with full; any mismatch is printed loudly and the exit code is 1.
Results: a plain-text table on stdout and JSON in `--output` (default
`benchmarks/results/<size>-<timestamp>.json`; the folder is git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

from .common import MAIN_TABLES, TOKEN, child_env, fmt, log, table_counts, table_lines
from .compare import comparison_text
from .measure import ROOT, Measured, measure
from .sizes import SIZES, Size
from .under_dagster import DAGSTER_SCENARIOS, MATERIALIZE_SCENARIOS, DagsterScenarios, render_dagster

RESULTS_DIR = ROOT / "benchmarks" / "results"
PIPELINE_SCENARIOS = ("baseline", "full", "incremental", "one_percent")
# What runs without --scenarios; the Dagster scenarios (minutes at the larger sizes) are asked for by name.
DEFAULT_SCENARIOS = (*PIPELINE_SCENARIOS, "sensor_tick", "definitions", "node_definitions")
ALL_SCENARIOS = (*DEFAULT_SCENARIOS, *DAGSTER_SCENARIOS)
SIMULATOR_START_TIMEOUT = 300.0
PACKAGES = ("dlt", "dagster", "dagster-dlt", "duckdb", "requests")


# -- the simulator process -----------------------------------------------------------------------


class Simulator:
    """`python -m coalesce_simulator` in its own process; reads the base URL from its first line."""

    def __init__(self, size: Size, latency_ms: float, log_path: Path) -> None:
        self.size = size
        self.latency_ms = latency_ms
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.startup_seconds = 0.0
        self.rss_after_start_mb = 0.0

    def start(self) -> Simulator:
        command = [sys.executable, "-m", "coalesce_simulator", "--port", "0", "--token", TOKEN,
                   *self.size.simulator_args(self.latency_ms)]  # fmt: skip
        started = time.perf_counter()
        with open(self.log_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, text=True
            )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], SIMULATOR_START_TIMEOUT)
        line = self.process.stdout.readline() if ready else ""
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}; see {self.log_path}")
        self.startup_seconds = time.perf_counter() - started
        self.base_url = match.group(1)
        self.rss_after_start_mb = self.memory().get("VmRSS", 0.0)
        # Keep draining stdout so the simulator can never block on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        return self

    def memory(self) -> dict[str, float]:
        """VmRSS / VmHWM (peak) of the simulator process in MB (Linux), else {}."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()  # type: ignore[union-attr]
        except OSError:
            return {}
        return {key: int(kb) / 1024 for key, kb in re.findall(r"(VmRSS|VmHWM):\s+(\d+) kB", status)}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    # control API
    def _url(self, path: str) -> str:
        return f"{self.base_url}/_simulator/{path}"

    def reset_log(self) -> None:
        requests.post(self._url("reset-log"), timeout=30).raise_for_status()

    def stats(self) -> dict[str, int]:
        response = requests.get(self._url("stats"), timeout=30)
        response.raise_for_status()
        return response.json()

    def sizes(self) -> dict[str, int]:
        response = requests.get(self._url("sizes"), timeout=60)
        response.raise_for_status()
        return response.json()

    def add_runs(self, count: int, status: str = "completed") -> list[int]:
        response = requests.post(self._url("runs/add"), json={"count": count, "status": status}, timeout=600)
        response.raise_for_status()
        return response.json()["run_ids"]

    def set_run_status(self, run_id: int, status: str) -> None:
        response = requests.post(self._url(f"runs/{run_id}/status"), json={"status": status}, timeout=60)
        response.raise_for_status()

    def result_count(self, run_id: int) -> int:
        """How many results Coalesce's API gives for the run (what a load of it must hold)."""
        response = requests.get(f"{self.base_url}/api/v1/runs/{run_id}/results",
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)  # fmt: skip
        response.raise_for_status()
        return len(response.json()["data"])


# -- scenarios -------------------------------------------------------------------------------------


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size: Size = SIZES[args.size]
        self.latency_ms: float = args.latency_ms if args.latency_ms is not None else self.size.latency_ms
        self.scenarios: list[str] = args.scenarios
        self.work = Path(tempfile.mkdtemp(prefix="coalesce-bench-"))
        self.simulator = Simulator(self.size, self.latency_ms, self.work / "simulator.log")
        self.results: dict[str, dict[str, Any]] = {}
        self.checks: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.extra: dict[str, Any] = {}
        self.dagster = DagsterScenarios(self)

    # one pipeline scenario in a child, measured
    def run_pipeline(self, name: str) -> None:
        sim = self.simulator
        if name in ("incremental", "one_percent"):
            folder = self.work / "full"  # the same DuckDB file and pipelines dir as `full`
            if self.results.get("full", {}).get("ok") is not True:
                self.results[name] = {"ok": False, "skipped": "full did not complete"}
                self.failures.append(f"{name}: skipped, full did not complete")
                return
        else:
            folder = self.work / name
        folder.mkdir(exist_ok=True)
        duckdb_path, pipelines_dir = folder / "coalesce.duckdb", folder / "pipelines"

        added: list[int] = []
        if name == "one_percent":
            added = sim.add_runs(max(1, self.size.runs // 100), "completed")
            log(f"one_percent: added {len(added)} completed runs")
        expected = sim.sizes()

        command = [sys.executable, "-m", "benchmarks.scenario", "baseline" if name == "baseline" else "full",
                   "--base-url", sim.base_url, "--token", TOKEN,
                   "--duckdb", str(duckdb_path), "--pipelines-dir", str(pipelines_dir)]  # fmt: skip
        if name == "baseline":
            empty = self.work / "no-dlt-config"  # dlt defaults: the project's .dlt/ does not apply
            empty.mkdir(exist_ok=True)
            env = child_env(DLT_PROJECT_DIR=str(empty))
        else:
            command += ["--label", name]
            env = child_env(DESTINATION__DUCKDB__CREDENTIALS=str(duckdb_path),
                            COALESCE_DAGSTER_PIPELINES_DIR=str(pipelines_dir))  # fmt: skip
        timeout = self.args.baseline_timeout if name == "baseline" else None

        log(f"{name}: running ...")
        sim.reset_log()
        measured = measure(command, env, timeout)
        stats = sim.stats()
        child = measured.result()
        entry: dict[str, Any] = {
            "ok": measured.returncode == 0 and child is not None,
            "wall_seconds": round(measured.wall_seconds, 3),
            "cpu_seconds": round(measured.cpu_seconds, 3),
            "timed_out": measured.timed_out,
            "requests": stats["requests"],
            "max_concurrency": stats["max_concurrency"],
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
        }
        if added:
            entry["runs_added"] = len(added)
        if child is not None:
            entry.update(rows=child["rows"], total_rows=child["total_rows"],
                         main_rows=sum(child["rows"].get(t, 0) for t in MAIN_TABLES))  # fmt: skip
            entry["rows_per_second"] = round(child["total_rows"] / measured.wall_seconds, 1)
            if child.get("step_seconds"):
                entry["step_seconds"] = child["step_seconds"]
        self.results[name] = entry
        if measured.timed_out:
            log(f"{name}: killed after {measured.wall_seconds:.0f} s (--baseline-timeout), "
                f"{stats['requests']} requests so far")  # fmt: skip
            return
        if not entry["ok"]:
            entry["stderr_tail"] = measured.stderr[-4000:]
            self.failures.append(f"{name}: exit code {measured.returncode}")
            log(f"{name}: FAILED (exit code {measured.returncode}):\n{measured.stderr[-4000:]}")
            return
        log(f"{name}: {measured.wall_seconds:.2f} s, {stats['requests']} requests")
        entry["table_counts"] = counts = table_counts(duckdb_path)
        self.check(f"{name} vs simulator", counts, expected)

    def check(self, label: str, got: dict[str, Any], expected: dict[str, Any]) -> None:
        mismatches = {t: {"got": got.get(t), "expected": expected.get(t)} for t in MAIN_TABLES
                      if got.get(t) != expected.get(t)}  # fmt: skip
        self.checks.append({"check": label, "ok": not mismatches, "mismatches": mismatches})
        if mismatches:
            self.failures.append(f"row-count mismatch: {label}: {mismatches}")
            print(f"\n!!! ROW COUNT MISMATCH ({label}) !!!", file=sys.stderr)
            for table, values in mismatches.items():
                print(f"!!!   {table}: got {values['got']}, expected {values['expected']}", file=sys.stderr)
            print("", file=sys.stderr, flush=True)

    def run_sensor_tick(self) -> None:
        log("sensor_tick: running ...")
        command = [sys.executable, "-m", "benchmarks.scenario", "sensor_tick",
                   "--base-url", self.simulator.base_url, "--token", TOKEN]  # fmt: skip
        measured = measure(command, child_env())
        child = measured.result()
        if measured.returncode != 0 or child is None:
            self.failures.append(f"sensor_tick: exit code {measured.returncode}")
            self.results["sensor_tick"] = {"ok": False, "stderr_tail": measured.stderr[-4000:]}
            log(f"sensor_tick: FAILED:\n{measured.stderr[-4000:]}")
            return
        self.results["sensor_tick"] = {"ok": True, "wall_seconds": round(measured.wall_seconds, 3),
                                       "peak_rss_mb": round(measured.peak_rss_mb, 1), **child}  # fmt: skip

    def _time_definitions_import(self, scenario: str, env: dict[str, str]) -> list[Measured] | None:
        """`import coalesce_dagster.definitions` in fresh processes, `--definition-repeats` times;
        None (the scenario marked failed) when an import fails."""
        repeats = self.args.definition_repeats
        log(f"{scenario}: timing `import coalesce_dagster.definitions`, best of {repeats} ...")
        runs = []
        for _ in range(repeats):
            measured = measure([sys.executable, "-c", "import coalesce_dagster.definitions"], env)
            if measured.returncode != 0:
                self.failures.append(f"{scenario}: import failed")
                self.results[scenario] = {"ok": False, "stderr_tail": measured.stderr[-4000:]}
                return None
            runs.append(measured)
        return runs

    def run_definitions(self) -> None:
        runs = self._time_definitions_import("definitions", child_env())
        if runs is None:
            return
        best = min(runs, key=lambda m: m.wall_seconds)
        self.results["definitions"] = {"ok": True, "wall_seconds": round(best.wall_seconds, 3),
                                       "all_seconds": [round(m.wall_seconds, 3) for m in runs],
                                       "cpu_seconds": round(min(m.cpu_seconds for m in runs), 3),
                                       "peak_rss_mb": round(best.peak_rss_mb, 1)}  # fmt: skip

    def run_node_definitions(self) -> None:
        nodes = self.args.definition_nodes or self.size.nodes_per_environment
        folder = self.work / "node_definitions"
        folder.mkdir(exist_ok=True)
        env = child_env(COALESCE_DAGSTER__NODES__SNAPSHOT_PATH=str(folder / "nodes-snapshot.json"),
                        COALESCE_DAGSTER__NODES__ENVIRONMENTS='["1"]')  # fmt: skip
        log(f"node_definitions: storing a snapshot of one environment of {nodes:,} nodes ...")
        stored = measure(
            [sys.executable, "-m", "benchmarks.scenario", "node_snapshot", "--nodes", str(nodes)], env
        )
        snapshot = stored.result()
        if stored.returncode != 0 or snapshot is None:
            self.failures.append(f"node_definitions: node_snapshot exit code {stored.returncode}")
            self.results["node_definitions"] = {"ok": False, "stderr_tail": stored.stderr[-4000:]}
            log(f"node_definitions: FAILED:\n{stored.stderr[-4000:]}")
            return
        env["SOURCES__COALESCE_SOURCE__BASE_URL"] = snapshot["base_url"]  # the snapshot's account
        runs = self._time_definitions_import("node_definitions", env)
        if runs is None:
            return
        best = min(runs, key=lambda m: m.wall_seconds)
        counts = {"nodes": snapshot["nodes"], "node_assets": snapshot["node_assets"]}
        mismatches = {name: {"got": got, "expected": nodes} for name, got in counts.items() if got != nodes}
        self.checks.append({"check": "node_definitions: node assets vs nodes", "ok": not mismatches,
                            "mismatches": mismatches})  # fmt: skip
        if mismatches:
            self.failures.append(f"node_definitions: {mismatches}")
            print(f"\n!!! NODE ASSET COUNT MISMATCH (node_definitions): {mismatches} !!!\n", file=sys.stderr)
        self.results["node_definitions"] = {
            "ok": not mismatches,
            "wall_seconds": round(best.wall_seconds, 3),
            "all_seconds": [round(m.wall_seconds, 3) for m in runs],
            "cpu_seconds": round(min(m.cpu_seconds for m in runs), 3),
            "peak_rss_mb": round(best.peak_rss_mb, 1),
            **{
                key: snapshot[key]
                for key in ("nodes", "source_nodes", "edges", "node_assets", "snapshot_bytes")
            },
        }

    def run(self) -> int:
        log(
            f"size {self.args.size}: {self.size.to_dict()}, latency {self.latency_ms} ms; work dir {self.work}"
        )
        self.simulator.start()
        try:
            log(f"simulator ready in {self.simulator.startup_seconds:.1f} s at {self.simulator.base_url}, "
                f"RSS {self.simulator.rss_after_start_mb:.0f} MB")  # fmt: skip
            self.extra["initial_sizes"] = self.simulator.sizes()
            for name in self.scenarios:
                if name in PIPELINE_SCENARIOS:
                    self.run_pipeline(name)
                    if name == "full" and "baseline" in self.results:
                        self.compare_baseline_full()
                elif name == "sensor_tick":
                    self.run_sensor_tick()
                elif name == "definitions":
                    self.run_definitions()
                elif name == "node_definitions":
                    self.run_node_definitions()
                elif name in MATERIALIZE_SCENARIOS:
                    self.dagster.run_materialize(name)
                elif name == "sensor_latency":
                    self.dagster.run_sensor_latency()
            self.extra["simulator_memory_end"] = self.simulator.memory()
        finally:
            self.simulator.stop()
        self.report()
        if not self.args.keep_files:
            shutil.rmtree(self.work, ignore_errors=True)
        if self.failures:
            print("\nFAILED:\n  " + "\n  ".join(self.failures), file=sys.stderr)
            return 1
        return 0

    def compare_baseline_full(self) -> None:
        baseline, full = self.results["baseline"], self.results["full"]
        if "table_counts" in baseline and "table_counts" in full:
            self.check("baseline vs full", full["table_counts"], baseline["table_counts"])

    # -- output ------------------------------------------------------------------------------------

    def report(self) -> None:
        document = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
            "machine": machine_info(),
            "size": self.args.size,
            "sizes": self.size.to_dict(),
            "latency_ms": self.latency_ms,
            "simulator": {
                "startup_seconds": round(self.simulator.startup_seconds, 2),
                "rss_after_start_mb": round(self.simulator.rss_after_start_mb, 1),
                "peak_rss_mb": round(self.extra.get("simulator_memory_end", {}).get("VmHWM", 0.0), 1),
                "initial_sizes": self.extra.get("initial_sizes"),
            },
            "scenarios": self.results,
            "comparisons": self.comparisons(),
            "checks": self.checks,
            "ok": not self.failures,
            "failures": self.failures,
        }
        output = Path(self.args.output) if self.args.output else (
            RESULTS_DIR / f"{self.args.size}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        )  # fmt: skip
        output.parent.mkdir(parents=True, exist_ok=True)
        if self.args.compare:
            text, rows = comparison_text(document, self.args.compare)
            document["compared_with"] = {"recorded": self.args.compare, "rows": rows}
        output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(render_table(document))
        if self.args.compare:
            print("\n" + text)
        print(f"\nJSON: {output}")

    def comparisons(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        baseline = self.results.get("baseline", {})
        full = self.results.get("full", {})
        for name in PIPELINE_SCENARIOS:
            entry = self.results.get(name)
            if not entry or "wall_seconds" not in entry:
                continue
            row: dict[str, Any] = {}
            if "wall_seconds" in baseline and (baseline.get("ok") or baseline.get("timed_out")):
                row["speedup_vs_baseline"] = round(baseline["wall_seconds"] / entry["wall_seconds"], 2)
                row["speedup_is_lower_bound"] = bool(baseline.get("timed_out")) and name != "baseline"
            if name in ("incremental", "one_percent") and full.get("requests"):
                row["requests_vs_full"] = round(entry["requests"] / full["requests"], 4)
            out[name] = row
        return out


def machine_info() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None  # fmt: skip
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                                    text=True, timeout=10).stdout.strip())  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit,
        "git_dirty": dirty,
    }


def render_table(document: dict[str, Any]) -> str:
    scenarios, comparisons = document["scenarios"], document["comparisons"]
    # rows: every table loaded, nested ones included; main rows: the nine resource tables only.
    header = ("scenario", "wall s", "requests", "max conc", "peak RSS MB", "rows", "main rows", "rows/s",
              "x baseline", "req vs full")  # fmt: skip
    rows = []
    for name in PIPELINE_SCENARIOS:
        entry = scenarios.get(name)
        if entry is None:
            continue
        if "wall_seconds" not in entry:
            rows.append((name, entry.get("skipped", "failed"), *[""] * (len(header) - 2)))
            continue
        comparison = comparisons.get(name, {})
        killed = entry.get("timed_out")
        speedup = comparison.get("speedup_vs_baseline")
        speedup_text = "-" if speedup is None else (
            (">= " if comparison.get("speedup_is_lower_bound") else "") + f"{speedup:,.2f}"
        )  # fmt: skip
        requests_vs_full = comparison.get("requests_vs_full")
        rows.append((
            name + ("" if entry.get("ok") or killed else " (FAILED)"),
            (">= " if killed else "") + fmt(entry["wall_seconds"]),
            fmt(entry["requests"]) + (" (partial)" if killed else ""),
            fmt(entry["max_concurrency"]),
            fmt(entry["peak_rss_mb"], 0),
            fmt(entry.get("total_rows")),
            fmt(entry.get("main_rows")),
            fmt(entry.get("rows_per_second"), 0),
            speedup_text,
            "-" if requests_vs_full is None else f"{requests_vs_full:.2%}",
        ))  # fmt: skip
    sizes, sim = document["sizes"], document["simulator"]
    out = [
        f"Coalesce load benchmark, size {document['size']}: {sizes['environments']} environments x "
        f"{sizes['nodes_per_environment']:,} nodes, {sizes['runs']:,} runs x {sizes['results_per_run']} results, "
        f"latency {document['latency_ms']:g} ms; {document['machine']['cpu_count']} CPUs, "
        f"Python {document['machine']['python']}, dlt {document['machine']['packages']['dlt']}",
    ]
    if rows:
        out += ["", *table_lines(header, rows)]
    out += render_dagster(document)
    tick = scenarios.get("sensor_tick")
    if tick and tick.get("ok"):
        discover, poll = tick["ticks"]["discover"], tick["ticks"]["poll"]
        out += ["", f"sensor tick, {tick['runs_in_flight']} runs in flight: "
                    f"discovering them {discover['requests']} requests in {discover['seconds']:.3f} s; "
                    f"polling them {poll['requests']} requests in {poll['seconds']:.3f} s"]  # fmt: skip
    definitions = scenarios.get("definitions")
    if definitions and definitions.get("ok"):
        out.append(f"definitions load (import coalesce_dagster.definitions, fresh process, best of {len(definitions['all_seconds'])}): "
                   f"{definitions['wall_seconds']:.2f} s ({definitions['cpu_seconds']:.2f} s CPU)")  # fmt: skip
    nodes = scenarios.get("node_definitions")
    if nodes and "wall_seconds" in nodes:
        out.append(f"definitions load with node assets ({nodes['node_assets']:,} of {nodes['nodes']:,} nodes of one "
                   f"environment, {nodes['edges']:,} edges; fresh process, best of {len(nodes['all_seconds'])}): {nodes['wall_seconds']:.2f} s "
                   f"({nodes['cpu_seconds']:.2f} s CPU)"
                   + ("" if nodes["ok"] else " (FAILED)"))  # fmt: skip
    out.append(f"simulator (own process): ready in {sim['startup_seconds']:.1f} s, "
               f"RSS {sim['rss_after_start_mb']:.0f} MB after start, peak {sim['peak_rss_mb']:.0f} MB")  # fmt: skip
    failed_checks = [c["check"] for c in document["checks"] if not c["ok"]]
    passed = len(document["checks"]) - len(failed_checks)
    failed_text = f", FAILED: {', '.join(failed_checks)}" if failed_checks else ""
    out.append(f"checks (row counts, node assets): {passed} passed{failed_text}")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--latency-ms", type=float, default=None,
                        help="simulator latency per request (default: the size's, small 2, large 20)")  # fmt: skip
    parser.add_argument("--output", help="JSON file (default: benchmarks/results/<size>-<timestamp>.json)")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)} "
                             f"(default: {','.join(DEFAULT_SCENARIOS)})")  # fmt: skip
    parser.add_argument("--compare", metavar="RECORDED_JSON",
                        help="print each scenario's change against a recorded run of the same size "
                             "(benchmarks/recorded/<size>.json), flagging a full sync > 20%% slower")  # fmt: skip
    parser.add_argument("--sensor-runs", type=int, default=20, metavar="N",
                        help="sensor_latency: Coalesce runs that finish (default: 20)")  # fmt: skip
    parser.add_argument("--sensor-spacing", type=float, default=13.0, metavar="SECONDS",
                        help="sensor_latency: seconds between two runs finishing (default: 13, which "
                             "does not divide the sensor's 30 s interval)")  # fmt: skip
    parser.add_argument("--baseline-timeout", type=float, default=None, metavar="SECONDS",
                        help="kill the baseline after this long; reported as >= SECONDS (default: none)")  # fmt: skip
    parser.add_argument("--keep-files", action="store_true", help="keep the temporary DuckDB files and logs")
    parser.add_argument("--definition-repeats", type=int, default=None, metavar="N",
                        help="definitions loads timed per definitions scenario, the best reported "
                             "(default: 1 for small, which checks correctness; 3 otherwise)")  # fmt: skip
    parser.add_argument("--definition-nodes", type=int, default=None, metavar="N",
                        help="node_definitions: nodes of its environment (default: the size's nodes per environment)")  # fmt: skip
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ALL_SCENARIOS))
    if unknown or not chosen:
        parser.error(f"unknown scenarios {unknown}; choose from {', '.join(ALL_SCENARIOS)}")
    if {"incremental", "one_percent"} & set(chosen) and "full" not in chosen:
        parser.error("incremental and one_percent run on full's files: include full")
    if args.definition_repeats is None:
        args.definition_repeats = 1 if args.size == "small" else 3
    if args.definition_repeats < 1:
        parser.error("--definition-repeats must be >= 1")
    if args.definition_nodes is not None and args.definition_nodes < 1:
        parser.error("--definition-nodes must be >= 1")
    if args.sensor_runs < 1 or args.sensor_spacing < 0:
        parser.error("--sensor-runs must be >= 1 and --sensor-spacing >= 0")
    if args.compare and not Path(args.compare).is_file():
        parser.error(f"--compare: no file {args.compare}")
    if "dagster_no_change" in chosen and "dagster_full" not in chosen:
        parser.error("dagster_no_change runs on dagster_full's files: include dagster_full")
    if args.latency_ms is not None and args.latency_ms < 0:
        parser.error("--latency-ms must be >= 0")
    args.scenarios = [name for name in ALL_SCENARIOS if name in chosen]  # always in dependency order
    return args


def main(argv: list[str] | None = None) -> int:
    return Benchmark(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
