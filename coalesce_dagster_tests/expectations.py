"""What the destination must hold, computed from the simulator's own data."""

from __future__ import annotations

from typing import Any

from coalesce_dagster.coalesce.types import TERMINAL_RUN_STATUSES as TERMINAL
from coalesce_simulator import CoalesceSimulator


def expected_keys(sim: CoalesceSimulator) -> dict[str, set[tuple]]:
    state = sim.state
    return {
        "environments": {(env_id,) for env_id in state.environments},
        "environment": {(env_id,) for env_id in state.environments},
        "environment_nodes": {
            (env_id, node_id) for env_id, nodes in state.nodes.items() for node_id in nodes
        },
        "jobs": {
            (env_id, str(job["id"]))
            for env_id, env in state.environments.items()
            for job in state.projects[env["project"]]["jobs"]
        },
        "runs": {(run_id,) for run_id in state.runs},
        "run_results": {
            (run_id, result["nodeID"]) for run_id, results in state.results.items() for result in results
        },
        "run_status": {(run_id,) for run_id in state.runs},
        "projects": {(project_id,) for project_id in state.projects},
        "users": {(user_id,) for user_id in state.users},
    }


KEY_COLUMNS = {
    "environments": ("id",),
    "environment": ("id",),
    "environment_nodes": ("environment_id", "id"),
    "jobs": ("environment_id", "id"),
    "runs": ("id",),
    "run_results": ("run_id", "node_id"),
    "run_status": ("run_id",),
    "projects": ("id",),
    "users": ("id",),
}


def loaded_keys(warehouse: Any, table: str) -> list[tuple]:
    return warehouse.keys(table, *KEY_COLUMNS[table])


def assert_matches_simulator(
    warehouse: Any, sim: CoalesceSimulator, tables: tuple[str, ...] | None = None
) -> None:
    """Every table holds exactly the simulator's keys, once each, and run states agree."""
    with warehouse.session():  # one connection for the dozen queries
        _assert_matches_simulator(warehouse, sim, tables)


def _assert_matches_simulator(warehouse: Any, sim: CoalesceSimulator, tables: tuple[str, ...] | None) -> None:
    expected = expected_keys(sim)
    for table in tables or tuple(KEY_COLUMNS):
        keys = loaded_keys(warehouse, table)
        assert len(keys) == len(set(keys)), f"duplicate keys in {table}"
        normalized = {tuple(str(part) for part in key) for key in keys}
        wanted = {tuple(str(part) for part in key) for key in expected[table]}
        assert normalized == wanted, (
            f"{table}: missing {sorted(wanted - normalized)[:5]}, extra {sorted(normalized - wanted)[:5]}"
        )
    if tables is None or "runs" in tables:
        statuses = dict(warehouse.rows("SELECT id, run_status FROM coalesce_data.runs"))
        assert statuses == {run_id: run["runStatus"] for run_id, run in sim.state.runs.items()}
        ended = {
            rid
            for (rid,) in warehouse.rows("SELECT id FROM coalesce_data.runs WHERE run_end_time IS NOT NULL")
        }
        assert ended == {rid for rid, run in sim.state.runs.items() if run["runStatus"] in TERMINAL}
    if tables is None or "run_status" in tables:
        statuses = dict(warehouse.rows("SELECT run_id, run_status FROM coalesce_data.run_status"))
        assert set(statuses) == set(sim.state.runs)
