"""The deployed topology of docs/production.md, run for real: Dagster's instance on Postgres, a code
server, the daemon and the webserver as separate processes on loopback, loading into Postgres.

The processes are started with the guide's own commands and files (`deploy/dagster.yaml`,
`deploy/workspace.yaml`, the Dockerfile's code-server command); the daemon and the webserver get only
what the guide gives them (Dagster's home, its database, where the code server is), while the code
server holds the Coalesce and destination settings, as the code location's container would. The
sensor and a schedule are switched on through the webserver's GraphQL API (the UI's toggles); the
daemon launches their loads through the code server, queued one at a time. The schedule runs every
minute here, and Dagster's scheduler only ticks on minute boundaries: the test lasts up to a minute
plus the loads, polling the processes' progress rather than sleeping a guessed time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from coalesce_dagster_tests import postgres
from coalesce_dagster_tests.project_copy import REPO_ROOT, newcomer_environment
from coalesce_simulator import SimulatorConfig

# The guide's commands, run from the project folder (docs/production.md; the Dockerfile's CMD).
CODE_SERVER = "dagster code-server start -m coalesce_dagster.definitions --location-name coalesce"
MIGRATE = "dagster instance migrate"
DAEMON = "dagster-daemon run -w deploy/workspace.yaml"
WEBSERVER = "dagster-webserver -w deploy/workspace.yaml"
BIN = Path(sys.executable).parent  # the environment's console scripts: dagster, dagster-daemon, ...

SENSOR = "coalesce_run_status_sensor"
SCHEDULE = "coalesce_daily_organisation"
COALESCE_RUNS = 2  # finished Coalesce runs: one Dagster run each, requested by one sensor tick
DEADLINE_SECONDS = 300


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=4, runs=6, results_per_run=3, users=4)


@pytest.fixture
def dagster_database() -> Iterator[str]:
    with postgres.temporary_database("dagster") as database:
        yield database


def _free_port() -> int:
    """A port nothing listens on now. The servers bind it themselves a moment later (gRPC would
    even share a port silently), so the kernel's fresh ephemeral pick is what keeps it private."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Topology:
    """The processes, started in their own sessions and stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen:
        argv = shlex.split(command)
        log = open(self.logs / f"{name}.log", "w")
        process = subprocess.Popen(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None and name != "migrate":
                raise AssertionError(f"{name} exited ({process.returncode}):\n{self.log(name)}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-4000:]

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _poll(what: str, condition: Any, topology: Topology, timeout: float = DEADLINE_SECONDS) -> Any:
    """Ask other processes about their progress until `condition()` is truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topology.assert_running()
        value = condition()
        if value:
            return value
        time.sleep(0.5)  # polling other processes' progress, not waiting on a guess
    raise AssertionError(f"timed out waiting for {what}")


def _code_server_serving(port: int) -> bool:
    from dagster._grpc.client import DagsterGrpcClient

    try:
        DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories()
        return True
    except Exception:  # not listening yet, or still loading the definitions
        return False


def _graphql(url: str, query: str, **variables: Any) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body
    return body["data"]


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/server_info", timeout=2).close()
        return True
    except OSError:
        return False


START_SENSOR = """mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on Sensor { sensorState { status } } } }"""
START_SCHEDULE = """mutation($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename ... on ScheduleStateResult { scheduleState { status } } } }"""
RUNS = """{ runsOrError { ... on Runs { results { runId status } } } }"""
REPOSITORY = {"repositoryLocationName": "coalesce", "repositoryName": "__repository__"}


def _switch_on(webserver: str) -> bool:
    """The UI's toggles, through the webserver; False while the code location is still loading."""
    sensor = _graphql(webserver, START_SENSOR, selector={**REPOSITORY, "sensorName": SENSOR})["startSensor"]
    if sensor["__typename"] != "Sensor":
        return False
    schedule = _graphql(webserver, START_SCHEDULE, selector={**REPOSITORY, "scheduleName": SCHEDULE})
    assert schedule["startSchedule"]["__typename"] == "ScheduleStateResult", schedule
    return True


def _finished_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord] | None:
    """Every run, once the sensor's and at least one scheduled run exist and all have finished."""
    records = instance.get_run_records()
    scheduled = [r for r in records if r.dagster_run.tags.get("dagster/schedule_name") == SCHEDULE]
    if len(records) >= COALESCE_RUNS + 1 and scheduled and all(r.dagster_run.is_finished for r in records):
        return records
    return None


