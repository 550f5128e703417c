"""Fault injection: what Coalesce-like APIs do to a load, and what the destination looks like after.

Transient faults (429 with or without Retry-After, 503, a hang past the timeout, a reset connection,
a host that cannot be reached, resolved or spoken TLS to) are retried and the load completes
exactly, or fails with one clear message once the retries are spent. Permanent ones (401/403/404, a
garbage or truncated body, a body of the wrong shape, an outage that outlasts the retries) stop the
load with one clear message, leave the destination exactly as it was, and the next healthy run
completes the data.
"""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.errors import explain
from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import run_load
from coalesce_dagster_tests.expectations import KEY_COLUMNS, assert_matches_simulator
from coalesce_dagster_tests.helpers import CountingServer, contents, on_every_destination, refused_port
from coalesce_simulator import SimulatorConfig

__all__ = ["contents"]  # other fault tests import it from here

# One path prefix per resource family (a prefix also covers the paths below it).
TARGETS = {
    "environments": "/api/v1/environments",  # list, detail and nodes
    "environment_nodes": "/api/v1/environments/1/nodes",
    "runs": "/api/v1/runs",  # list, runs by id and results
    "run_results": "/api/v1/runs/5/results",
    "run_status": "/scheduler/runStatus",
    "users": "/api/v1/users",
}

# Every transient fault, in the order the simulator applies them to a request: two resets, a hang
# past the timeout, a 429 with Retry-After, two 503s. Seven attempts get one request through all.
EVERY_TRANSIENT_FAULT = {
    "reset_burst": 2,
    "hang_burst": 1,
    "hang_seconds": 2.5,
    "rate_limit_burst": 1,
    "retry_after_seconds": 1,
    "server_error_burst": 2,
}
BURSTS = ("reset_burst", "hang_burst", "rate_limit_burst", "server_error_burst")


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(environments=3, nodes_per_environment=9, runs=12, results_per_run=3, users=6)


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch):
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")


def load(sim, page_size: int = 4, **kwargs):
    source = coalesce_source(
        base_url=sim.base_url, access_token=sim.config.token, page_size=page_size, **kwargs
    )
    run_load(source)


def failed_load(sim) -> Exception:
    with pytest.raises(Exception) as failure:
        load(sim)
    return failure.value


def change_coalesce(sim) -> None:
    """Something new to load, so a failed sync visibly loses nothing and a good one adds it."""
    state = sim.state
    state.add_runs(3)
    env_id = next(iter(state.nodes))
    state.deploy(env_id, remove=[next(iter(state.nodes[env_id]))])


@pytest.mark.parametrize("target", list(TARGETS.values()), ids=list(TARGETS))
def test_every_transient_fault_is_retried_and_the_load_is_exact(simulator, warehouse, monkeypatch, target):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "7")
    simulator.faults.update({**EVERY_TRANSIENT_FAULT, "fault_path_prefix": target})
    # A node page that does not answer in time is asked again smaller (`lists.read_pages`).
    load(simulator, nodes_timeout=1)
    unfired = {
        burst: getattr(simulator.faults, burst) for burst in BURSTS if getattr(simulator.faults, burst)
    }
    assert not unfired, f"faults that never fired: {unfired}"
    statuses = [r.status for r in simulator.requests if r.path.startswith(target)]
    assert {0, 429, 503} <= set(statuses) and statuses[-1] == 200
    assert_matches_simulator(warehouse, simulator)


def _retry_of(sim, rejected):
    """The next request that asked what `rejected` asked."""
    records = sim.requests
    later = records[records.index(rejected) + 1 :]
    return next(r for r in later if (r.path, r.query) == (rejected.path, rejected.query))


def test_retry_after_is_honoured(simulator, warehouse, monkeypatch):
    # Room for the 2 s Coalesce asks for; backoff alone would wait 0.05 s (conftest).
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "5")
    simulator.faults.update(
        {"rate_limit_burst": 1, "retry_after_seconds": 2, "fault_path_prefix": "/api/v1/users"}
    )
    load(simulator)
    (rejected,) = [r for r in simulator.requests if r.status == 429]
    retry = _retry_of(simulator, rejected)
    # By the simulator's clock, the retry came no sooner than Retry-After after the request it answered.
    assert retry.arrived - rejected.arrived >= 2.0
    assert retry.status == 200
    assert_matches_simulator(warehouse, simulator, tables=("users",))


def test_429_without_retry_after_is_retried_and_the_load_is_exact(simulator, warehouse):
    """Coalesce documents no Retry-After: a 429 without one is retried on the backoff schedule."""
    simulator.faults.update(
        {"rate_limit_burst": 2, "retry_after_header": False, "fault_path_prefix": "/api/v1/runs"}
    )
    load(simulator)
    rejected = [r for r in simulator.requests if r.status == 429]
    assert len(rejected) == 2
    assert _retry_of(simulator, rejected[-1]).status == 200
    assert_matches_simulator(warehouse, simulator)


PERMANENT = {
    "401_token_rejected": ({"status_override": {"/api/v1/environments": 401}}, "rejected the access token"),
    "403_forbidden": ({"status_override": {"/api/v1/runs": 403}}, "may not read"),
    "404_wrong_region": ({"status_override": {"/api/v1/environments": 404}}, "app.eu.coalescesoftware.io"),
    "garbage_body": (
        {"garbage_burst": 1, "fault_path_prefix": "/api/v1/environments/1/nodes"},
        "not valid JSON",
    ),
    "truncated_body": ({"truncated_burst": 1, "fault_path_prefix": "/api/v1/runs"}, "not valid JSON"),
    "outage_mid_load": ({"fail_after_requests": 12}, "is failing (503)"),
}


