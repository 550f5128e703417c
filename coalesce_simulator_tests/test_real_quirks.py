"""The simulator's switches for what clients of real Coalesce accounts see (API doc §10).

Each switch is checked over real HTTP both off (the documented behaviour) and on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests

from coalesce_dagster_tests.helpers import read_line
from coalesce_simulator import (
    DEFAULT_TOKEN,
    ECHOED_SECRET_VALUES,
    CoalesceSimulator,
    Faults,
    SimulatorConfig,
    SimulatorState,
    real_account_quirks,
)

from .test_simulator import BASIC_CREDENTIALS, REPO_ROOT, Client, assert_error

LIST_PATHS = (
    "/api/v1/environments",
    "/api/v1/environments/1/nodes",
    "/api/v1/environments/1/jobs",
    "/api/v1/runs",
    "/api/v1/users",
    "/api/v1/organization/users",
)


# -- page size cap -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", LIST_PATHS)
def test_max_page_size_off_accepts_the_documented_range(client: Client, path: str) -> None:
    assert client.get(path, limit=1000).status_code == 200
    empty = client.get(path, limit=0)
    assert empty.status_code == 200 and empty.json()["data"] == []


@pytest.mark.parametrize("path", LIST_PATHS)
def test_max_page_size_on_refuses_limits_outside_one_to_n(
    client: Client, sim: CoalesceSimulator, path: str
) -> None:
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


# -- slow detail pages ---------------------------------------------------------------------------

NODES = "/api/v1/environments/1/nodes"


class _SignallingEvent(threading.Event):
    """The simulator's stop event, also telling the test when a request starts and ends waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()
        self.woken = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        try:
            return super().wait(timeout)
        finally:
            self.woken.set()


