"""Fixtures shared by the simulator's own tests: a simulator with a fixed seed, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from coalesce_simulator import CoalesceSimulator, SimulatorConfig

from .test_simulator import Client


@pytest.fixture
def sim() -> Iterator[CoalesceSimulator]:
    with CoalesceSimulator(SimulatorConfig(seed=7)) as simulator:
        yield simulator


@pytest.fixture
def client(sim: CoalesceSimulator) -> Client:
    return Client(sim)