@pytest.mark.long
def test_permanent_faults_stop_cleanly_and_the_next_run_completes(simulator, warehouse, subtests):
    """Each permanent fault in turn stops a load with its message and leaves every table exactly as it
    was; with the faults gone, the next run loads everything the failed ones did not."""
    load(simulator)
    before = contents(warehouse)
    change_coalesce(simulator)
    for fault, (settings, message) in PERMANENT.items():
        with subtests.test(fault=fault):
            simulator.faults.reset()
            simulator.faults.update(settings)
            explanation = explain(failed_load(simulator))
            assert explanation and message in explanation
            assert contents(warehouse) == before, "a failed load changed the destination"

    simulator.faults.reset()
    load(simulator)
    assert_matches_simulator(warehouse, simulator)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_client_errors_are_not_retried(simulator, warehouse, status):
    simulator.faults.status_override = {"/api/v1/projects": status}
    failed_load(simulator)
    assert simulator.request_count("/api/v1/projects") == 1


def test_a_wrong_token_quotes_coalesce_and_says_where_to_get_one(simulator, warehouse):
    with pytest.raises(Exception) as failure:
        run_load(coalesce_source(base_url=simulator.base_url, access_token="not-the-token"))
    explanation = explain(failure.value)
    assert 'Coalesce said: "401: Unable to authenticate, please ensure your token is valid."' in explanation
    assert "Generate Access Token" in explanation


def test_error_answers_without_a_body_still_say_what_happened(simulator, warehouse):
    # v6.2 gives 401 no body schema (doc §2.2); a gateway may answer any error with its status alone.
    simulator.faults.bare_errors = True
    with pytest.raises(Exception) as failure:
        run_load(coalesce_source(base_url=simulator.base_url, access_token="not-the-token"))
    explanation = explain(failure.value)
    assert (
        "Coalesce rejected the access token (401)" in explanation and "Generate Access Token" in explanation
    )
    assert [r.status for r in simulator.requests] == [401]  # not retried

    simulator.faults.status_override = {"/api/v1/environments": 404}
    assert "Regional hosts" in explain(failed_load(simulator))
    simulator.faults.status_override = None
    simulator.faults.update({"server_error_burst": 2})
    load(simulator)  # retried through two bare 503s
    assert_matches_simulator(warehouse, simulator)


def _connection_failure(base_url: str) -> str:
    with pytest.raises(Exception) as failure:
        run_load(coalesce_source(base_url=base_url, access_token="t"))
    explanation = explain(failure.value)
    assert "Could not connect to Coalesce" in explanation and "app.eu.coalescesoftware.io" in explanation
    return explanation


def test_a_dropped_connection_is_retried_then_could_not_connect(simulator, warehouse):
    simulator.faults.update({"reset_burst": 100, "fault_path_prefix": "/api/v1/environments"})
    with pytest.raises(Exception) as failure:
        load(simulator)
    assert "Could not connect to Coalesce" in explain(failure.value)
    # As many attempts as `[runtime] request_max_attempts` allows (3 in tests), then the message.
    assert [r.status for r in simulator.requests if r.path == "/api/v1/environments"] == [0, 0, 0]


def test_an_unreachable_host_names_the_regions(warehouse):
    with refused_port() as port:
        _connection_failure(f"http://127.0.0.1:{port}")


def test_a_host_name_that_does_not_resolve_names_the_regions(warehouse):
    _connection_failure("https://coalesce-dagster-test.invalid")  # .invalid never resolves (RFC 6761)


def test_a_failed_tls_handshake_is_retried_then_could_not_connect(warehouse):
    # A host that answers in plain text where TLS is expected (a wrong port, or a proxy).
    with CountingServer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as server:
        explanation = _connection_failure(f"https://127.0.0.1:{server.port}")
    assert "SSL" in explanation
    assert server.connections == 3  # as many attempts as `[runtime] request_max_attempts` allows


@pytest.mark.parametrize(
    "body_path, shape, named",
    [
        (
            "/api/v1/users",
            {"items": []},
            ["/api/v1/users", "expected an object with a `data` list", "'items'"],
        ),
        ("/api/v1/environments", {"data": {"id": "1"}}, ["/api/v1/environments", "a `data` list"]),
        ("/api/v1/users", {"data": [{"firstName": "Ada"}]}, ["a user of /api/v1/users", "an item has no id"]),
    ],
    ids=["list_without_data", "data_not_a_list", "item_without_id"],
)
def test_a_body_of_the_wrong_shape_never_replaces_good_data(simulator, warehouse, body_path, shape, named):
    load(simulator)
    before = contents(warehouse)
    simulator.faults.update({"body_override": {body_path: shape}})
    explanation = explain(failed_load(simulator))
    assert "not what its API documents" in explanation
    assert all(part in explanation for part in named), explanation
    assert contents(warehouse) == before


def test_every_request_names_the_project(simulator, warehouse):
    from coalesce_dagster import __version__

    load(simulator)
    agents = {record.user_agent for record in simulator.requests}
    assert agents == {f"coalesce-dagster/{__version__}"}


@on_every_destination
def test_every_key_column_is_loaded_not_null(simulator, warehouse):
    load(simulator)
    with warehouse.session():  # a query per key column: one connection for all of them
        for table, columns in KEY_COLUMNS.items():
            for column in columns:
                assert warehouse.count(table, f"WHERE {column} IS NULL") == 0, (table, column)