def test_detail_page_hang_off_serves_big_detail_pages_at_once(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.detail_page_hang_seconds = 30  # no threshold: off
    response = client.session.get(client.base_url + NODES, params={"detail": "true", "limit": 25}, timeout=5)
    assert response.status_code == 200 and len(response.json()["data"]) == 25


def test_detail_page_hang_only_slows_detail_pages_above_the_threshold(
    client: Client, sim: CoalesceSimulator
) -> None:
    sim.faults.detail_page_hang_above = 10
    sim.faults.detail_page_hang_seconds = 30  # far beyond the short timeout; stop() ends it

    def get(timeout: float, **params: Any) -> requests.Response:
        return client.session.get(client.base_url + NODES, params=params, timeout=timeout)

    with pytest.raises(requests.exceptions.ReadTimeout):
        get(0.2, detail="true", limit=11)
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(0.2, detail="true")  # the default page (25) is above the threshold too
    assert len(get(5, detail="true", limit=10).json()["data"]) == 10
    assert len(get(5, limit=25).json()["data"]) == 25  # summaries are not slow
    assert_error(get(5, detail="true", limit="x"), 400)  # refused requests answer at once
    node_id = next(iter(sim.state.nodes["1"]))
    assert client.get(f"{NODES}/{node_id}").status_code == 200


def test_detail_page_hang_holds_no_lock_and_ends_on_stop() -> None:
    faults = Faults(detail_page_hang_above=0, detail_page_hang_seconds=60)
    sim = CoalesceSimulator(SimulatorConfig(seed=7), faults).start()
    try:
        stopping = sim._stopping = _SignallingEvent()
        client = Client(sim)
        outcome: list[Any] = []

        def slow() -> None:
            try:
                outcome.append(
                    client.session.get(client.base_url + NODES, params={"detail": "true"}, timeout=60)
                )
            except requests.exceptions.RequestException as error:
                outcome.append(error)

        thread = threading.Thread(target=slow)
        thread.start()
        assert stopping.waiting.wait(5), "the detail page never started waiting"
        # While the page waits, the state lock is free and other requests are served.
        assert sim.state.lock.acquire(blocking=False)
        sim.state.lock.release()
        assert Client(sim).get("/api/v1/environments").status_code == 200
        assert thread.is_alive() and not outcome and not stopping.woken.is_set()
    finally:
        sim.stop()
    assert stopping.woken.wait(10), "stop() did not cut the 60 s wait short"
    thread.join(timeout=10)
    assert not thread.is_alive()


# -- run links ---------------------------------------------------------------------------------------

UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_run_link_counter_style_by_default(client: Client, sim: CoalesceSimulator) -> None:
    link = client.get("/scheduler/runStatus", runCounter=38).json()["runLink"]
    assert link == f"{sim.base_url}/runs/38" == sim.state.run_link(38)


def test_run_link_uuid_style(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.run_link_style = "uuid"
    new_run = client.start_run(environmentID="1")
    links = {
        run_id: client.get("/scheduler/runStatus", runCounter=run_id).json()["runLink"]
        for run_id in (1, 38, new_run)
    }
    for run_id, link in links.items():
        assert re.fullmatch(re.escape(sim.base_url) + "/runs/" + UUID4, link), link
        assert link == sim.state.run_link(run_id) == f"{sim.base_url}/runs/{sim.state.run_uuid(run_id)}"
    assert len(set(links.values())) == 3
    sim.faults.run_link_style = "counter"  # a render-time choice: switching back restores the counter
    assert client.get("/scheduler/runStatus", runCounter=38).json()["runLink"] == f"{sim.base_url}/runs/38"


def test_run_link_uuid_is_stable_per_seed_and_run() -> None:
    config = {"environments": 1, "runs": 2, "nodes_per_environment": 2}
    first, again, other = (SimulatorState(SimulatorConfig(seed=seed, **config)) for seed in (3, 3, 4))
    assert first.run_uuid(2) == again.run_uuid(2) != other.run_uuid(2)
    assert first.run_uuid(1) != first.run_uuid(2)
    with pytest.raises(ValueError):
        Faults(run_link_style="guid")


# -- run results: failed node state, and results while a run is going -------------------------------


def _states(client: Client, run_id: int) -> list[str]:
    return [result["runState"] for result in client.get(f"/api/v1/runs/{run_id}/results").json()["data"]]


def test_failed_run_state(client: Client, sim: CoalesceSimulator) -> None:
    historical = next(r["id"] for r in sim.state.runs.values() if r["runStatus"] == "failed" and r["_nodes"])
    assert sim.state.results.is_lazy(historical)  # rebuilt on access, never stored
    live = sim.state.start_run("1")
    sim.state.set_run_status(live, "running")
    sim.state.set_run_status(live, "failed")
    assert not sim.state.results.is_lazy(live)

    for run_id in (historical, live):  # off: the documented spelling
        states = _states(client, run_id)
        assert states.count("error") == 1 and "failed" not in states

    sim.faults.failed_run_state = "failed"
    for run_id in (historical, live):
        states = _states(client, run_id)
        assert states.count("failed") == 1 and "error" not in states
        assert set(states) <= {"complete", "failed", "skipped"}
    # The state keeps its own spelling, so re-runs still know what finished.
    assert [r["runState"] for r in sim.state.results[live]].count("error") == 1
    rerun = client.post(
        "/scheduler/rerun", {"runDetails": {"runID": live}, "userCredentials": BASIC_CREDENTIALS}
    )
    assert rerun.status_code == 200, rerun.text
    sim.faults.results_envelope = "bare"  # the mapping does not depend on the envelope
    assert [r["runState"] for r in client.get(f"/api/v1/runs/{live}/results").json()].count("failed") == 1
    with pytest.raises(ValueError):
        sim.faults.failed_run_state = "failure"


@pytest.mark.parametrize("failed_state", ["error", "failed"])
def test_results_while_a_run_is_going(client: Client, sim: CoalesceSimulator, failed_state: str) -> None:
    sim.faults.failed_run_state = failed_state
    # Queued (the newest historical run, and one started now): 200 with no items, not a 404.
    assert sim.state.runs[40]["runStatus"] == "waitingToRun"
    run_id = client.start_run(environmentID="1")
    for queued in (40, run_id):
        response = client.get(f"/api/v1/runs/{queued}/results")
        assert response.status_code == 200 and response.json() == {"data": []}

    # Running: every node of a run that just started is running; a half-done run mixes both.
    sim.state.set_run_status(run_id, "running")
    running = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert running and all(r["isRunning"] and r["runState"] == "running" for r in running)
    half_done = client.get("/api/v1/runs/39/results").json()["data"]
    assert {(r["isRunning"], r["runState"]) for r in half_done} == {(True, "running"), (False, "complete")}

    # Finished: the final items replace the running ones.
    sim.state.set_run_status(run_id, "failed")
    final = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert len(final) == len(running) and not any(r["isRunning"] for r in final)
    assert [r["runState"] for r in final].count(failed_state) == 1


# -- fields the v6.2 spec leaves out -------------------------------------------------------------------


def test_run_status_without_status(client: Client, sim: CoalesceSimulator) -> None:
    run = sim.state.runs[38]
    link = sim.state.run_link(38)
    body = client.get("/scheduler/runStatus", runCounter=38).json()
    assert body == {"runStatus": run["runStatus"], "runType": run["runType"], "runLink": link}
    sim.faults.run_status_without_status = True
    body = client.get("/scheduler/runStatus", runCounter=38).json()
    assert body == {"runType": run["runType"], "runLink": link}
    assert client.get("/api/v1/runs/38").json()["runStatus"] == run["runStatus"]  # still there


def test_environment_detail_without_id(client: Client, sim: CoalesceSimulator) -> None:
    full = client.get("/api/v1/environments/2").json()
    assert full["id"] == "2"
    sim.faults.environment_detail_without_id = True
    bare = client.get("/api/v1/environments/2").json()
    assert bare == {key: value for key, value in full.items() if key != "id"}
    assert sim.state.environments["2"]["id"] == "2"  # only the view loses it
    listed = client.get("/api/v1/environments", detail="true").json()["data"]
    assert [env["id"] for env in listed] == ["1", "2", "3"]  # list items keep theirs


# -- results envelopes ------------------------------------------------------------------------------


def test_results_items_envelope(client: Client, sim: CoalesceSimulator) -> None:
    documented = client.get("/api/v1/runs/38/results").json()
    assert set(documented) == {"data"} and documented["data"]
    sim.faults.results_envelope = "items"
    assert client.get("/api/v1/runs/38/results").json() == {"items": documented["data"]}


def test_results_late_envelope(client: Client, sim: CoalesceSimulator) -> None:
    documented = client.get("/api/v1/runs/38/results")
    assert documented.content.index(b'"data"') < 200
    sim.faults.results_envelope = "results_late"
    late = client.get("/api/v1/runs/38/results")
    body = late.json()
    assert list(body) == ["runID", "note", "results"] and body["runID"] == 38 and len(body["note"]) == 200
    assert body["results"] == documented.json()["data"]
    assert late.content.index(b"results") > 200  # the first mention of the word is the key
    sim.faults.run_ids_as_strings = True
    assert client.get("/api/v1/runs/38/results").json()["runID"] == "38"


# -- Retry-After ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_retry_after_header(client: Client, sim: CoalesceSimulator, header: bool) -> None:
    sim.faults.retry_after_header = header
    sim.faults.retry_after_seconds = 4
    sim.faults.rate_limit_burst = 1
    sim.faults.status_override = {"/api/v1/users": 429}
    for path in ("/api/v1/environments", "/api/v1/users"):  # a burst, then a forced status
        response = client.get(path)
        assert_error(response, 429)
        assert response.headers.get("Retry-After") == ("4" if header else None)
    assert client.get("/api/v1/environments").status_code == 200


# -- echoed credentials ----------------------------------------------------------------------------


RUN_VIEWS = (
    ("/api/v1/runs", {"limit": 5}),
    ("/api/v1/runs", {"limit": 5, "detail": "true"}),
    ("/api/v1/runs/38", {}),
)


def _run_objects(client: Client, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    response = client.get(path, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    return (body["data"] if "data" in body else [body]), response.text


def test_echo_credentials_off_sends_no_secrets(client: Client) -> None:
    for path, params in RUN_VIEWS:
        runs, text = _run_objects(client, path, params)
        assert runs and not any(
            key in run.get("userCredentials", {}) for run in runs for key in ECHOED_SECRET_VALUES
        )
        assert not any(json.dumps(value)[1:-1] in text for value in ECHOED_SECRET_VALUES.values())


def test_echo_credentials_on_puts_secrets_in_every_run_view(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.echo_credentials = True
    for path, params in RUN_VIEWS:
        runs, _ = _run_objects(client, path, params)
        for run in runs:
            stored = sim.state.runs[run["id"]]["userCredentials"]
            assert run["userCredentials"] == {**stored, **ECHOED_SECRET_VALUES}
    assert not set(ECHOED_SECRET_VALUES) & set(sim.state.runs[38]["userCredentials"])  # the state stays clean
    assert "userCredentials" not in client.get("/scheduler/runStatus", runCounter=38).json()


# -- the real-account preset, the control plane and the CLI ----------------------------------------

NEW_KNOBS: dict[str, Any] = {
    "max_page_size": 100,
    "detail_page_hang_above": 50,
    "detail_page_hang_seconds": 0.5,
    "run_link_style": "uuid",
    "failed_run_state": "failed",
    "run_status_without_status": True,
    "environment_detail_without_id": True,
    "results_envelope": "results_late",
    "retry_after_header": False,
    "echo_credentials": True,
    "jobs_list_missing": True,
}


def test_new_knobs_default_to_the_documented_behaviour() -> None:
    defaults = Faults().to_dict()
    assert {name: defaults[name] for name in NEW_KNOBS} == {
        "max_page_size": None,
        "detail_page_hang_above": None,
        "detail_page_hang_seconds": 0.0,
        "run_link_style": "counter",
        "failed_run_state": "error",
        "run_status_without_status": False,
        "environment_detail_without_id": False,
        "results_envelope": "data",
        "retry_after_header": True,
        "echo_credentials": False,
        "jobs_list_missing": False,
    }


def test_real_account_preset() -> None:
    preset = real_account_quirks()
    assert preset == {"max_page_size": 500, "run_link_style": "uuid", "failed_run_state": "failed"}
    faults = Faults.real_account()
    assert faults == Faults(**preset) != Faults()
    faults.reset()
    assert faults == Faults()


def test_real_account_simulator_over_http() -> None:
    with CoalesceSimulator(SimulatorConfig(seed=7), Faults.real_account()) as sim:
        client = Client(sim)
        assert_error(client.get("/api/v1/environments/1/nodes", limit=1000), 400)
        assert client.get("/api/v1/environments/1/nodes", limit=500).status_code == 200
        link = client.get("/scheduler/runStatus", runCounter=38).json()["runLink"]
        assert link == sim.state.run_link(38) == f"{sim.base_url}/runs/{sim.state.run_uuid(38)}"
        failed = next(r["id"] for r in sim.state.runs.values() if r["runStatus"] == "failed" and r["_nodes"])
        assert "failed" in _states(client, failed)


def test_control_plane_sets_every_new_knob(sim: CoalesceSimulator, client: Client) -> None:
    base = sim.base_url + "/_simulator"
    answer = requests.post(base + "/faults", json=NEW_KNOBS, timeout=5)
    assert answer.status_code == 200 and {name: answer.json()[name] for name in NEW_KNOBS} == NEW_KNOBS
    assert {name: getattr(sim.faults, name) for name in NEW_KNOBS} == NEW_KNOBS
    assert "id" not in client.get("/api/v1/environments/1").json()  # and they take effect
    bad_values: list[dict[str, Any]] = [
        {"max_page_size": 0},
        {"run_link_style": "guid"},
        {"failed_run_state": "oops"},
        {"detail_page_hang_seconds": -1},
        {"results_envelope": "list"},
        {"echo_credentials": "yes"},
    ]
    for bad in bad_values:
        assert_error(requests.post(base + "/faults", json=bad, timeout=5), 400)

    reset = requests.post(base + "/faults/reset", timeout=5).json()
    assert reset == Faults().to_dict()
    preset = requests.post(base + "/faults/real-account", timeout=5)
    assert preset.status_code == 200 and preset.json() == Faults.real_account().to_dict()
    assert sim.faults == Faults.real_account()


def test_cli_real_account_flag() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "coalesce_simulator", "--port", "0", "--runs", "5", "--real-account"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = read_line(process.stdout, timeout=60)
        match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        assert match, line
        base_url = match.group(1)
        faults = requests.get(base_url + "/_simulator/faults", timeout=5).json()
        assert {name: faults[name] for name in real_account_quirks()} == real_account_quirks()
        headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        too_big = requests.get(base_url + "/api/v1/runs", params={"limit": 501}, headers=headers, timeout=5)
        assert_error(too_big, 400)
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
