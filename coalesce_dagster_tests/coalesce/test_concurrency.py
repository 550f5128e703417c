"""How many requests a load has in flight, and what a 429 does to that number.

`[extract] workers` is the most requests in flight; `[extract] max_parallel_items` must leave it
room (dlt's default, 20, held the load at about 20 whatever `workers` said); the first 429 halves
the requests in flight (`http.InFlightLimit`), so a load that runs into Coalesce's rate limit stops
asking at full concurrency and completes exactly.
"""

from __future__ import annotations

import logging

import dlt
import pytest

from coalesce_dagster.coalesce.http import InFlightLimit
from coalesce_dagster.coalesce.source import RESOURCE_NAMES, coalesce_source
from coalesce_dagster.pipeline import run_load
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_simulator import SimulatorConfig


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Enough per-run requests (two per run) to fill every worker, each held long enough to overlap.
    return SimulatorConfig(environments=2, nodes_per_environment=5, runs=150, results_per_run=2, users=3)


def load(sim) -> None:
    run_load(coalesce_source(base_url=sim.base_url, access_token=sim.config.token))


def test_the_committed_settings_put_more_requests_in_flight_than_dlts_default_pool(simulator, warehouse):
    workers = int(dlt.config["extract.workers"])
    assert int(dlt.config["extract.max_parallel_items"]) >= workers + len(RESOURCE_NAMES)
    simulator.faults.latency_ms = 20

    load(simulator)

    # dlt's default pool holds at most 20 items, requests and paging resources together.
    assert 20 < simulator.max_concurrency <= workers
    assert_matches_simulator(warehouse, simulator)


def test_a_pool_too_small_for_the_workers_is_named(simulator, warehouse, monkeypatch, caplog):
    monkeypatch.setenv("EXTRACT__WORKERS", "16")
    monkeypatch.setenv("EXTRACT__MAX_PARALLEL_ITEMS", "20")
    with caplog.at_level(logging.WARNING, logger="coalesce_dagster"):
        coalesce_source(base_url=simulator.base_url, access_token=simulator.config.token)
    assert "max_parallel_items = 20 holds the requests in flight under [extract] workers = 16" in caplog.text
    assert "at least 25" in caplog.text


def test_a_rate_limit_narrows_the_requests_in_flight_and_the_load_is_exact(
    simulator, warehouse, monkeypatch, caplog
):
    monkeypatch.setenv("EXTRACT__WORKERS", "16")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "5")
    # Coalesce refuses a fifth request in flight at once, and asks for no wait before the retry: the
    # refusals, not a wait, are what the client must answer.
    simulator.faults.update({"max_in_flight": 4, "retry_after_seconds": 0, "latency_ms": 10})

    with caplog.at_level(logging.WARNING, logger="coalesce_dagster"):
        load(simulator)

    refused = [r for r in simulator.requests if r.status == 429]
    answered = [r for r in simulator.requests if r.status == 200]
    assert refused, "the load never ran into the limit: the test proves nothing"
    # At 16 in flight against a limit of 4, three requests in four would be refused, and many would
    # run out of attempts; narrowed, a few refusals per narrowing remain.
    assert len(refused) < len(answered) / 10, (len(refused), len(answered))
    assert "Coalesce answered 429 (rate limited)" in caplog.text
    assert_matches_simulator(warehouse, simulator)


# The limit's own rules, one request at a time (no threads: each call is what one request does).


def test_the_first_429_halves_the_requests_in_flight():
    limit = InFlightLimit()
    generations = [limit.acquire() for _ in range(8)]
    assert limit.cap is None

    limit.release(generations[0], status=429)

    assert limit.cap == 4  # half of the 8 in flight when the refusal came
    assert limit.in_flight == 7


def test_a_429_to_a_request_sent_before_the_narrowing_narrows_nothing_more():
    limit = InFlightLimit()
    generations = [limit.acquire() for _ in range(8)]

    for generation in generations[:5]:  # refusals of one burst, all sent before the first came back
        limit.release(generation, status=429)

    assert limit.cap == 4


def test_a_429_after_the_narrowing_narrows_again():
    limit = InFlightLimit()
    first = [limit.acquire() for _ in range(8)]
    limit.release(first[0], status=429)  # cap 4, 7 still in flight
    for generation in first[1:]:
        limit.release(generation, status=200)
    later = [limit.acquire() for _ in range(4)]

    limit.release(later[0], status=429)

    assert limit.cap == 2


def test_answers_without_429_widen_the_cap_back_to_none():
    limit = InFlightLimit()
    first = [limit.acquire() for _ in range(4)]
    limit.release(first[0], status=429)  # cap 2
    for generation in first[1:]:
        limit.release(generation, status=200)
    assert limit.cap == 2

    for _ in range(InFlightLimit.GROWTH_ANSWERS):
        limit.release(limit.acquire(), status=200)
    assert limit.cap == 3

    for _ in range(InFlightLimit.GROWTH_ANSWERS):
        limit.release(limit.acquire(), status=200)
    assert limit.cap is None  # as many as were ever in flight: no cap of its own again


def test_a_request_that_got_no_answer_neither_narrows_nor_widens():
    limit = InFlightLimit()
    first = [limit.acquire() for _ in range(4)]
    limit.release(first[0], status=429)  # cap 2
    for generation in first[1:]:
        limit.release(generation, status=None)  # connections that failed

    for _ in range(InFlightLimit.GROWTH_ANSWERS * 3):
        limit.release(limit.acquire(), status=None)

    assert limit.cap == 2
