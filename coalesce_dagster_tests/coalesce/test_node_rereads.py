"""Which environments' nodes a sync re-reads (`coalesce/nodes/rereads.py`): only those with a deploy
run since their last read, unless the periodic full re-read is due. Every claim about what was read
is read off the simulator's request log; every claim about rows off the DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coalesce_dagster.coalesce.nodes.rereads import full_reread_due
from coalesce_dagster.coalesce.source import coalesce_source, in_groups
from coalesce_dagster.pipeline import make_pipeline, run_load
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_simulator import SimulatorConfig


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Nothing in flight: a deploy still waiting in the generated history would be re-read each sync.
    return SimulatorConfig(
        environments=3, nodes_per_environment=5, runs=12, results_per_run=2, in_flight_runs=0
    )


def load(sim, **kwargs):
    sim.reset_request_log()
    run_load(coalesce_source(base_url=sim.base_url, access_token=sim.config.token, **kwargs))
    return make_pipeline()


def environments_read(sim) -> set[str]:
    """The environments whose node pages this sync asked for."""
    return {r.path.split("/")[4] for r in sim.requests if r.path.endswith("/nodes")}


def node_rows(warehouse) -> dict[tuple[str, str], str]:
    """(environment id, node id) -> the load that wrote the row."""
    rows = warehouse.rows("SELECT environment_id, id, _dlt_load_id FROM coalesce_data.environment_nodes")
    return {(env_id, node_id): load_id for env_id, node_id, load_id in rows}


def assert_nodes_match(warehouse, sim) -> None:
    """Node rows exactly the simulator's, and their column rows too: none left behind by a node that
    went, none twice."""
    assert_matches_simulator(warehouse, sim, tables=("environment_nodes",))
    columns = sum(
        len(node["metadata"]["columns"]) for nodes in sim.state.nodes.values() for node in nodes.values()
    )
    assert warehouse.count("environment_nodes__columns") == columns
    orphans = warehouse.scalar(
        "SELECT count(*) FROM coalesce_data.environment_nodes__columns c WHERE NOT EXISTS "
        "(SELECT 1 FROM coalesce_data.environment_nodes n WHERE n._dlt_id = c._dlt_root_id)"
    )
    assert orphans == 0


def test_a_sync_with_no_deploy_reads_no_node_page_and_keeps_every_row(simulator, warehouse):
    load(simulator)
    assert environments_read(simulator) == set(simulator.state.environments)
    before = node_rows(warehouse)

    load(simulator)

    assert environments_read(simulator) == set()
    deploy_questions = [r for r in simulator.requests if r.query.get("runType") == "deploy"]
    assert len(deploy_questions) == 1
    assert node_rows(warehouse) == before  # the same rows, from the same load
    assert_nodes_match(warehouse, simulator)


def test_a_deploy_rereads_its_environment_only(simulator, warehouse):
    load(simulator)
    changed, other = sorted(simulator.state.environments)[:2]
    removed = sorted(simulator.state.nodes[changed])[0]
    before = node_rows(warehouse)

    _, (added,) = simulator.state.deploy(changed, add=1, remove=[removed])
    load(simulator)

    assert environments_read(simulator) == {changed}
    after = node_rows(warehouse)
    assert (changed, removed) not in after and (changed, added) in after
    assert {key: after[key] for key in after if key[0] == other} == {
        key: before[key] for key in before if key[0] == other
    }
    assert_nodes_match(warehouse, simulator)

    load(simulator)
    assert environments_read(simulator) == set()


def test_a_deploy_that_removes_every_node_empties_its_environment(simulator, warehouse):
    load(simulator)
    emptied = sorted(simulator.state.environments)[0]
    simulator.state.deploy(emptied, remove=list(simulator.state.nodes[emptied]))

    load(simulator)

    assert environments_read(simulator) == {emptied}
    assert not [key for key in node_rows(warehouse) if key[0] == emptied]
    assert warehouse.count("environment_nodes", "WHERE id = ''") == 0  # the row that said so is not stored
    assert_nodes_match(warehouse, simulator)


def test_a_deploy_in_flight_is_read_again_until_it_has_finished(simulator, warehouse):
    load(simulator)
    deploying = sorted(simulator.state.environments)[1]
    run_id, (first,) = simulator.state.deploy(deploying, add=1, status="running")

    load(simulator)
    assert environments_read(simulator) == {deploying}
    assert (deploying, first) in node_rows(warehouse)

    # The deploy goes on changing nodes after that read, then finishes.
    second = simulator.state.add_node(deploying)
    simulator.state.set_run_status(run_id, "completed")
    load(simulator)
    assert environments_read(simulator) == {deploying}
    assert (deploying, second) in node_rows(warehouse)
    assert_nodes_match(warehouse, simulator)

    load(simulator)
    assert environments_read(simulator) == set()


def test_the_full_reread_sees_what_came_without_a_deploy_and_drops_deleted_environments(simulator, warehouse):
    load(simulator)
    first, _, last = sorted(simulator.state.environments)
    quietly_removed = sorted(simulator.state.nodes[first])[0]
    simulator.state.delete_node(first, quietly_removed)  # no deploy run: what a sync gives up
    simulator.state.delete_environment(last)

    load(simulator)
    assert environments_read(simulator) == set()
    assert (first, quietly_removed) in node_rows(warehouse)

    load(simulator, nodes_full_reread_hours=0)
    assert environments_read(simulator) == set(simulator.state.environments)
    keys = node_rows(warehouse)
    assert (first, quietly_removed) not in keys and not [key for key in keys if key[0] == last]
    assert_nodes_match(warehouse, simulator)

    load(simulator)  # after a full re-read, back to reading only what a deploy changed
    assert environments_read(simulator) == set()


def test_a_sync_that_fails_mid_read_leaves_the_environment_to_be_read_again(simulator, warehouse):
    load(simulator)
    before = node_rows(warehouse)
    changed = sorted(simulator.state.environments)[0]
    simulator.state.deploy(changed, remove=[sorted(simulator.state.nodes[changed])[0]], add=1)
    # Its first node page is answered, the second refused: the sync fails halfway through its nodes.
    nodes_path = f"/api/v1/environments/{changed}/nodes"
    simulator.after_answering(
        nodes_path, lambda: setattr(simulator.faults, "status_override", {nodes_path: 403})
    )

    with pytest.raises(Exception, match="403"):
        load(simulator, nodes_page_size=2)
    assert [r.status for r in simulator.requests if r.path == nodes_path] == [200, 403]
    assert node_rows(warehouse) == before  # nothing of the failed sync was loaded

    simulator.faults.status_override = None
    load(simulator, nodes_page_size=2)
    assert environments_read(simulator) == {changed}  # the failed sync's reading did not count
    assert_nodes_match(warehouse, simulator)


NOW = datetime(2026, 12, 7, 5, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last", "hours", "due"),
    [
        (None, 168, True),  # never read in full
        (NOW - timedelta(hours=100), 168, False),
        (NOW - timedelta(hours=168), 168, True),
        # A daily schedule a few seconds early is still due, rather than a day late.
        (NOW - timedelta(hours=168) + timedelta(seconds=30), 168, True),
        (NOW - timedelta(hours=166), 168, False),
        (NOW - timedelta(seconds=1), 0, True),  # 0: every sync
        (NOW - timedelta(minutes=50), 1, False),  # a short period gets a short slack
    ],
)
def test_full_reread_due(last, hours, due):
    assert full_reread_due(None if last is None else last.isoformat(), NOW, hours) is due


def test_environments_nodes_are_read_one_environment_after_another(simulator, warehouse):
    # One environment's nodes in memory at a time (docs/benchmark.md, "Memory"): every node page of
    # an environment is asked for before any page of the next one, the rows all the same.
    load(simulator, nodes_page_size=2)
    order = [r.path.split("/")[4] for r in simulator.requests if r.path.endswith("/nodes")]
    grouped = [env for position, env in enumerate(order) if position == 0 or order[position - 1] != env]
    assert len(order) > len(grouped) == len(set(order)) == 3, order
    assert_nodes_match(warehouse, simulator)


def test_environments_can_be_read_side_by_side_with_one_plan(simulator, warehouse):
    # `nodes_environments_at_once`: the environments' lists are read on several pool threads; the
    # first to need the re-read plan makes it (one question about deploys), the rows all the same.
    load(simulator, nodes_page_size=2, nodes_environments_at_once=3)
    deploy_questions = [r for r in simulator.requests if r.query.get("runType") == "deploy"]
    assert len(deploy_questions) == 1
    assert environments_read(simulator) == set(simulator.state.nodes)
    assert_nodes_match(warehouse, simulator)
    assert_matches_simulator(warehouse, simulator)


@pytest.mark.parametrize(
    ("count", "groups", "expected"),
    [
        (0, 1, [0]),
        (0, 3, [0]),
        (5, 1, [5]),
        (5, 2, [3, 2]),
        (5, 3, [2, 2, 1]),
        (2, 4, [1, 1]),
        (6, 3, [2, 2, 2]),
    ],
)
def test_environments_pages_split_into_groups_in_order(count, groups, expected):
    items = [{"id": str(n)} for n in range(count)]
    split = list(in_groups(items, groups))
    assert [len(group) for group in split] == expected
    assert [item for group in split for item in group] == items
