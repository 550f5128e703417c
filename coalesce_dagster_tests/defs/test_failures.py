"""In Dagster, a failed load shows one actionable message, not only a stack trace."""

from __future__ import annotations

import pytest

from coalesce_dagster.defs.resources import CoalesceResource
from coalesce_dagster_tests.helpers import materialize, on_every_destination


def failure_description(result) -> str:
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.mark.parametrize(
    "setup, expected",
    [
        (
            lambda sim: {"coalesce": CoalesceResource(access_token="revoked")},
            "Coalesce rejected the access token (401)",
        ),
        (
            lambda sim: sim.faults.update({"status_override": {"/api/v1/environments": 404}}),
            "Regional hosts: us=app.coalescesoftware.io",
        ),
        (lambda sim: sim.faults.update({"fail_after_requests": 5}), "Coalesce is failing (503)"),
        (
            lambda sim: sim.faults.update({"garbage_burst": 1, "fault_path_prefix": "/api/v1/users"}),
            "not valid JSON",
        ),
    ],
    ids=["wrong_token", "wrong_region", "outage", "garbage"],
)
def test_failure_says_what_happened_and_what_to_do(simulator, instance, monkeypatch, setup, expected):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    resources = setup(simulator)
    result = materialize(
        instance, raise_on_error=False, resources=resources if isinstance(resources, dict) else None
    )
    assert not result.success
    description = failure_description(result)
    assert expected in description
    assert len(description) < 1200  # a paragraph, not a traceback


@on_every_destination
def test_a_first_load_that_fails_creates_nothing_in_the_destination(
    simulator, instance, destination, warehouse, duckdb_file
):
    result = materialize(
        instance, raise_on_error=False, resources={"coalesce": CoalesceResource(access_token="revoked")}
    )
    assert not result.success and "(401)" in failure_description(result)
    if destination == "duckdb":
        assert not duckdb_file.exists()  # no empty file left behind
    else:  # no schema: the dataset and its staging are made by the load step, after the extract
        schemas = {name for (name,) in warehouse.rows("SELECT schema_name FROM information_schema.schemata")}
        assert not {schema for schema in schemas if schema.startswith("coalesce")}, schemas


def test_a_duckdb_file_held_by_another_process_is_named_with_its_pid(simulator, instance, warehouse):
    import subprocess
    import sys

    from coalesce_dagster_tests.coalesce.test_faults import contents

    assert materialize(instance, selection=["environments", "projects"]).success
    before = contents(warehouse)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('holding', flush=True); sys.stdin.read()",
            str(warehouse.path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"  # it has the file open now
        result = materialize(instance, selection=["environments", "projects"], raise_on_error=False)
    finally:
        holder.stdin.close()  # lets it exit, releasing the file
        holder.wait(timeout=30)

    assert not result.success
    description = failure_description(result)
    assert description.startswith(f"Another process holds the DuckDB file {warehouse.path}")
    assert f"(PID {holder.pid})" in description and f"kill {holder.pid}" in description
    assert contents(warehouse) == before


def test_progress_and_retries_reach_the_dagster_run_log(simulator, instance_with_committed_logging):
    """With the committed dagster.yaml's `python_logs`, the run log shows dlt's steps with counts,
    the Coalesce requests, and each retry with its cause and wait."""
    instance = instance_with_committed_logging
    simulator.faults.update({"server_error_burst": 1, "fault_path_prefix": "/api/v1/projects"})
    result = materialize(instance)
    assert result.success
    messages = [
        record.user_message for record in instance.all_logs(result.run_id) if not record.is_dagster_event
    ]
    text = "\n".join(messages)
    for step in ("Extract coalesce_source", "Normalize coalesce_source", "Load coalesce_source"):
        assert step in text, step
    sent = [int(line.split()[2]) for line in text.splitlines() if line.startswith("Coalesce requests: ")]
    assert max(sent) == simulator.request_count()
    assert "Coalesce request failed (503 on /api/v1/projects); retry 1 of 2" in text
