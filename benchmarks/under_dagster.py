"""The load under Dagster, as users run it, measured from outside by `benchmarks.run`.

  dagster_full       `dagster asset materialize -m coalesce_dagster.definitions --select <the load's
                     nine assets>` in a fresh Dagster home (the committed dagster.yaml) and DuckDB file
  dagster_no_change  the same command again on the same home and file, nothing changed in Coalesce
  sensor_latency     `dagster-daemon run -w workspace.yaml` (the sensor daemon and the run queue, as a
                     deployment runs them) with the run-status sensor on at its default interval;
                     Coalesce runs finish one by one, and each run's time from finishing to its
                     run_results rows committed (Dagster's materialization of coalesce/run_results)
                     and to its Dagster run's end (the DuckDB file free for other readers)

Each materialize is measured like the other scenarios (wall, requests, peak memory of the whole
process tree) plus the latency floor: requests x latency / the project's concurrency
(`[extract] workers` in .dlt/config.toml), and the load step's own time from Dagster's event log.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import DATASET, MAIN_TABLES, TOKEN, child_env, fmt, log, table_counts, table_lines
from .dagster_events import (
    LOAD_STEP,
    SensorLoad,
    failed_run_counts,
    job_run_counts,
    latest_run_steps,
    open_instance,
    sensor_cursor,
    sensor_loads,
)
from .measure import ROOT, TreeRssSampler, measure

if TYPE_CHECKING:
    from .run import Benchmark

MATERIALIZE_SCENARIOS = ("dagster_full", "dagster_no_change")
DAGSTER_SCENARIOS = (*MATERIALIZE_SCENARIOS, "sensor_latency")
MODULE = "coalesce_dagster.definitions"
# The sensor's first tick (the daemon and its code server starting, then one tick) and, after the
# last Coalesce run finished, its load: bounded, and a miss fails the scenario naming what was awaited.
FIRST_TICK_TIMEOUT = 300.0
LOADED_TIMEOUT = 420.0
DAEMON_STOP_TIMEOUT = 60.0
POLL_SECONDS = 2.0


def extract_concurrency() -> int:
    """Most requests the load has in flight at once: `[extract] workers` of the project's config,
    or `EXTRACT__WORKERS` when set (dlt's environment override, which the measured load reads too)."""
    override = os.environ.get("EXTRACT__WORKERS", "").strip()
    if override:
        return int(override)
    config = tomllib.loads((ROOT / ".dlt" / "config.toml").read_text())
    return int(config["extract"]["workers"])


# The concurrency issue 22 states its latency floor with (requests x latency / 16): the load's own
# concurrency has been raised since, so the table shows the step against both.
STATED_FLOOR_CONCURRENCY = 16


def latency_floor(requests: int, latency_ms: float, concurrency: int) -> float:
    """Seconds the requests take at the simulator's latency, even with every worker always busy."""
    return requests * latency_ms / 1000 / concurrency


def load_selection() -> str:
    """The load's own assets (not the health views, which their sensor refreshes after loads)."""
    return ",".join(f"coalesce/{table}" for table in MAIN_TABLES)


def prepare_home(folder: Path) -> Path:
    """A Dagster home in `folder` with the committed dagster.yaml (its run queue and pool), kept if present."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def dagster_env(base_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """Point the project at the benchmark's simulator, as the demo does, with every file in `folder`."""
    return child_env(
        DAGSTER_HOME=str(folder / "dagster_home"),
        SOURCES__COALESCE_SOURCE__BASE_URL=base_url,
        SOURCES__COALESCE_SOURCE__ACCESS_TOKEN=TOKEN,
        DESTINATION__DUCKDB__CREDENTIALS=str(folder / "coalesce.duckdb"),
        COALESCE_DAGSTER_PIPELINES_DIR=str(folder / "pipelines"),
        # Never the checkout's node snapshot (no environments are configured: no node assets).
        COALESCE_DAGSTER__NODES__SNAPSHOT_PATH=str(folder / "nodes-snapshot.json"),
        **extra,
    )


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value at least `fraction` of the values do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p95": round(percentile(values, 0.95), 2),
        "max": round(max(values), 2),
    }


