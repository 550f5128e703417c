"""The main job: load every Coalesce asset into the destination and say what was loaded.

    python -m coalesce_dagster.demo            # real Coalesce if a token is configured, else the simulator
    python -m coalesce_dagster.demo --simulator   # always the bundled simulator
    python -m coalesce_dagster.demo --ui          # then keep serving, with the Dagster UI on :3000

With no access token configured it starts the bundled Coalesce simulator on 127.0.0.1 and loads into
`coalesce_demo.duckdb`, so demo data never mixes with a real account's data in `coalesce.duckdb`.
The simulator regenerates its data on each start, so the demo file and the demo's Dagster home
(`.dagster_home/demo`) are recreated each time; a real account uses `.dagster_home`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt

from .configuration import TOKEN_ENV, configuration_problems, names, resolve_base_url, token_configured

if TYPE_CHECKING:
    from coalesce_simulator import Faults  # the demo only: the product never imports it

DEMO_DUCKDB_PATH = names.PROJECT_ROOT / "coalesce_demo.duckdb"
LOADING_DUCKDB_PATH = names.PROJECT_ROOT / "coalesce_demo.loading.duckdb"
DAGSTER_HOME = names.PROJECT_ROOT / ".dagster_home"
DEMO_DAGSTER_HOME = DAGSTER_HOME / "demo"
BASE_URL_ENV = "SOURCES__COALESCE_SOURCE__BASE_URL"
# The simulated environment Dagster may build in; the others are observed only.
DEMO_ORCHESTRATED = "Development"
DEMO_FAILING_TEST = "Not Null"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    use_simulator = args.simulator or not token_configured()
    if args.check:
        return _check(use_simulator, args.report)
    problems = configuration_problems(connection=not use_simulator)
    if problems:
        # Before anything is started, replaced or requested: a typo costs nothing.
        print("The configuration has problems; nothing was loaded or changed:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    _prepare_dagster_home(use_simulator)
    with ExitStack() as stack:
        if use_simulator:
            simulator = stack.enter_context(_start_simulator(args))
            print(f"No Coalesce access token configured: using the bundled simulator at {simulator.base_url}")
        else:
            print(f"Loading from Coalesce at {resolve_base_url()}")

        failure = materialize_all()
        if failure is not None:
            # The one actionable sentence comes last, after Dagster's own output.
            print(f"\nThe load failed; nothing partial was written.\n{failure}", file=sys.stderr)
            return 1
        if use_simulator:
            _replace_demo_file()
        _print_summary(use_simulator)
        if args.ui:
            return _serve_ui(args.port, use_simulator)
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--simulator", action="store_true", help="use the bundled simulator even if a token is set"
    )
    parser.add_argument("--ui", action="store_true", help="after loading, start the Dagster UI (dagster dev)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="instead of loading: `coalesce-dagster check` (one request per endpoint; writes nothing)",
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="with --check: write the shape report")
    parser.add_argument("--port", type=int, default=3000, help="Dagster UI port (with --ui)")
    parser.add_argument(
        "--demo-run-interval",
        type=float,
        default=60.0,
        help="with --ui and the simulator: start a new Coalesce run every N seconds (0: never)",
    )
    return parser.parse_args(argv)


def _check(use_simulator: bool, report: Path | None) -> int:
    """`coalesce-dagster check`, against the bundled simulator when no token is configured (with
    the demo's simulated warehouse credentials); nothing is written but the report."""
    from .preflight.cli import check_command

    if not use_simulator:
        return check_command(report)
    from coalesce_simulator import CoalesceSimulator, SimulatorConfig  # the demo only

    with CoalesceSimulator(SimulatorConfig()) as simulator:
        print(f"No Coalesce access token configured: checking the bundled simulator at {simulator.base_url}")
        os.environ[BASE_URL_ENV] = simulator.base_url
        os.environ[TOKEN_ENV] = simulator.config.token
        _serve_demo_tests(simulator.faults)
        _set_demo_credentials()
        return check_command(report)


def _serve_demo_tests(faults: Faults) -> None:
    """Coalesce's tests as checks: column tests on tested nodes, each test's outcome in the run
    results, and one test ("Not Null") failing on purpose so a failed test check shows. The demo's
    check sees the same simulator as its load (else it would warn that tests report nothing)."""
    faults.column_tests, faults.test_results, faults.failing_test = True, True, DEMO_FAILING_TEST


# Runs started from the UI ("Materialize" on node assets) need warehouse credentials, as on a real
# account; the simulator takes any.
DEMO_CREDENTIALS = {
    "SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME": "DEMO",
    "SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD": "demo-only-password",
}


def _set_demo_credentials() -> None:
    for name, value in DEMO_CREDENTIALS.items():
        os.environ.setdefault(name, value)


DEMO_FRESHNESS_RULES = '[{"environment": "Production", "hours": 24, "failures_in_a_row": 1}]'


# Settings of the demo a user's own environment wins over (see `simulated_account`).
USER_MAY_OVERRIDE = frozenset({*DEMO_CREDENTIALS, "COALESCE_DAGSTER__HEALTH__FRESHNESS"})


def simulated_account(simulator: Any, snapshot_path: Path) -> dict[str, str]:
    """Switch on the simulator's demo faults and return the settings (environment variables) that
    point the project at it the way the demo does; the browser test shows the UI with the same."""
    _serve_demo_tests(simulator.faults)
    return {
        BASE_URL_ENV: simulator.base_url,
        TOKEN_ENV: simulator.config.token,
        # Node assets for every simulated environment, from a snapshot of the demo's own (the load
        # writes it), so a real account's snapshot is never replaced by simulated nodes.
        "COALESCE_DAGSTER__NODES__ENVIRONMENTS": ",".join(simulator.state.environments),
        "COALESCE_DAGSTER__NODES__SNAPSHOT_PATH": str(snapshot_path),
        # Both node modes side by side: Dagster may build Development's nodes (Materialize works
        # there); QA's and Production's are observed only, as every environment is by default.
        "COALESCE_DAGSTER__NODES__ORCHESTRATE": DEMO_ORCHESTRATED,
        **DEMO_CREDENTIALS,
        # A freshness rule to watch (docs/health.md): Production must have run well in the
        # last day, and one failed Production run turns its check red.
        "COALESCE_DAGSTER__HEALTH__FRESHNESS": DEMO_FRESHNESS_RULES,
    }


class _start_simulator:
    """Run the simulator for the life of the command, and point dlt config at it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def __enter__(self):
        from coalesce_simulator import (  # the demo only: the product never imports it
            CoalesceSimulator,
            SimulatorConfig,
        )

        self.simulator = CoalesceSimulator(SimulatorConfig()).start()
        # Load into a new file; it replaces the previous demo file only once the load has succeeded.
        _remove_duckdb(LOADING_DUCKDB_PATH)
        os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = str(LOADING_DUCKDB_PATH)
        settings_for_simulator = simulated_account(self.simulator, DEMO_DAGSTER_HOME / "coalesce_nodes.json")
        for name, value in settings_for_simulator.items():
            if name in USER_MAY_OVERRIDE:
                os.environ.setdefault(name, value)
            else:
                os.environ[name] = value
        if self.args.ui and self.args.demo_run_interval > 0:
            self.simulator.start_demo(self.args.demo_run_interval, max(self.args.demo_run_interval / 2, 5.0))
        return self.simulator

    def __exit__(self, *exc) -> None:
        self.simulator.stop()
        _remove_duckdb(LOADING_DUCKDB_PATH)  # what a failed load left


def _replace_demo_file() -> None:
    """The new demo data replaces the old file (DuckDB keeps no path inside its file)."""
    _remove_duckdb(DEMO_DUCKDB_PATH)
    os.replace(LOADING_DUCKDB_PATH, DEMO_DUCKDB_PATH)
    os.environ["DESTINATION__DUCKDB__CREDENTIALS"] = str(DEMO_DUCKDB_PATH)


def _remove_duckdb(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _prepare_dagster_home(use_simulator: bool) -> None:
    if use_simulator:
        # The simulator regenerates its organisation on every start, so the demo's Dagster history,
        # sensor cursor start fresh too (they would describe another organisation); the DuckDB file is
        # replaced after a successful load (`_replace_demo_file`).
        shutil.rmtree(DEMO_DAGSTER_HOME, ignore_errors=True)
    os.environ.setdefault("DAGSTER_HOME", str(DEMO_DAGSTER_HOME if use_simulator else DAGSTER_HOME))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(names.PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")


def materialize_all() -> str | None:
    """Materialize every asset; None on success, else the failure's one actionable sentence."""
    import dagster as dg

    from .defs.assets import coalesce_assets
    from .defs.health.views import coalesce_health_views
    from .defs.resources import resource_defs

    # The metadata tables and the health views over them: Coalesce builds the node assets itself.
    job = dg.Definitions(
        assets=[coalesce_assets, coalesce_health_views], resources=resource_defs()
    ).resolve_implicit_global_asset_job_def()
    keys = sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)
    print(f"Materializing {len(keys)} assets: {', '.join(keys)} ...", flush=True)
    started = time.monotonic()
    # INFO shows the load's progress (pages, rows, retries, dlt's steps) without Dagster's own
    # step-by-step DEBUG events.
    console = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance, run_config=console, raise_on_error=False)
    if result.success:
        print(f"Done in {time.monotonic() - started:.1f} s (Dagster run {result.run_id}).")
        return None
    messages = [
        _failure_message(event.step_failure_data) for event in result.all_events if event.is_step_failure
    ]
    return "\n".join(f"FAILED: {message}" for message in messages) or "FAILED: see the errors above."


