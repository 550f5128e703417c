"""What lets the simulator serve the benchmark's large organisation: lazy, deterministic results,
fast paging, and the control endpoints the benchmark drives."""

from __future__ import annotations

import random
from typing import Any

import requests

from coalesce_simulator import CoalesceSimulator, Faults, SimulatorConfig, SimulatorState
from coalesce_simulator.paging import PageParams, paginate
from coalesce_simulator.results import DEFAULT_CACHE_SIZE

CONFIG = SimulatorConfig(seed=5, environments=3, nodes_per_environment=40, runs=300, results_per_run=12)


def test_historical_results_are_rebuilt_on_access_identically() -> None:
    state, twin = SimulatorState(CONFIG), SimulatorState(CONFIG)
    finished = [
        rid for rid, run in state.runs.items() if run["runStatus"] in ("completed", "failed", "canceled")
    ]
    assert finished and all(state.results.is_lazy(rid) for rid in finished)
    first = {rid: state.results[rid] for rid in finished}
    # Every list has left the small LRU by now, so these are rebuilt, and equal the first ones.
    assert len(finished) > DEFAULT_CACHE_SIZE
    assert {rid: state.results[rid] for rid in finished} == first
    assert {rid: twin.results[rid] for rid in finished} == first
    assert all(len(first[rid]) == len(state.runs[rid]["_nodes"]) for rid in finished)
    failed = next(rid for rid in finished if state.runs[rid]["runStatus"] == "failed")
    error = next(r for r in first[failed] if r["runState"] == "error")
    assert error["name"] in state.runs[failed]["runFailureReason"]
    # The mapping behaves like the dict it replaced.
    assert list(state.results) == list(state.runs) and len(state.results) == len(state.runs)
    assert 10_000 not in state.results and state.results.get(10_000) is None
    assert dict(state.results.items()).keys() == state.runs.keys()


def test_sizes_count_rows_without_building_results() -> None:
    state = SimulatorState(CONFIG)
    state.add_runs(3, status="running")
    sizes = state.sizes()
    assert sizes["run_results"] == sum(len(results) for results in state.results.values())
    assert sizes["runs"] == sizes["run_status"] == len(state.runs) == 303
    assert sizes["environment_nodes"] == 120 and sizes["environments"] == sizes["environment"] == 3
    assert sizes["jobs"] == 3 * 2  # each environment lists its project's two jobs


def test_presorted_paging_pages_like_sorting() -> None:
    rng = random.Random(1)
    for _ in range(200):
        items = [{"id": i} for i in sorted(rng.sample(range(1, 500), rng.randint(0, 60)))]
        limit = rng.randint(1, 15)
        direction = rng.choice(["asc", "desc"])
        faults = Faults(inclusive_cursor=rng.random() < 0.3, next_style=rng.choice(["string", "number"]))
        cursor: Any = rng.choice([None, str(rng.randint(0, 520))])  # may name no item at all
        for _ in range(100):
            params = PageParams(limit, "id", direction, cursor)
            page, meta = paginate(items, params, faults, numeric_ids=True, presorted=True)
            assert (page, meta) == paginate(items, params, faults, numeric_ids=True)
            if "next" not in meta:
                break
            cursor = str(meta["next"])


def test_control_endpoints_add_runs_and_report_sizes() -> None:
    with CoalesceSimulator(CONFIG) as sim:
        control = sim.base_url + "/_simulator"
        before = requests.get(control + "/sizes", timeout=10).json()
        response = requests.post(control + "/runs/add", json={"count": 3, "status": "completed"}, timeout=10)
        assert response.status_code == 200
        run_ids = response.json()["run_ids"]
        assert run_ids == [301, 302, 303]
        assert all(sim.state.runs[rid]["runStatus"] == "completed" for rid in run_ids)
        after = requests.get(control + "/sizes", timeout=10).json()
        assert after["runs"] == before["runs"] + 3
        assert after["run_results"] == before["run_results"] + sum(len(sim.state.results[r]) for r in run_ids)
        for bad in ({"count": -1}, {"count": "3"}, {"count": 1, "status": "nope"}, {"count": True}):
            assert requests.post(control + "/runs/add", json=bad, timeout=10).status_code == 400, bad
        missing = {"count": 1, "environmentID": "999"}
        assert requests.post(control + "/runs/add", json=missing, timeout=10).status_code == 404
        # Control requests are not counted as API traffic.
        assert requests.get(control + "/stats", timeout=10).json()["requests"] == 0
