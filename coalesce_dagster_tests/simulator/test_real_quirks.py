"""The simulator's switches for what clients of real Coalesce accounts see (API doc §10).

Each switch is checked over real HTTP both off (the documented behaviour) and on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coalesce_dagster.simulator import CoalesceSimulator, Faults, SimulatorConfig

from .test_simulator import Client, assert_error

LIST_PATHS = (
    "/api/v1/environments",
    "/api/v1/environments/1/nodes",
    "/api/v1/runs",
    "/api/v1/users",
    "/api/v1/organization/users",
)


@pytest.fixture
def sim() -> Iterator[CoalesceSimulator]:
    with CoalesceSimulator(SimulatorConfig(seed=7)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: CoalesceSimulator) -> Client:
    return Client(sim)


# -- page size cap -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", LIST_PATHS)
def test_max_page_size_off_accepts_the_documented_range(client: Client, path: str) -> None:
    assert client.get(path, limit=1000).status_code == 200
    empty = client.get(path, limit=0)
    assert empty.status_code == 200 and empty.json()["data"] == []


@pytest.mark.parametrize("path", LIST_PATHS)
def test_max_page_size_on_refuses_limits_outside_one_to_n(client: Client, sim: CoalesceSimulator, path: str) -> None:
    sim.faults.max_page_size = 500
    for limit in (501, 1000, 0):
        response = client.get(path, limit=limit)
        assert assert_error(response, 400) == "400: limit must be between 1 and 500"
    for limit in (1, 500):
        assert client.get(path, limit=limit).json()["limit"] == limit
    assert client.get(path).json()["limit"] == 25  # no limit sent: the default, never refused


def test_max_page_size_below_the_default_lowers_it(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.max_page_size = 10
    body = client.get("/api/v1/environments/1/nodes").json()
    assert body["limit"] == 10 and len(body["data"]) == 10


def test_max_page_size_validation() -> None:
    with pytest.raises(ValueError):
        Faults(max_page_size=0)
    with pytest.raises(ValueError):
        Faults().max_page_size = True  # type: ignore[assignment]
