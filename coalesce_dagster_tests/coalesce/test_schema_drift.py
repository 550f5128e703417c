"""Schema drift: new fields become columns, a changed type neither fails nor corrupts, gaps are NULL."""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import run_load
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_dagster_tests.helpers import on_every_destination
from coalesce_simulator import SimulatorConfig


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=2, nodes_per_environment=6, runs=8, results_per_run=3)


def load(sim):
    run_load(coalesce_source(base_url=sim.base_url, access_token=sim.config.token))


def columns(warehouse, table: str) -> dict[str, str]:
    return dict(
        warehouse.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'coalesce_data' AND table_name = ?",
            table,
        )
    )


@on_every_destination
def test_a_field_that_changes_type_lands_in_a_variant_column(simulator, warehouse):
    load(simulator)
    assert columns(warehouse, "runs")["version"] == warehouse.type_name("bigint")
    old_versions = dict(warehouse.rows("SELECT id, version FROM coalesce_data.runs"))

    (new_run,) = simulator.state.add_runs(1)
    simulator.state.runs[new_run]["version"] = "v2-beta"  # Coalesce starts sending text
    load(simulator)

    cols = columns(warehouse, "runs")
    assert cols["version"] == warehouse.type_name("bigint") and cols[
        "version__v_text"
    ] == warehouse.type_name("text")
    assert (
        warehouse.scalar("SELECT version__v_text FROM coalesce_data.runs WHERE id = ?", new_run) == "v2-beta"
    )
    assert (
        dict(warehouse.rows(f"SELECT id, version FROM coalesce_data.runs WHERE id <> {new_run}"))
        == old_versions
    )
    assert_matches_simulator(warehouse, simulator)


def test_a_missing_optional_field_is_null(simulator, warehouse):
    load(simulator)
    env_id = next(iter(simulator.state.environments))
    del simulator.state.environments[env_id]["description"]
    load(simulator)
    assert warehouse.scalar("SELECT description FROM coalesce_data.environment WHERE id = ?", env_id) is None
    assert (
        warehouse.count("environment", "WHERE description IS NOT NULL")
        == len(simulator.state.environments) - 1
    )


@on_every_destination
def test_new_fields_become_columns_and_old_rows_keep_their_values(simulator, warehouse):
    load(simulator)
    before = warehouse.rows("SELECT id, email, first_name, last_name FROM coalesce_data.users ORDER BY id")
    simulator.faults.extra_fields = True
    load(simulator)
    assert "simulator_extra__a" in columns(warehouse, "users")
    assert (
        warehouse.rows("SELECT id, email, first_name, last_name FROM coalesce_data.users ORDER BY id")
        == before
    )
    assert warehouse.count("users", "WHERE simulator_extra__a = 1") == len(simulator.state.users)