def _failure_message(failure: Any) -> str:
    """A step failure's own description (our one sentence), else its error's message."""
    if failure is None:
        return "see the errors above."
    if failure.user_failure_data is not None and failure.user_failure_data.description:
        return str(failure.user_failure_data.description)
    return failure.error.message.strip() if failure.error is not None else "see the errors above."


def _print_summary(use_simulator: bool) -> None:
    from .pipeline import make_pipeline

    pipeline = make_pipeline()
    pipeline.sync_destination()  # so `dlt pipeline coalesce_pipeline ...` commands see this load
    dataset = pipeline.dataset_name
    print(f"\nLoaded dataset '{dataset}' ({pipeline.destination.destination_name}):")
    with pipeline.sql_client() as client:
        for table in sorted(pipeline.default_schema.data_table_names()):
            qualified = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT count(*) FROM {qualified}") as cursor:
                (count,) = cursor.fetchone() or (0,)
            print(f"  {table:<48} {count:>8} rows")
    _print_node_assets()
    location = _duckdb_location(pipeline)
    if location:
        print(f"\nDuckDB file: {location}")
        print(
            f"Query it:    {_python()} -c \"import duckdb; print(duckdb.connect('{location}', read_only=True)"
            f".sql('select run_status, count(*) from {dataset}.runs group by 1'))\""
        )
    print(
        f"Pipeline:    {Path(_python()).parent / 'dlt'} pipeline --pipelines-dir {pipeline.pipelines_dir} {pipeline.pipeline_name} info"
    )
    ui = (
        "./scripts/demo.sh --ui"
        if use_simulator
        else "./scripts/demo.sh --ui   (or: DAGSTER_HOME=$PWD/.dagster_home .venv/bin/dagster dev -w workspace.yaml)"
    )
    print(f"Dagster UI:  {ui}   (then open http://127.0.0.1:3000)")