class DagsterScenarios:
    """The Dagster scenarios of one benchmark invocation (its simulator, work folder and results)."""

    def __init__(self, bench: Benchmark) -> None:
        self.bench = bench
        self.concurrency = extract_concurrency()

    @property
    def full_folder(self) -> Path:
        return self.bench.work / "dagster_full"

    def full_ok(self) -> bool:
        return self.bench.results.get("dagster_full", {}).get("ok") is True

    def fail(self, name: str, reason: str, entry: dict[str, Any]) -> None:
        entry["ok"] = False
        self.bench.results[name] = entry
        self.bench.failures.append(f"{name}: {reason}")
        log(f"{name}: FAILED: {reason}")

    # -- dagster asset materialize ---------------------------------------------------------------

    def run_materialize(self, name: str) -> None:
        bench, sim = self.bench, self.bench.simulator
        if name == "dagster_no_change" and not self.full_ok():
            self.fail(
                name, "skipped, dagster_full did not complete", {"skipped": "dagster_full did not complete"}
            )
            return
        folder = self.full_folder  # dagster_no_change: the same home and files, a second load
        home = prepare_home(folder)
        expected = sim.sizes()
        command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", MODULE,
                   "--select", load_selection()]  # fmt: skip
        log(f"{name}: dagster asset materialize ...")
        sim.reset_log()
        measured = measure(command, dagster_env(sim.base_url, folder))
        stats = sim.stats()
        floor = latency_floor(stats["requests"], bench.latency_ms, self.concurrency)
        entry: dict[str, Any] = {
            "ok": measured.returncode == 0,
            "wall_seconds": round(measured.wall_seconds, 3),
            "cpu_seconds": round(measured.cpu_seconds, 3),
            "requests": stats["requests"],
            "max_concurrency": stats["max_concurrency"],
            "peak_rss_mb": round(measured.peak_rss_mb, 1),
            "concurrency": self.concurrency,
            "latency_floor_seconds": round(floor, 3),
            "x_floor": round(measured.wall_seconds / floor, 2) if floor else None,
        }
        if measured.returncode != 0:
            entry["stderr_tail"] = measured.stderr[-4000:]
            self.fail(name, f"exit code {measured.returncode}:\n{measured.stderr[-4000:]}", entry)
            return
        run = latest_run_steps(home)
        step = run["step_seconds"].get(LOAD_STEP)
        floor16 = latency_floor(stats["requests"], bench.latency_ms, STATED_FLOOR_CONCURRENCY)
        entry.update(dagster_run_id=run["run_id"], step_seconds=run["step_seconds"], load_step_seconds=step,
                     load_step_x_floor=round(step / floor, 2) if floor and step is not None else None,
                     load_step_x_floor16=round(step / floor16, 2) if floor16 and step is not None else None)  # fmt: skip
        if run["status"] != "SUCCESS" or entry["load_step_seconds"] is None:
            self.fail(
                name, f"Dagster run {run['run_id']} {run['status']}, steps {run['step_seconds']}", entry
            )
            return
        bench.results[name] = entry
        log(f"{name}: {measured.wall_seconds:.2f} s ({LOAD_STEP} {entry['load_step_seconds']:.2f} s), "
            f"{stats['requests']} requests")  # fmt: skip
        entry["table_counts"] = counts = table_counts(folder / "coalesce.duckdb")
        bench.check(f"{name} vs simulator", counts, expected)

    # -- the run-status sensor under the daemon --------------------------------------------------

    def run_sensor_latency(self) -> None:
        """Coalesce runs finishing over time while the daemon runs the sensor at its default interval.

        On dagster_full's home and DuckDB file when it ran (a deployment that has synced), else on
        fresh ones. The runs start together right after the sensor's first tick (so that tick's
        look-back never decides about them) and finish `--sensor-spacing` seconds apart, a spacing
        that does not divide the sensor's interval, so they finish at every point of its cycle.
        """
        bench, sim, args = self.bench, self.bench.simulator, self.bench.args
        folder = self.full_folder if self.full_ok() else bench.work / "sensor_latency"
        home = prepare_home(folder)
        # The home's storage is created here, before the daemon starts: on fresh files the daemon and
        # this process's first read both created SQLite's tables at once, and the read failed
        # (alembic: "more than one head present").
        with open_instance(home):
            pass
        daemon_log = folder / "daemon.log"
        env = dagster_env(sim.base_url, folder, COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS="running")
        entry: dict[str, Any] = {"on": "dagster_full's files" if folder == self.full_folder else "fresh files",
                                 "runs": args.sensor_runs, "spacing_seconds": args.sensor_spacing}  # fmt: skip
        log(f"sensor_latency: dagster-daemon run, {args.sensor_runs} Coalesce runs finishing "
            f"{args.sensor_spacing:g} s apart; daemon log {daemon_log}")  # fmt: skip
        with open(daemon_log, "wb") as output:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "dagster._daemon", "run", "-w", "workspace.yaml"],
                cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        sampler = TreeRssSampler(daemon.pid)
        sampler.start()
        finished: dict[int, float] = {}
        try:
            started = time.time()
            self._wait_for("the sensor's first tick (its cursor stored)", FIRST_TICK_TIMEOUT, daemon,
                           lambda: sensor_cursor(home) is not None)  # fmt: skip
            entry["first_tick_after_start_seconds"] = round(time.time() - started, 1)
            run_ids = sim.add_runs(args.sensor_runs, "running")
            sim.reset_log()
            begin = time.monotonic()
            for position, run_id in enumerate(run_ids):
                time.sleep(
                    max(0.0, begin + position * args.sensor_spacing - time.monotonic())
                )  # pacing, not sync
                sim.set_run_status(run_id, "completed")
                finished[run_id] = time.time()
            self._wait_for(f"loads of Coalesce runs {run_ids} (coalesce/run_results materialized, run ended)",
                           LOADED_TIMEOUT, daemon, lambda: self._all_loaded(home, run_ids))  # fmt: skip
            entry["requests"] = sim.stats()["requests"]
        except (TimeoutError, RuntimeError) as error:
            entry["daemon_log_tail"] = daemon_log.read_text(errors="replace")[-4000:]
            self.fail("sensor_latency", str(error), entry)
            return
        finally:
            entry["peak_rss_mb"] = round(self._stop_daemon(daemon, sampler), 1)
        self._report_latencies(entry, home, folder, finished)

    def _wait_for(self, what: str, timeout: float, daemon: subprocess.Popen[bytes],
                  condition: Callable[[], bool]) -> None:  # fmt: skip
        deadline = time.monotonic() + timeout
        while not condition():
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}) while waiting for {what}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what}")
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _all_loaded(home: Path, run_ids: list[int]) -> bool:
        loaded = {
            run_id
            for load in sensor_loads(home)
            if load.materialized is not None and load.ended is not None
            for run_id in load.coalesce_run_ids
        }
        return set(run_ids) <= loaded

    @staticmethod
    def _stop_daemon(daemon: subprocess.Popen[bytes], sampler: TreeRssSampler) -> float:
        """Stop the daemon with its code server and run processes (the session it leads); the
        peak memory of that tree while it ran."""
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=DAEMON_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        with_children_gone = sampler.stop()
        try:
            os.killpg(daemon.pid, signal.SIGKILL)  # any of its children still running
        except ProcessLookupError:
            pass
        return with_children_gone

    def _report_latencies(
        self, entry: dict[str, Any], home: Path, folder: Path, finished: dict[int, float]
    ) -> None:
        loads = sensor_loads(home)
        first_load: dict[int, SensorLoad] = {}
        for load in sorted(loads, key=lambda load: load.materialized or math.inf):
            for run_id in load.coalesce_run_ids:
                first_load.setdefault(run_id, load)
        stages: dict[str, list[float]] = {"to_rows": [], "to_run_end": [], "to_request": [], "queued": [],
                                          "run_to_rows": []}  # fmt: skip
        for run_id, done in finished.items():
            load = first_load[run_id]
            assert load.materialized is not None and load.started is not None and load.ended is not None
            stages["to_rows"].append(load.materialized - done)
            stages["to_run_end"].append(load.ended - done)
            stages["to_request"].append(load.requested - done)
            stages["queued"].append(load.started - load.requested)
            stages["run_to_rows"].append(load.materialized - load.started)
        entry.update(
            ok=True,
            seconds={stage: spread(values) for stage, values in stages.items()},
            sensor_loads=len(loads),
            failed_loads=sum(load.status != "SUCCESS" for load in loads),
            dagster_runs_by_job=job_run_counts(home),
            failed_dagster_runs_by_job=failed_run_counts(home),
        )
        expected = {run_id: self.bench.simulator.result_count(run_id) for run_id in finished}
        got = self._result_rows(folder / "coalesce.duckdb", list(finished))
        mismatches = {run_id: {"got": got.get(run_id, 0), "expected": count}
                      for run_id, count in expected.items() if got.get(run_id, 0) != count}  # fmt: skip
        self.bench.checks.append({"check": "sensor_latency: run_results rows of each finished run",
                                  "ok": not mismatches, "mismatches": mismatches})  # fmt: skip
        if mismatches or entry["failed_loads"] or entry["failed_dagster_runs_by_job"]:
            self.fail("sensor_latency", f"run_results mismatches {mismatches}, {entry['failed_loads']} failed loads, "
                      f"failed Dagster runs by job {entry['failed_dagster_runs_by_job']}", entry)  # fmt: skip
            return
        self.bench.results["sensor_latency"] = entry
        rows = entry["seconds"]["to_rows"]
        log(f"sensor_latency: finished -> rows p50 {rows['p50']} s, p95 {rows['p95']} s, max {rows['max']} s")

    @staticmethod
    def _result_rows(duckdb_path: Path, run_ids: list[int]) -> dict[int, int]:
        """run_results rows per run in the file (read after the daemon stopped: no writer holds it)."""
        import duckdb

        with duckdb.connect(str(duckdb_path), read_only=True) as connection:
            rows = connection.execute(
                f"SELECT run_id, count(*) FROM {DATASET}.run_results WHERE run_id IN "
                f"({','.join('?' * len(run_ids))}) GROUP BY run_id",
                run_ids,
            ).fetchall()
        return {int(run_id): int(count) for run_id, count in rows}