@pytest.mark.long(seconds=70)
# Each phase has its own bound (DEADLINE_SECONDS, named in its failure); the whole test this one.
@pytest.mark.timeout(3 * DEADLINE_SECONDS)
@pytest.mark.parametrize("destination", ["postgres"], indirect=True)
def test_the_deployed_topology_on_postgres(simulator, warehouse, dagster_database, tmp_path, monkeypatch):
    simulator.state.use_real_clock()
    coalesce_runs = []
    for env_id in ("1", "2"):
        run_id = simulator.state.start_run(env_id)
        simulator.state.set_run_status(run_id, "running")
        simulator.state.set_run_status(run_id, "completed")
        coalesce_runs.append(run_id)

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    code_port, web_port = _free_port(), _free_port()
    dagster = {  # what every process of the deployment is given (docs/production.md)
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": postgres.database_url(dagster_database).replace(
            "postgresql:", "postgresql+psycopg2:"
        ),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_port),
    }
    code_location = {  # the code location's own settings: Coalesce, the destination, the schedules
        **os.environ,  # the simulator's URL and token, Postgres as destination (fixtures)
        **dagster,
        "COALESCE_DAGSTER__SENSOR__MINIMUM_INTERVAL_SECONDS": "1",
        "COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST": "1",  # one Dagster run per Coalesce run
        "COALESCE_DAGSTER__SCHEDULES__ORGANISATION_CRON": "* * * * *",  # its next tick within a minute
        "COALESCE_DAGSTER__SCHEDULES__DEFAULT_STATUS": "stopped",
    }
    # The daemon and the webserver know nothing of Coalesce or the destination.
    platform = newcomer_environment(
        **dagster, DAGSTER_WEBSERVER_HOST="127.0.0.1", DAGSTER_WEBSERVER_PORT=str(web_port)
    )
    webserver = f"http://127.0.0.1:{web_port}"

    topology = Topology(tmp_path)
    try:
        topology.start("code-server", CODE_SERVER, code_location)
        migrate = topology.start("migrate", MIGRATE, platform)  # Dagster's tables, before anything uses them
        assert migrate.wait(timeout=120) == 0, topology.log("migrate")
        _poll("the code server", lambda: _code_server_serving(code_port), topology)
        topology.start("daemon", DAEMON, platform)
        topology.start("webserver", WEBSERVER, platform)
        _poll("the webserver", lambda: _answers(webserver), topology)
        _poll("the sensor and the schedule to switch on", lambda: _switch_on(webserver), topology)

        monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster["DAGSTER_POSTGRES_URL"])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            records = _poll("the launched runs to finish", lambda: _finished_runs(instance), topology)
            enqueued = {
                r.dagster_run.run_id: instance.get_records_for_run(
                    r.dagster_run.run_id, of_type=dg.DagsterEventType.RUN_ENQUEUED
                ).records
                for r in records
            }
            listed_by_webserver = _graphql(webserver, RUNS)["runsOrError"]["results"]
    finally:
        topology.stop()

    runs = [record.dagster_run for record in records]
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs), [run.status for run in runs]
    assert {run["runId"] for run in listed_by_webserver} >= {run.run_id for run in runs}
    sensor_runs = [run for run in runs if run.tags.get("dagster/sensor_name") == SENSOR]
    assert sorted(int(run.tags["coalesce/run_ids"]) for run in sensor_runs) == sorted(coalesce_runs)
    assert all(run.tags.get("dagster/schedule_name") == SCHEDULE for run in runs if run not in sensor_runs)

    # Queued, then run one at a time: every run went through the queue, none overlapped another, and
    # the sensor's second run was waiting while its first ran.
    assert all(enqueued[run.run_id] for run in runs)
    spans = sorted((r.start_time, r.end_time, r.create_timestamp.timestamp()) for r in records)
    for (_, earlier_end, _), (later_start, _, _) in zip(spans, spans[1:]):
        assert later_start >= earlier_end
    sensor_records = sorted((r for r in records if r.dagster_run in sensor_runs), key=lambda r: r.start_time)
    assert sensor_records[1].create_timestamp.timestamp() < sensor_records[0].end_time

    # The loads landed in Postgres, row for row.
    assert sorted(rid for (rid,) in warehouse.keys("runs", "id")) == sorted(coalesce_runs)
    assert sorted(rid for (rid, _) in warehouse.keys("run_results", "run_id", "node_id")) == sorted(
        rid for rid in coalesce_runs for _ in simulator.state.results[rid]
    )
    assert sorted(warehouse.keys("users", "id")) == sorted((uid,) for uid in simulator.state.users)
    assert warehouse.count("projects") == len(simulator.state.projects)


def test_the_guide_is_what_the_topology_test_runs():
    """The production guide names these files and commands, the Dockerfile starts the code server
    the test starts, and deploy/dagster.yaml keeps the committed dagster.yaml's queue."""
    guide = (REPO_ROOT / "docs" / "production.md").read_text()
    for command in (CODE_SERVER, MIGRATE, DAEMON, WEBSERVER, "cp deploy/dagster.yaml"):
        assert command in guide, command
    assert "coalesce_dagster_tests/test_deployment.py" in guide
    cmd = re.search(r"^CMD (\[.*\])$", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd and json.loads(cmd.group(1)) == shlex.split(CODE_SERVER)
    local = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    deployed = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert deployed["concurrency"] == local["concurrency"]
    assert deployed["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert deployed["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