def _print_node_assets() -> None:
    from .coalesce.nodes.scope import scope_snapshot
    from .defs.nodes.state import (
        configured_base_url,
        configured_environments,
        configured_orchestrate,
        local_state_path,
        read_snapshot,
    )

    if not configured_environments():
        print("\nNode assets: none configured ([coalesce_dagster.nodes] environments; docs/node-assets.md).")
        return
    snapshot = read_snapshot(local_state_path())
    if snapshot is None:
        return
    scope = scope_snapshot(
        snapshot,
        base_url=configured_base_url(),
        environments=configured_environments(),
        orchestrate=configured_orchestrate(),
    )
    modes = ", ".join(
        f"{env.name} ({'built from Dagster' if scope.is_orchestrated(env) else 'observed only'})"
        for env in scope.environments
    )
    count = sum(len(env.nodes) for env in scope.environments)
    print(
        f"\nNode assets: {count} Coalesce nodes of {modes or 'no environment'} (snapshot {snapshot.fetched_at})."
    )
    for note in scope.notes:
        print(f"  {note}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _default_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def _python() -> str:
    """How to name this interpreter in printed commands: relative to the project when it is its venv."""
    try:
        return str(Path(sys.executable).relative_to(names.PROJECT_ROOT))
    except ValueError:
        return sys.executable


def _duckdb_location(pipeline: dlt.Pipeline) -> str | None:
    from .pipeline import duckdb_file

    path = duckdb_file(pipeline)
    return None if path is None else str(path)


def _serve_ui(port: int, use_simulator: bool) -> int:
    print(f"\nStarting the Dagster UI on http://127.0.0.1:{port} (Ctrl-C to stop) ...", flush=True)
    env = os.environ.copy()
    if use_simulator:
        # Show the sensor at work: on from the start, ticking often, against the simulator's runs.
        env.setdefault("COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS", "running")
        env.setdefault("COALESCE_DAGSTER__SENSOR__MINIMUM_INTERVAL_SECONDS", "15")
        print(
            "The run-status sensor is on; the simulator starts a Coalesce run now and then. Watch Runs.\n"
            f"Select a few node assets of group coalesce_development and click Materialize: Dagster "
            f"starts a Coalesce run for exactly those nodes ({DEMO_ORCHESTRATED} is the environment the "
            "demo opts in; QA's and Production's nodes are observed only, kept current by the sensor)."
        )
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        "workspace.yaml",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    # Ctrl-C and SIGTERM stop the UI with its daemon and code servers, even when this process was
    # started with those signals ignored (as background jobs of a script are).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    ui = subprocess.Popen(command, cwd=names.PROJECT_ROOT, env=env, preexec_fn=_default_signals)
    try:
        return ui.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches dagster dev too; a signal sent to this process alone must
        # still stop the UI, its daemon and code servers.
        ui.terminate()
        try:
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            ui.kill()
        return 0


if __name__ == "__main__":
    sys.exit(main())
