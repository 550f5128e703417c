"""In Dagster, a failed load shows one actionable message, not only a stack trace."""

from __future__ import annotations

import pytest

from coalesce_dagster.defs.resources import CoalesceResource
from coalesce_dagster_tests.conftest import materialize


def failure_description(result) -> str:
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    data = failure.step_failure_data
    return data.user_failure_data.description if data.user_failure_data else data.error.message


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda sim: {"coalesce": CoalesceResource(access_token="revoked")}, "Coalesce rejected the access token (401)"),
        (lambda sim: sim.faults.update({"status_override": {"/api/v1/environments": 404}}), "Regional hosts: us=app.coalescesoftware.io"),
        (lambda sim: sim.faults.update({"fail_after_requests": 5}), "Coalesce is failing (503)"),
        (lambda sim: sim.faults.update({"garbage_burst": 1, "fault_path_prefix": "/api/v1/users"}), "not valid JSON"),
    ],
    ids=["wrong_token", "wrong_region", "outage", "garbage"],
)
def test_failure_says_what_happened_and_what_to_do(simulator, instance, monkeypatch, setup, expected):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    resources = setup(simulator)
    result = materialize(instance, raise_on_error=False, resources=resources if isinstance(resources, dict) else None)
    assert not result.success
    description = failure_description(result)
    assert expected in description
    assert len(description) < 1200  # a paragraph, not a traceback
