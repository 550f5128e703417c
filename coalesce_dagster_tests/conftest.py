"""Shared fixtures: a real simulator on 127.0.0.1, a private destination and Dagster instance.

Every test that loads data runs the real dlt source over real HTTP into a real destination (a DuckDB
file of its own, or for `@on_every_destination` tests also a Postgres database of its own) through
real Dagster; only the Coalesce side is simulated.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from coalesce_dagster_tests import postgres
from coalesce_dagster_tests.warehouse import DuckDbWarehouse, PostgresWarehouse, Warehouse
from coalesce_simulator import CoalesceSimulator, SimulatorConfig

# Variables that would point a test at a real account or a shared file if inherited.
ISOLATED_ENV = (
    "SOURCES__COALESCE_SOURCE__ACCESS_TOKEN",
    "SOURCES__COALESCE_SOURCE__BASE_URL",
    "SOURCES__COALESCE_SOURCE__PAGE_SIZE",
    "SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE",
    "SOURCES__COALESCE_SOURCE__NODES_PAGE_SIZE",
    "SOURCES__COALESCE_SOURCE__NODES_TIMEOUT",
    "SOURCES__COALESCE_SOURCE__NODES_FULL_REREAD_HOURS",
    "ACCESS_TOKEN",
    "SOURCES__ACCESS_TOKEN",
    "DESTINATION__DUCKDB__CREDENTIALS",
    "DESTINATION__POSTGRES__CREDENTIALS",
    "COALESCE_DAGSTER_PIPELINES_DIR",
    "COALESCE_DAGSTER__DESTINATION",
    "COALESCE_DAGSTER__DATASET_NAME",
    "COALESCE_DAGSTER__NODES__ENVIRONMENTS",
    "COALESCE_DAGSTER__NODES__ORCHESTRATE",
)

# The node assets' snapshot: never the checkout's own (a developer's refresh would change which
# assets the tests see). Set before any test module imports the definitions; tests that need one
# point this at a file of their own.
os.environ["COALESCE_DAGSTER__NODES__SNAPSHOT_PATH"] = str(
    Path(tempfile.mkdtemp(prefix="coalesce-nodes-")) / "no-snapshot.json"
)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Fail fast in tests: a retried request costs at most a few hundred milliseconds.
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "1")
    # Normalize in process, as shipped (`[normalize] workers = 1`), whatever the developer's own
    # settings say: worker processes cost seconds per load. Tests of worker processes set their own.
    monkeypatch.setenv("NORMALIZE__WORKERS", "1")
    monkeypatch.setenv("COALESCE_DAGSTER_PIPELINES_DIR", str(tmp_path / "pipelines"))
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__SNAPSHOT_PATH", str(tmp_path / "nodes-snapshot.json"))
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "coalesce.duckdb"))


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig()


@pytest.fixture
def simulator(
    simulator_config: SimulatorConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CoalesceSimulator]:
    with CoalesceSimulator(simulator_config) as sim:
        monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", sim.base_url)
        monkeypatch.setenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN", simulator_config.token)
        yield sim


# How long the simulated scheduler waits for Dagster to start a Coalesce run: a run Dagster starts in
# a subprocess (`dagster asset materialize`) loads the definitions first, which on a busy 2-core
# machine has taken over a minute.
STARTED_RUN_SECONDS = 180


@pytest.fixture
def coalesce_scheduler(simulator) -> Iterator[Callable[..., None]]:
    """Play Coalesce's scheduler for the next runs Dagster starts: each entry of `plan` is
    (status, failed_node or None) for the next started run."""
    threads: list[threading.Thread] = []
    errors: list[BaseException] = []

    def drive(*plan: tuple[str, str | None]) -> None:
        def play() -> None:
            try:
                for number, (status, failed_node) in enumerate(plan, start=1):
                    run_id = simulator.state.wait_for_started_run(number, timeout=STARTED_RUN_SECONDS)
                    simulator.state.set_run_status(run_id, "running")
                    simulator.state.set_run_status(run_id, status, failed_node=failed_node)
            except BaseException as error:  # reported by the test, not lost in a thread
                errors.append(error)

        thread = threading.Thread(target=play, daemon=True)
        thread.start()
        threads.append(thread)

    yield drive
    for thread in threads:
        thread.join(timeout=STARTED_RUN_SECONDS + 10)
        assert not thread.is_alive(), (
            f"the simulated scheduler was still waiting for a started run after {STARTED_RUN_SECONDS + 10} s"
        )
    assert not errors, errors


@pytest.fixture(scope="session")
def _empty_instance_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Dagster home with empty storage, made once per test process: creating the SQLite schemas
    costs over a second, copying them a fraction of that."""
    home = tmp_path_factory.mktemp("empty_dagster_home")
    with dg.instance_for_test(temp_dir=str(home)):
        pass
    return home


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """Dagster's in-memory instance (run and event storage in memory, artifacts under tmp_path):
    what `dg.materialize` uses by default. Its runs, events and tags are read back as from any
    instance; only tests of other processes (the daemon, the deployed topology, `dagster` commands)
    need storage on disk, and make their own."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.ephemeral(tempdir=str(home)) as inst:
        yield inst


@pytest.fixture
def instance_on_disk(_empty_instance_home: Path, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance with SQLite storage on disk, for tests that read its files."""
    home = tmp_path / "dagster_home_on_disk"
    shutil.copytree(_empty_instance_home, home)
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def instance_with_committed_logging(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance with the committed dagster.yaml's `python_logs` settings, which bring the
    project's own log lines into the Dagster run log, as users get them."""
    import yaml

    from coalesce_dagster_tests.project_copy import REPO_ROOT

    committed = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    home = tmp_path / "logged_dagster_home"
    home.mkdir()
    with dg.instance_for_test(
        temp_dir=str(home), overrides={"python_logs": committed["python_logs"]}
    ) as inst:
        yield inst


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    return tmp_path / "coalesce.duckdb"


@pytest.fixture
def destination(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The destination loads go to: DuckDB (the test's own file) unless a test is parametrized.

    Postgres gets a database of the test's own (`postgres.temporary_database`), set the way a user
    sets it: `[coalesce_dagster] destination` and dlt's credentials, as environment variables, so
    subprocesses (a crash test's load, the daemon) load there too."""
    name = getattr(request, "param", "duckdb")
    if name == "postgres":
        database = request.getfixturevalue("postgres_database")
        monkeypatch.setenv("COALESCE_DAGSTER__DESTINATION", "postgres")
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres.database_url(database))
    return name


@pytest.fixture
def postgres_database() -> Iterator[str]:
    with postgres.temporary_database("load") as database:
        yield database


@pytest.fixture
def warehouse(destination: str, request: pytest.FixtureRequest, duckdb_file: Path) -> Warehouse:
    if destination == "postgres":
        return PostgresWarehouse(postgres.database_url(request.getfixturevalue("postgres_database")))
    return DuckDbWarehouse(duckdb_file)


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which names the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `long` run first: xdist hands tests out in this order, so the longest start at
    once on their own workers instead of being the last ones everything waits for.

    And `xdist_group` works: with `--dist loadgroup`, xdist sends the tests whose ids end in the same
    `@group` to one worker, but pytest-xdist 3.8 writes that suffix to `item._nodeid`, which pytest 9
    no longer reads (the id is `item._id`), so every group was silently spread over the workers (the
    README's serve snippets of one port then held several workers waiting on the port's lock)."""

    def expected_seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long")
        return 0.0 if marker is None else float(marker.kwargs.get("seconds", 15))

    items.sort(key=expected_seconds, reverse=True)
    if getattr(config.option, "loadgroup", False):  # set in xdist workers by --dist loadgroup
        for item in items:
            groups = sorted(
                {
                    str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")
                }
            )
            if groups and "@" not in item.nodeid and hasattr(item, "_id"):
                from _pytest.nodeid import NodeId

                item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


# Where the suite's CPU goes (scripts/test.sh on a shared 2-core machine: wall-clock durations move
# with the neighbours' load, CPU seconds much less). With COALESCE_TESTS_CPU_REPORT=FILE each test
# appends a line "cpu_seconds wall_seconds worker nodeid" (CPU of the test process and of every
# subprocess it waited for; the xdist worker that ran it): `sort -rn FILE | head` names the most
# expensive, `awk '{w[$3] += $2} END {for (k in w) print k, w[k]}' FILE` each worker's busy time.
_CPU_REPORT = os.environ.get("COALESCE_TESTS_CPU_REPORT")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not _CPU_REPORT:
        yield
        return
    import resource
    import time

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    cpu_before, wall_before = cpu(), time.monotonic()
    yield
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = f"{cpu() - cpu_before:.2f} {time.monotonic() - wall_before:.2f} {worker} {item.nodeid}\n"
    with open(_CPU_REPORT, "a") as report:
        report.write(line)
