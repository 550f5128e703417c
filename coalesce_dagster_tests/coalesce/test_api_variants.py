"""Every API variant the reference marks CONFLICT or INFERRED loads the same data.

These drive the dlt source directly into DuckDB (no Dagster), the way dlt's own offline tests do.
"""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import make_pipeline, run_load
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_simulator import SimulatorConfig

VARIANTS = {
    "next_as_number": {"next_style": "number"},
    "end_with_null_next": {"end_style": "null"},
    "end_with_empty_next": {"end_style": "empty"},
    "total_null": {"total_null": True},
    "inclusive_cursor": {"inclusive_cursor": True},
    "run_ids_as_strings": {"run_ids_as_strings": True},
    "results_wrapped_in_results": {"results_envelope": "results"},
    "results_as_bare_list": {"results_envelope": "bare"},
    "runs_paged_the_v62_way": {"runs_v62_paging": True},
    "unknown_new_fields": {"extra_fields": True},
    "optional_fields_as_null": {"optional_fields_as_null": True},
}


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=12, runs=23, users=9, projects=2)


def load(sim, page_size: int = 5, **kwargs):
    run_load(
        coalesce_source(base_url=sim.base_url, access_token=sim.config.token, page_size=page_size, **kwargs),
    )
    return make_pipeline()


@pytest.mark.parametrize("faults", list(VARIANTS.values()), ids=list(VARIANTS))
def test_variant_loads_every_row_once(simulator, warehouse, faults):
    for name, value in faults.items():
        setattr(simulator.faults, name, value)
    load(simulator)
    assert_matches_simulator(warehouse, simulator)
    # ...and a second sync over the same variant neither duplicates nor loses anything.
    load(simulator)
    assert_matches_simulator(warehouse, simulator)


def test_optional_run_fields_sent_as_null_keep_each_run_in_its_environment(simulator, warehouse):
    # A detail run may carry `"environmentID": null` at its top beside the id in `runDetails`.
    simulator.faults.optional_fields_as_null = True
    load(simulator)
    environments = dict(warehouse.rows("SELECT id, environment_id FROM coalesce_data.runs"))
    assert environments == {run_id: run["environmentID"] for run_id, run in simulator.state.runs.items()}


def test_users_are_found_at_the_organization_path_too(simulator, warehouse):
    simulator.faults.status_override = {"/api/v1/users": 404}
    load(simulator)
    assert_matches_simulator(warehouse, simulator, tables=("users",))
    assert simulator.request_count("/api/v1/organization/users") >= 1


# Every list's last page full: 2 environments, 10 nodes each, 2 jobs each, 10 users, 20 runs, read
# 2, 5 and 5 at a time. Whether a full page without `next` is the last one is what these decide.
FULL_LAST_PAGES = SimulatorConfig(environments=2, nodes_per_environment=10, runs=20, users=10, projects=2)


@pytest.mark.parametrize("simulator_config", [FULL_LAST_PAGES], ids=["full_last_pages"])
@pytest.mark.parametrize(
    "faults",
    [{"total_absent": True}, {"total_absent": True, "runs_v62_paging": True}],
    ids=["no_total_anywhere", "no_total_and_runs_paged_the_v62_way"],
)
def test_full_last_pages_without_next_or_total_end_every_list(simulator, warehouse, faults):
    """`total` is optional (doc §4.3), so a full page without `next` is the last one; only the runs
    list may be v6.2's, which has neither key on any page and goes on from a full page's last id."""
    for name, value in faults.items():
        setattr(simulator.faults, name, value)
    load(simulator, page_size=2, nodes_page_size=5, runs_page_size=5)
    assert_matches_simulator(warehouse, simulator)
    refused = [(r.path, r.query) for r in simulator.requests if r.status >= 400]
    assert not refused, f"Coalesce refused {refused}"
    cursors = [r.query["startingFrom"] for r in simulator.requests if "startingFrom" in r.query]
    # A raw id as a cursor only on the runs list (v6.2's protocol, which a current server accepts too).
    raw = [r.path for r in simulator.requests if r.query.get("startingFrom", "x").isdigit()]
    assert set(raw) <= {"/api/v1/runs"} and raw, cursors
