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


def test_users_are_found_at_the_organization_path_too(simulator, warehouse):
    simulator.faults.status_override = {"/api/v1/users": 404}
    load(simulator)
    assert_matches_simulator(warehouse, simulator, tables=("users",))
    assert simulator.request_count("/api/v1/organization/users") >= 1