# -- output ----------------------------------------------------------------------------------------

SIDE_BY_SIDE = (("full", "dlt alone"), ("incremental", "dlt alone"), ("dagster_full", "Dagster"),
                ("dagster_no_change", "Dagster"))  # fmt: skip


def render_dagster(document: dict[str, Any]) -> list[str]:
    """The Dagster scenarios' lines of the table, with dlt's own full and no-change syncs beside them."""
    scenarios = document["scenarios"]
    if not any(name in scenarios for name in DAGSTER_SCENARIOS):
        return []
    latency_ms, concurrency = document["latency_ms"], extract_concurrency()
    # CPU s: of the command and the children it waited for; on a busy machine steadier than wall time.
    header = (
        "sync",
        "under",
        "wall s",
        "CPU s",
        "load step s",
        "requests",
        "peak RSS MB",
        "floor s",
        "x floor",
        "step x floor",
        "step x floor16",
    )
    rows = []
    for name, under in SIDE_BY_SIDE:
        entry = scenarios.get(name)
        if entry is None:
            continue
        if not entry.get("ok"):
            rows.append((name + " (FAILED)", under, *[""] * (len(header) - 2)))
            continue
        # The concurrency the load had (recorded since 2026-12-08), not this process's setting.
        floor = latency_floor(entry["requests"], latency_ms, entry.get("concurrency", concurrency))
        floor16 = latency_floor(entry["requests"], latency_ms, STATED_FLOOR_CONCURRENCY)
        step = entry.get("load_step_seconds")
        rows.append((name, under, fmt(entry["wall_seconds"]), fmt(entry.get("cpu_seconds")), fmt(step),
                     fmt(entry["requests"]), fmt(entry["peak_rss_mb"], 0), fmt(floor),
                     fmt(entry["wall_seconds"] / floor if floor else None),
                     fmt(step / floor if floor and step is not None else None),
                     fmt(step / floor16 if floor16 and step is not None else None)))  # fmt: skip
    out = []
    if any(name in scenarios for name in MATERIALIZE_SCENARIOS):
        out += ["", f"Under Dagster (`dagster asset materialize`; load step: {LOAD_STEP} STEP_START -> STEP_SUCCESS "
                    f"in Dagster's event log; floor: requests x {latency_ms:g} ms / {concurrency} requests at once; "
                    f"floor16: the same / {STATED_FLOOR_CONCURRENCY}, as issue 22 states its goal):",
                *table_lines(header, rows)]  # fmt: skip
    sensor = scenarios.get("sensor_latency")
    if sensor and sensor.get("ok"):
        seconds = sensor["seconds"]

        def stage(key: str) -> str:
            return f"{seconds[key]['p50']:.1f} / {seconds[key]['p95']:.1f} / {seconds[key]['max']:.1f} s"

        out += ["", f"sensor_latency (dagster-daemon, sensor at its default interval, {sensor['runs']} Coalesce "
                    f"runs finishing {sensor['spacing_seconds']:g} s apart, {sensor['on']}), p50 / p95 / max:",
                f"  finished -> run_results rows committed   {stage('to_rows')}",
                f"  finished -> its Dagster run ended        {stage('to_run_end')}",
                f"    finished -> the tick's run request     {stage('to_request')}",
                f"    request -> run started (queue, start)  {stage('queued')}",
                f"    run started -> rows committed          {stage('run_to_rows')}",
                f"  {sensor['sensor_loads']} sensor loads; Dagster runs by job {sensor['dagster_runs_by_job']} "
                f"(failed: {sensor.get('failed_dagster_runs_by_job') or 'none'}); "
                f"daemon process tree peak {sensor['peak_rss_mb']:.0f} MB"]  # fmt: skip
    elif sensor:
        out += ["", "sensor_latency FAILED (see failures)"]
    return out
