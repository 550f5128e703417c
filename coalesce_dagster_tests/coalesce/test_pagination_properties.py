"""Property: whatever the paging variant and page size, every item arrives exactly once."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coalesce_dagster.coalesce.client import CoalesceClient
from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_simulator import CoalesceSimulator, SimulatorConfig

variants = st.fixed_dictionaries(
    {
        "next_style": st.sampled_from(["string", "number"]),
        "end_style": st.sampled_from(["absent", "null", "empty"]),
        "total_null": st.booleans(),
        "inclusive_cursor": st.booleans(),
        "runs_v62_paging": st.booleans(),
        "run_ids_as_strings": st.booleans(),
    }
)
# An inclusive cursor repeats one item per page, so it can only make progress with pages of 2+.
page_sizes = st.integers(min_value=1, max_value=13)

SIM = SimulatorConfig(environments=3, nodes_per_environment=11, runs=17, users=14, jobs_per_project=7)


def _check(sim: CoalesceSimulator, faults: dict, page_size: int) -> None:
    if faults["inclusive_cursor"] and page_size < 2:
        page_size = 2
    sim.faults.reset()
    sim.faults.update(faults)
    source = coalesce_source(base_url=sim.base_url, access_token=sim.config.token, page_size=page_size)

    users = [u["id"] for u in source.resources["users"]]
    assert sorted(users) == sorted(sim.state.users)

    # Every environment's nodes (0: a full re-read): iterated outside a pipeline, the resource's state
    # is whichever pipeline this process last made, which may say the environments were read.
    source = coalesce_source(
        base_url=sim.base_url,
        access_token=sim.config.token,
        page_size=page_size,
        nodes_page_size=page_size,
        nodes_full_reread_hours=0,
    )
    nodes = [
        (n["environment_id"], n["id"])
        for n in source.with_resources("environment_nodes").resources["environment_nodes"]
    ]
    assert sorted(nodes) == sorted((e, n) for e, ns in sim.state.nodes.items() for n in ns)

    jobs = [(j["environment_id"], j["id"]) for j in source.with_resources("jobs").resources["jobs"]]
    assert sorted(jobs) == sorted(
        (env_id, str(job["id"]))
        for env_id in sim.state.environments
        for job in sim.state.environment_jobs(env_id)
    )

    client = CoalesceClient(sim.base_url, sim.config.token)
    runs = [run.id for new_runs, _ in client.new_runs(lambda run: False, page_size) for run in new_runs]
    assert sorted(runs) == sorted(sim.state.runs)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=variants, page_size=page_sizes)
def test_every_item_exactly_once(faults, page_size):
    with CoalesceSimulator(SIM) as sim:
        _check(sim, faults, page_size)
