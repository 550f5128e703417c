"""Tests for the Coalesce API simulator, exercised over real HTTP with ``requests``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from coalesce_dagster_tests.helpers import read_line
from coalesce_simulator import DEFAULT_TOKEN, CoalesceSimulator, Faults, SimulatorConfig
from coalesce_simulator.data import SimulatorState
from coalesce_simulator.paging import PageParams, paginate
from coalesce_simulator.timeutil import UTC, parse_iso

REPO_ROOT = Path(__file__).resolve().parents[2]
UNAUTHORIZED = {
    "error": {
        "errorString": "401: Unable to authenticate, please ensure your token is valid.",
        "errorDetail": "401: Unable to authenticate, please ensure your token is valid.",
    }
}
ENV_SUMMARY_KEYS = {"createdAt", "createdBy", "id", "name", "project", "status"}
ENV_FULL_KEYS = {
    "id", "name", "description", "project", "connectionAccount", "defaultStorageMapping", "oauthEnabled",
    "tagColors", "createdAt", "createdBy", "updatedAt", "currentGitBranch", "currentGitCommit", "currentGitURL",
    "currentlyRunningJobs", "deployedCommit", "status", "runTimeParameters", "currentMappings",
}  # fmt: skip
NODE_SUMMARY_KEYS = {"id", "name", "nodeType", "database", "schema", "locationName"}
ENVELOPE_KEYS = {"data", "total", "limit", "orderBy", "orderByDirection"}


# Warehouse credentials for runs started over HTTP in environments without Snowflake OAuth.
BASIC_CREDENTIALS = {"snowflakeAuthType": "Basic", "snowflakeUsername": "SIM_USER", "snowflakePassword": "pw"}


class Client:
    """A requests session bound to one simulator, authenticated by default."""

    def __init__(self, simulator: CoalesceSimulator) -> None:
        self.base_url = simulator.base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {DEFAULT_TOKEN}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.base_url + path, params=params, timeout=5)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=5)

    def start_run(self, **run_details: Any) -> int:
        body = {"runDetails": run_details, "userCredentials": BASIC_CREDENTIALS}
        response = self.post("/scheduler/startRun", body)
        assert response.status_code == 200, response.text
        return int(response.json()["runCounter"])

    def collect(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        """Follow ``next`` until the end; returns (items, last page body, page count)."""
        params = {"orderBy": "id", **params}
        items: list[dict[str, Any]] = []
        for pages in range(1, 500):
            response = self.get(path, **params)
            assert response.status_code == 200, response.text
            body = response.json()
            items += body["data"]
            if body.get("next") in (None, ""):
                return items, body, pages
            params["startingFrom"] = str(body["next"])
        raise AssertionError("pagination did not terminate")


def assert_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["errorString"].startswith(f"{status}: ")
    assert body["error"]["errorDetail"] == body["error"]["errorString"]
    return str(body["error"]["errorString"])


# -- auth and envelopes -------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {DEFAULT_TOKEN}", "Bearer"])
@pytest.mark.parametrize(
    "path", ["/api/v1/environments", "/scheduler/runStatus?runCounter=1", "/no/such/path"]
)
def test_bad_or_missing_token_gets_documented_401(
    sim: CoalesceSimulator, header: str | None, path: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(sim.base_url + path, headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_bare_errors_carry_their_status_alone(sim: CoalesceSimulator) -> None:
    sim.faults.bare_errors = True
    response = requests.get(sim.base_url + "/api/v1/environments", timeout=5)
    assert response.status_code == 401 and response.content == b""
    stats = requests.get(sim.base_url + "/_simulator/stats", timeout=5)  # the control plane keeps its bodies
    assert stats.status_code == 200 and "requests" in stats.json()


def test_bearer_scheme_is_case_insensitive(sim: CoalesceSimulator) -> None:
    headers = {"Authorization": f"bearer {DEFAULT_TOKEN}"}
    assert requests.get(sim.base_url + "/api/v1/environments", headers=headers, timeout=5).status_code == 200


def test_environment_list_summary_and_full_objects(client: Client) -> None:
    response = client.get("/api/v1/environments")
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)
    body = response.json()
    assert set(body) == ENVELOPE_KEYS  # single page: no next, no startingFrom echo
    assert body["total"] == 3 and body["limit"] == 25 and body["orderByDirection"] == "asc"
    assert [env["id"] for env in body["data"]] == ["1", "2", "3"]
    assert all(set(env) == ENV_SUMMARY_KEYS for env in body["data"])

    detailed = client.get("/api/v1/environments", detail="true").json()["data"]
    assert all(set(env) == ENV_FULL_KEYS for env in detailed)
    bare = client.get("/api/v1/environments/2").json()
    assert bare == detailed[1]  # single GET: the bare full object, no data wrapper


def test_nodes_summary_detail_and_lineage(client: Client, sim: CoalesceSimulator) -> None:
    summaries, _, _ = client.collect("/api/v1/environments/1/nodes", limit=1000)
    assert all(set(node) == NODE_SUMMARY_KEYS for node in summaries)
    nodes, _, _ = client.collect("/api/v1/environments/1/nodes", detail="true", limit=1000)
    ids = {node["id"] for node in nodes}
    names = {(node["locationName"], node["name"]) for node in nodes}
    for node in nodes:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", node["id"])
        columns = node["metadata"]["columns"]
        assert 2 <= len(columns) <= 6
        for column in columns:
            assert {"columnID", "name", "dataType", "description", "nullable", "sources"} <= set(column)
            for source in column["sources"]:
                assert all(ref["nodeID"] in ids for ref in source["columnReferences"])
        for mapping in node["metadata"]["sourceMapping"]:
            assert {"name", "aliases", "dependencies", "join", "customSQL", "noLinkRefs"} <= set(mapping)
            assert all((dep["locationName"], dep["nodeName"]) in names for dep in mapping["dependencies"])
    assert any(node["metadata"]["sourceMapping"][0]["dependencies"] for node in nodes)
    some = nodes[5]
    assert client.get(f"/api/v1/environments/1/nodes/{some['id']}").json() == some


def test_not_found_and_bad_request_envelopes(client: Client) -> None:
    assert_error(client.get("/api/v1/nope"), 404)
    assert_error(client.get("/api/v1/environments/99"), 404)
    assert_error(client.get("/api/v1/environments/99/nodes"), 404)
    assert_error(client.get("/api/v1/environments/99/jobs"), 404)
    assert_error(client.get("/api/v1/environments/1/jobs/999"), 404)
    assert_error(client.get("/api/v1/environments/1/nodes/not-a-node"), 404)
    assert_error(client.get("/api/v1/runs/abc"), 400)
    assert_error(client.get("/api/v1/runs/abc/results"), 400)
    assert_error(client.get("/api/v1/runs/99999"), 404)
    assert_error(client.get("/api/v1/projects/42"), 404)
    assert_error(client.get("/api/v1/environments", detail="maybe"), 400)
    assert_error(client.post("/api/v1/environments", {}), 405)


# -- pagination ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "limit", "expected"),
    [
        ("/api/v1/environments", 1, 3),
        ("/api/v1/environments/2/nodes", 7, 25),
        ("/api/v1/environments/2/jobs", 1, 2),
        ("/api/v1/users", 2, 5),
        ("/api/v1/organization/users", 2, 5),
        ("/api/v1/runs", 6, 40),
    ],
)
def test_paging_visits_every_item_exactly_once(client: Client, path: str, limit: int, expected: int) -> None:
    items, last, pages = client.collect(path, limit=limit)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == expected == last["total"]
    assert pages == -(-expected // limit)
    assert "next" not in last and "startingFrom" in last or pages == 1


def test_first_page_matches_documented_example_shape(client: Client, sim: CoalesceSimulator) -> None:
    body = client.get("/api/v1/environments", limit=1, orderBy="id").json()
    assert body["next"] == "eyJpZCI6IjEifQ"  # base64url('{"id":"1"}'), unpadded like the docs
    second = client.get("/api/v1/environments", limit=1, orderBy="id", startingFrom=body["next"]).json()
    assert second["startingFrom"] == body["next"] and [e["id"] for e in second["data"]] == ["2"]


@pytest.mark.parametrize("path", ["/api/v1/environments/1/nodes", "/api/v1/runs", "/api/v1/users"])
def test_numeric_next_style(client: Client, sim: CoalesceSimulator, path: str) -> None:
    sim.faults.next_style = "number"
    first = client.get(path, limit=2, orderBy="id").json()
    assert isinstance(first["next"], int)
    items, _, _ = client.collect(path, limit=2)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == first["total"]


@pytest.mark.parametrize(("style", "value"), [("null", None), ("empty", "")])
def test_end_of_data_styles(client: Client, sim: CoalesceSimulator, style: str, value: str | None) -> None:
    sim.faults.end_style = style
    body = client.get("/api/v1/environments", limit=5).json()
    assert "next" in body and body["next"] == value
    items, _, pages = client.collect("/api/v1/environments", limit=2)
    assert len(items) == 3 and pages == 2


def test_total_null(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.total_null = True
    body = client.get("/api/v1/users", limit=2).json()
    assert "total" in body and body["total"] is None and body["next"]


def test_total_absent(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.total_absent = True
    body = client.get("/api/v1/users", limit=2).json()
    assert "total" not in body and body["next"]
    last = client.get("/api/v1/users", limit=500).json()
    assert "total" not in last and "next" not in last and last["data"]


def test_inclusive_cursor_repeats_the_named_item(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.inclusive_cursor = True
    first = client.get("/api/v1/environments/1/nodes", limit=4, orderBy="id").json()
    second = client.get(
        "/api/v1/environments/1/nodes", limit=4, orderBy="id", startingFrom=first["next"]
    ).json()
    assert second["data"][0] == first["data"][-1]
    assert second["data"][1]["id"] > first["data"][-1]["id"]


def test_runs_v62_paging(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.runs_v62_paging = True
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 15, "orderBy": "id", "orderByDirection": "desc"}
    while True:
        body = client.get("/api/v1/runs", **params).json()
        assert "next" not in body and "total" not in body
        assert {"limit", "orderBy", "orderByDirection", "data"} <= set(body)
        if not body["data"]:
            break
        seen += [run["id"] for run in body["data"]]
        params["startingFrom"] = body["data"][-1]["id"]
    assert seen == list(range(40, 0, -1))


@pytest.mark.parametrize("asked", ["desc", "asc", None])
def test_runs_oldest_first_ignores_the_direction_asked(
    client: Client, sim: CoalesceSimulator, asked: str | None
) -> None:
    direction = {"orderByDirection": asked} if asked else {}
    newest_first = client.get("/api/v1/runs", orderBy="id", limit=5, **direction).json()["data"]
    assert [run["id"] for run in newest_first] == (
        [1, 2, 3, 4, 5] if asked == "asc" else [40, 39, 38, 37, 36]
    )
    sim.faults.runs_oldest_first = True
    seen: list[int] = []
    params: dict[str, Any] = {"limit": 15, "orderBy": "id", **direction}
    while True:
        body = client.get("/api/v1/runs", **params).json()
        assert body["orderByDirection"] == "asc"
        seen += [run["id"] for run in body["data"]]
        if not body.get("next"):
            break
        params["startingFrom"] = body["next"]
    assert seen == list(range(1, 41))


def test_runs_accept_a_date_time_cursor(client: Client, sim: CoalesceSimulator) -> None:
    start_of_10 = sim.state.runs[10]["runStartTime"]
    older = client.get("/api/v1/runs", orderBy="id", startingFrom=start_of_10, limit=3).json()
    assert [run["id"] for run in older["data"]] == [9, 8, 7]
    newer = client.get(
        "/api/v1/runs", orderBy="runStartTime", orderByDirection="asc", startingFrom=start_of_10, limit=2
    ).json()
    assert [run["id"] for run in newer["data"]] == [11, 12]


def test_sorting_runs_by_end_time_puts_live_runs_last(client: Client) -> None:
    items, _, _ = client.collect("/api/v1/runs", orderBy="runEndTime", orderByDirection="asc", limit=7)
    assert len(items) == 40
    ends = [run.get("runEndTime") for run in items]
    finished = [parse_iso(end) for end in ends if end]
    assert finished == sorted(finished) and ends[-2:] == [None, None]


@pytest.mark.parametrize(
    "params",
    [
        {"startingFrom": "eyJpZCI6IjEifQ"},  # cursor without orderBy
        {"limit": "abc"},
        {"limit": "1001"},
        {"limit": "-1"},
        {"orderBy": "name"},
        {"orderByDirection": "sideways"},
        {"orderBy": "id", "startingFrom": "not a cursor!"},
        {"orderBy": "id", "startingFrom": "bm90LWpzb24"},  # base64 of "not-json"
        {"orderBy": "id", "startingFrom": "eyJpZCI6ICJ4In0"},  # {"id": "x"}: not a numeric id
    ],
)
def test_bad_paging_parameters_are_400(client: Client, params: dict[str, str]) -> None:
    assert_error(client.get("/api/v1/environments", **params), 400)


@settings(max_examples=60, deadline=None)
@given(
    ids=st.sets(st.integers(min_value=1, max_value=500), max_size=40),
    limit=st.integers(min_value=2, max_value=12),
    descending=st.booleans(),
    number_style=st.booleans(),
    inclusive=st.booleans(),
    numeric=st.booleans(),
)
def test_paginate_property(
    ids: set[int], limit: int, descending: bool, number_style: bool, inclusive: bool, numeric: bool
) -> None:
    """Whatever the cursor variant, following next yields every item once (bar inclusive repeats)."""
    items = [{"id": i if numeric else f"n{i:04d}"} for i in ids]
    faults = Faults(next_style="number" if number_style else "string", inclusive_cursor=inclusive)
    direction = "desc" if descending else "asc"
    seen: list[Any] = []
    cursor: str | None = None
    for _ in range(200):
        params = PageParams(limit, "id", direction, cursor)
        page, meta = paginate(items, params, faults, numeric_ids=numeric)
        page_ids = [item["id"] for item in page]
        if inclusive and cursor is not None and seen and page_ids:
            assert page_ids[0] == seen[-1]
            page_ids = page_ids[1:]
        seen += page_ids
        if "next" not in meta:
            break
        cursor = str(meta["next"])
    expected = sorted((item["id"] for item in items), reverse=descending)
    assert seen == expected


# -- runs -------------------------------------------------------------------------------------------


def test_run_summary_vs_detail(client: Client) -> None:
    summary = client.get("/api/v1/runs").json()
    assert summary["limit"] == 25 and summary["orderByDirection"] == "desc" and len(summary["data"]) == 25
    assert [run["id"] for run in summary["data"]][:3] == [40, 39, 38]
    for run in summary["data"]:
        assert {"id", "runType", "runStatus", "environmentID"} <= set(run) and "runDetails" not in run
    detail = client.get("/api/v1/runs", detail="true", limit=5).json()["data"]
    for run in detail:
        assert "environmentID" not in run and run["runDetails"]["environmentID"]
        assert {"id", "runDetails", "runStatus", "runTimeParameters", "runType", "userCredentials"} <= set(
            run
        )
        assert "snowflakePassword" not in run["userCredentials"]
    assert client.get("/api/v1/runs/38").json() == detail[2]


def test_optional_run_fields_as_null(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.optional_fields_as_null = True
    live = client.get("/api/v1/runs", limit=1).json()["data"][0]  # the newest: waiting to run
    assert "runEndTime" in live and live["runEndTime"] is None and live["environmentID"]
    detail = client.get("/api/v1/runs/40").json()
    assert detail["environmentID"] is None and detail["runDetails"]["environmentID"]
    assert "runEndTime" in detail and detail["runEndTime"] is None


def test_run_history_shape(client: Client, sim: CoalesceSimulator) -> None:
    runs, _, _ = client.collect("/api/v1/runs", limit=100)
    by_id = {run["id"]: run for run in runs}
    assert by_id[40]["runStatus"] == "waitingToRun" and by_id[39]["runStatus"] == "running"
    assert "runEndTime" not in by_id[40] and "runEndTime" not in by_id[39]
    statuses = {run["runStatus"] for run in runs if run["id"] < 39}
    assert statuses <= {"completed", "failed", "canceled"} and {"completed", "failed"} <= statuses
    assert {run["runType"] for run in runs} == {"deploy", "refresh"}
    starts = [parse_iso(by_id[i]["runStartTime"]) for i in range(1, 41)]
    assert starts == sorted(starts)
    for run in runs:
        if run["runStatus"] == "failed":
            assert run["runFailureReason"]
    assert sim.request_count("/api/v1/runs") == 1


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"runType": "deploy"}, lambda run: run["runType"] == "deploy"),
        ({"runStatus": "failed"}, lambda run: run["runStatus"] == "failed"),
        ({"environmentID": "2"}, lambda run: run["environmentID"] == "2"),
    ],
)
def test_run_filters(client: Client, params: dict[str, str], check: Any) -> None:
    items, last, _ = client.collect("/api/v1/runs", limit=1000, **params)
    assert items and all(check(run) for run in items) and last["total"] == len(items)


def test_bad_run_filters_are_400(client: Client) -> None:
    assert_error(client.get("/api/v1/runs", runType="sync"), 400)
    assert_error(client.get("/api/v1/runs", runStatus="success"), 400)


@pytest.mark.parametrize(
    ("envelope", "unwrap"),
    [("data", lambda b: b["data"]), ("results", lambda b: b["results"]), ("bare", lambda b: b)],
)
def test_results_envelopes(client: Client, sim: CoalesceSimulator, envelope: str, unwrap: Any) -> None:
    sim.faults.results_envelope = envelope
    body = client.get("/api/v1/runs/38/results").json()
    results = unwrap(body)
    if envelope != "bare":
        assert set(body) == {envelope}
    env_nodes = sim.state.nodes[sim.state.runs[38]["environmentID"]]
    assert 0 < len(results) <= 8
    for result in results:
        assert result["nodeID"] in env_nodes
        assert result["runState"] in {"complete", "error", "skipped"} and result["isRunning"] is False


def test_failed_run_results_carry_errors(client: Client, sim: CoalesceSimulator) -> None:
    failed = next(r for r in sim.state.runs.values() if r["runStatus"] == "failed" and r["_nodes"])
    results = client.get(f"/api/v1/runs/{failed['id']}/results").json()["data"]
    errors = [r for r in results if r["runState"] == "error"]
    assert len(errors) == 1
    query = errors[0]["queryResults"][-1]
    assert query["success"] is False and query["error"]["errorString"]
    completed = [r for r in results if r["runState"] == "complete"]
    assert all(q["success"] and "error" not in q for r in completed for q in r["queryResults"])


def test_running_run_has_running_results(client: Client) -> None:
    results = client.get("/api/v1/runs/39/results").json()["data"]
    assert any(r["isRunning"] for r in results) and any(not r["isRunning"] for r in results)


def test_run_status_endpoint(client: Client, sim: CoalesceSimulator) -> None:
    body = client.get("/scheduler/runStatus", runCounter=38).json()
    run = sim.state.runs[38]
    assert body == {
        "runStatus": run["runStatus"],
        "runType": run["runType"],
        "runLink": f"{sim.base_url}/runs/38",
    }
    assert client.get("/scheduler/runStatus", runCounter=40).json()["runStatus"] == "waitingToRun"
    assert_error(client.get("/scheduler/runStatus"), 400)
    assert_error(client.get("/scheduler/runStatus", runCounter="x"), 400)
    assert_error(client.get("/scheduler/runStatus", runCounter=12345), 404)


def test_the_scheduler_may_say_initializing_for_a_waiting_run(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.scheduler_early_status = "initializing"
    assert client.get("/scheduler/runStatus", runCounter=40).json()["runStatus"] == "initializing"
    assert client.get("/scheduler/runStatus", runCounter=39).json()["runStatus"] == "running"
    assert client.get("/api/v1/runs/40").json()["runStatus"] == "waitingToRun"  # the REST API never says it


def test_public_base_url_is_used_for_run_links() -> None:
    config = SimulatorConfig(runs=3, public_base_url="https://app.coalescesoftware.io/")
    with CoalesceSimulator(config) as simulator:
        body = Client(simulator).get("/scheduler/runStatus", runCounter=1).json()
    assert body["runLink"] == "https://app.coalescesoftware.io/runs/1"


# -- run lifecycle ------------------------------------------------------------------------------------


def test_start_run_lifecycle(client: Client, sim: CoalesceSimulator) -> None:
    started = client.post(
        "/scheduler/startRun",
        {"runDetails": {"environmentID": "2", "parallelism": 4}, "userCredentials": BASIC_CREDENTIALS},
    )
    assert started.status_code == 200
    run_id = started.json()["runCounter"]
    assert run_id == 41

    def status() -> str:
        return str(client.get("/scheduler/runStatus", runCounter=run_id).json()["runStatus"])

    assert status() == "waitingToRun"
    assert client.get(f"/api/v1/runs/{run_id}/results").json() == {"data": []}
    info = client.get(f"/api/v1/runs/{run_id}").json()
    assert (
        info["runType"] == "refresh" and info["runDetails"]["parallelism"] == 4 and "runEndTime" not in info
    )

    sim.state.set_run_status(run_id, "running")
    assert status() == "running"
    running = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert len(running) == 25 and all(r["isRunning"] for r in running)
    assert run_id in client.get("/api/v1/environments/2").json()["currentlyRunningJobs"]

    sim.state.set_run_status(run_id, "completed")
    assert status() == "completed"
    info = client.get(f"/api/v1/runs/{run_id}").json()
    assert parse_iso(info["runEndTime"]) > parse_iso(info["runStartTime"])
    finished = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert all(r["runState"] == "complete" and not r["isRunning"] for r in finished)
    with pytest.raises(ValueError):
        sim.state.set_run_status(run_id, "running")


def test_failed_run_via_control_endpoint(client: Client, sim: CoalesceSimulator) -> None:
    run_id = sim.state.start_run("1")
    response = requests.post(
        f"{sim.base_url}/_simulator/runs/{run_id}/status",
        json={"status": "failed", "failureReason": "boom"},
        timeout=5,
    )
    assert response.status_code == 200 and response.json()["runStatus"] == "failed"
    info = client.get(f"/api/v1/runs/{run_id}").json()
    assert info["runStatus"] == "failed" and info["runFailureReason"] == "boom"
    states = [r["runState"] for r in client.get(f"/api/v1/runs/{run_id}/results").json()["data"]]
    assert states.count("error") == 1 and set(states) <= {"complete", "error", "skipped"}
    assert client.get("/api/v1/environments/1").json()["status"] == "Failed Refresh"


def test_start_run_validation(client: Client) -> None:
    assert_error(client.post("/scheduler/startRun", {}), 400)
    assert_error(client.post("/scheduler/startRun", {"runDetails": {}}), 400)
    assert_error(client.post("/scheduler/startRun", {"runDetails": {"environmentID": "77"}}), 400)
    wrong_case = {"runDetails": {"environmentID": "1", "jobId": "1"}}
    assert "jobID" in assert_error(client.post("/scheduler/startRun", wrong_case), 400)
    unknown_job = {"runDetails": {"environmentID": "1", "jobID": "999"}}
    assert_error(client.post("/scheduler/startRun", unknown_job), 400)
    bad_selector = {"runDetails": {"environmentID": "1", "includeNodesSelector": "{ colour: red }"}}
    assert_error(client.post("/scheduler/startRun", bad_selector), 400)
    not_json = client.session.post(client.base_url + "/scheduler/startRun", data=b"{", timeout=5)
    assert_error(not_json, 400)


def test_start_run_with_job_and_selectors(client: Client, sim: CoalesceSimulator) -> None:
    project = sim.state.environments["1"]["project"]
    marts_job = next(job for job in sim.state.projects[project]["jobs"] if job["includeSelector"])
    run_id = client.start_run(environmentID="1", jobID=str(marts_job["id"]))
    sim.state.set_run_status(run_id, "completed")
    names = {r["name"] for r in client.get(f"/api/v1/runs/{run_id}/results").json()["data"]}
    marts = {n["name"] for n in sim.state.nodes["1"].values() if n["locationName"] == "MART"}
    assert names == marts
    assert client.get(f"/api/v1/runs/{run_id}").json()["runDetails"]["jobID"] == marts_job["id"]

    one = sorted(marts)[0]
    selector = f"{{ location: MART name: {one} }}"
    run_id = client.start_run(environmentID="1", includeNodesSelector=selector)
    sim.state.set_run_status(run_id, "completed")
    assert [r["name"] for r in client.get(f"/api/v1/runs/{run_id}/results").json()["data"]] == [one]


def test_cancel_run(client: Client, sim: CoalesceSimulator) -> None:
    environment_id = sim.state.runs[39]["environmentID"]
    response = client.post(
        "/scheduler/cancelRun", {"runID": 39, "orgID": "any", "environmentID": environment_id}
    )
    assert response.status_code == 204 and response.content == b""
    assert "Content-Type" not in response.headers
    assert client.get("/scheduler/runStatus", runCounter=39).json()["runStatus"] == "canceled"
    results = client.get("/api/v1/runs/39/results").json()["data"]
    assert {r["runState"] for r in results} == {"complete", "skipped"}
    assert_error(client.post("/scheduler/cancelRun", {"runID": 39}), 400)  # already canceled
    assert_error(client.post("/scheduler/cancelRun", {"runID": "x"}), 400)
    assert_error(client.post("/scheduler/cancelRun", {"runID": 4242}), 400)


def test_rerun_failed_run(client: Client, sim: CoalesceSimulator) -> None:
    runs = sim.state.runs.values()
    failed = max(r["id"] for r in runs if r["runStatus"] == "failed" and r["runType"] == "refresh")
    body = {
        "runDetails": {"runID": str(failed), "forceIgnoreWorkspaceStatus": False},
        "userCredentials": BASIC_CREDENTIALS,
    }
    response = client.post("/scheduler/rerun", body)
    new_id = response.json()["runCounter"]
    info = client.get(f"/api/v1/runs/{new_id}").json()
    assert info["reRunID"] == str(failed) and info["runType"] == "refresh"
    original_done = {r["nodeID"] for r in sim.state.results[failed] if r["runState"] == "complete"}
    assert not {n["id"] for n in sim.state.runs[new_id]["_nodes"]} & original_done
    completed = next(r["id"] for r in sim.state.runs.values() if r["runStatus"] == "completed")
    assert_error(client.post("/scheduler/rerun", {"runDetails": {"runID": str(completed)}}), 400)


def test_add_runs_and_node_mutations(client: Client, sim: CoalesceSimulator) -> None:
    new_ids = sim.state.add_runs(3, environment_id="3", status="failed")
    assert new_ids == [41, 42, 43]
    assert (
        client.get("/api/v1/runs", environmentID="3", runStatus="failed", limit=3).json()["data"][0]["id"]
        == 43
    )

    def dependency_names(nodes: list[dict[str, Any]]) -> set[str]:
        mappings = [mapping for node in nodes for mapping in node["metadata"]["sourceMapping"]]
        return {dependency["nodeName"] for mapping in mappings for dependency in mapping["dependencies"]}

    def referenced_ids(nodes: list[dict[str, Any]]) -> set[str]:
        columns = [column for node in nodes for column in node["metadata"]["columns"]]
        sources = [source for column in columns for source in column["sources"]]
        return {reference["nodeID"] for source in sources for reference in source["columnReferences"]}

    nodes = list(sim.state.nodes["1"].values())
    upstream = next(node for node in nodes if node["name"] in dependency_names(nodes))
    sim.state.rename_node("1", upstream["id"], "RENAMED_NODE")
    detail, _, _ = client.collect("/api/v1/environments/1/nodes", detail="true", limit=100)
    assert "RENAMED_NODE" in dependency_names(detail) and upstream["name"] == "RENAMED_NODE"

    assert upstream["id"] in referenced_ids(detail)
    sim.state.delete_node("1", upstream["id"])
    detail, last, _ = client.collect("/api/v1/environments/1/nodes", detail="true", limit=100)
    assert last["total"] == 24
    assert upstream["id"] not in referenced_ids(detail)
    assert "RENAMED_NODE" not in dependency_names(detail)
    assert_error(client.get(f"/api/v1/environments/1/nodes/{upstream['id']}"), 404)

    added = sim.state.add_node("1")
    assert client.get(f"/api/v1/environments/1/nodes/{added}").status_code == 200

    sim.state.delete_environment("3")
    assert_error(client.get("/api/v1/environments/3"), 404)
    assert [e["id"] for e in client.get("/api/v1/environments").json()["data"]] == ["1", "2"]
    assert_error(client.post("/scheduler/startRun", {"runDetails": {"environmentID": "3"}}), 400)


def test_demo_schedule_drives_runs_with_explicit_clock(sim: CoalesceSimulator) -> None:
    state = sim.state
    run_id = state.start_run("1")
    t0 = state.now()
    state.schedule_run(run_id, 10, "completed", start=t0)
    for seconds, changed, status in [
        (1, [], "waitingToRun"),  # queued for the first fifth of the duration
        (3, [run_id], "running"),
        (10, [run_id], "completed"),
        (20, [], "completed"),  # finished runs leave the schedule
    ]:
        assert state.advance_all(t0 + timedelta(seconds=seconds)) == changed
        assert state.runs[run_id]["runStatus"] == status


def test_start_demo_auto_schedules_api_runs(client: Client, sim: CoalesceSimulator) -> None:
    sim.start_demo(interval=0, duration=30)
    try:
        run_id = client.start_run(environmentID="1")
        started = parse_iso(sim.state.runs[run_id]["runStartTime"])
        assert abs(started - datetime.now(UTC)) < timedelta(minutes=1)  # demo runs use wall-clock time
        # Driven to the end once its duration has passed (explicit time: no sleeping).
        sim.state.advance_all(datetime.now(UTC) + timedelta(seconds=31))
        assert sim.state.runs[run_id]["runStatus"] in {"completed", "failed"}
    finally:
        sim.stop_demo()
    assert sim.state.auto_drive_seconds is None


# -- faults ------------------------------------------------------------------------------------------


def test_server_error_burst_and_outage(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.server_error_burst = 1
    assert_error(client.get("/api/v1/users"), 503)
    assert client.get("/api/v1/users").status_code == 200

    sim.faults.fail_after_requests = 2
    assert client.get("/api/v1/users").status_code == 200
    assert_error(client.get("/api/v1/nope"), 404)  # failures do not use up the allowance
    assert client.get("/api/v1/users").status_code == 200
    for _ in range(3):
        assert_error(client.get("/api/v1/users"), 503)
    sim.faults.fail_after_requests = None
    assert client.get("/api/v1/users").status_code == 200


def test_hang_burst(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.hang_burst = 1
    sim.faults.hang_seconds = 0.5
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.session.get(client.base_url + "/api/v1/environments", timeout=0.05)
    assert client.get("/api/v1/environments").status_code == 200


def test_reset_burst_closes_the_connection(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.reset_burst = 1
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get("/api/v1/environments")
    assert client.get("/api/v1/environments").status_code == 200
    assert [record.status for record in sim.requests] == [0, 200]


def test_garbage_and_truncated_bodies(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.garbage_burst = 1
    response = client.get("/api/v1/environments")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()

    full = client.get("/api/v1/runs").content
    sim.faults.truncated_burst = 1
    truncated = client.get("/api/v1/runs")
    assert truncated.status_code == 200 and int(truncated.headers["Content-Length"]) == len(truncated.content)
    assert truncated.content == full[: len(full) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)


def test_fault_path_prefix_limits_bursts(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.fault_path_prefix = "/api/v1/runs"
    sim.faults.server_error_burst = 1
    assert client.get("/api/v1/environments").status_code == 200
    assert_error(client.get("/api/v1/runs"), 503)
    assert client.get("/api/v1/runs").status_code == 200


def test_status_override(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.status_override = {"/api/v1/users": 403}
    assert_error(client.get("/api/v1/users"), 403)
    assert client.get("/api/v1/organization/users").status_code == 200


def test_schema_drift_and_string_run_ids(client: Client, sim: CoalesceSimulator) -> None:
    sim.faults.extra_fields = True
    sim.faults.run_ids_as_strings = True
    body = client.get("/api/v1/runs", detail="true", limit=2).json()
    assert body["data"][0]["id"] == "40"
    assert body["data"][0]["simulatorExtra"] == {"a": 1}
    assert body["data"][0]["runDetails"]["simulatorExtra"] == {"a": 1}
    assert "simulatorExtra" not in sim.state.runs[40]  # drift never leaks into the state
    assert client.get("/api/v1/environments/1").json()["simulatorExtra"] == {"a": 1}


def test_faults_validate_and_reset() -> None:
    faults = Faults()
    with pytest.raises(AttributeError):
        faults.rate_limit = 3  # type: ignore[attr-defined]
    with pytest.raises(ValueError):
        faults.next_style = "roman"
    with pytest.raises(ValueError):
        faults.rate_limit_burst = -1
    faults.update({"latency_ms": 5, "end_style": "null", "status_override": {"/x": 500}})
    assert faults.take("rate_limit_burst") is False
    faults.reset()
    assert faults == Faults()


def test_control_endpoints(sim: CoalesceSimulator, client: Client) -> None:
    base = sim.base_url + "/_simulator"
    client.get("/api/v1/environments")
    assert requests.get(base + "/stats", timeout=5).json() == {"requests": 1, "max_concurrency": 1}
    response = requests.post(base + "/faults", json={"server_error_burst": 1, "total_null": True}, timeout=5)
    assert response.status_code == 200 and sim.faults.server_error_burst == 1 and sim.faults.total_null
    assert_error(requests.post(base + "/faults", json={"nonsense": 1}, timeout=5), 400)
    assert_error(requests.post(base + "/faults", json={"end_style": "sometimes"}, timeout=5), 400)
    assert_error(client.get("/api/v1/environments"), 503)  # the control plane itself is never faulted
    assert requests.post(base + "/faults/reset", timeout=5).json()["server_error_burst"] == 0
    assert requests.post(base + "/reset-log", timeout=5).status_code == 204
    assert sim.request_count() == 0 and len(sim.requests) == 0
    assert_error(requests.post(base + "/runs/40/status", json={"status": "exploded"}, timeout=5), 400)
    assert_error(requests.post(base + "/runs/4040/status", json={"status": "running"}, timeout=5), 404)


# -- accounting ---------------------------------------------------------------------------------------


def test_request_log(client: Client, sim: CoalesceSimulator) -> None:
    client.get("/api/v1/environments", limit=2)
    client.get("/api/v1/runs/1")
    client.get("/api/v1/runs/abc")
    requests.get(sim.base_url + "/_simulator/stats", timeout=5)
    assert sim.request_count() == 3
    assert sim.request_count("/api/v1/runs") == 2
    records = sim.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/api/v1/environments", 200),
        ("GET", "/api/v1/runs/1", 200),
        ("GET", "/api/v1/runs/abc", 400),
        ("GET", "/_simulator/stats", 200),
    ]
    assert records[0].query == {"limit": "2"}
    assert records[0].arrived <= records[1].arrived <= records[2].arrived  # time.monotonic() on arrival
    sim.reset_request_log()
    assert sim.request_count() == 0 and sim.max_concurrency == 0


def test_wait_for_request_wakes_on_arrival(client: Client, sim: CoalesceSimulator) -> None:
    client.get("/api/v1/runs/1")
    assert sim.wait_for_request(lambda r: r.path == "/api/v1/runs/1", timeout=5).status == 200  # already seen
    later = threading.Thread(target=client.get, args=("/api/v1/runs/2",))
    later.start()
    assert sim.wait_for_request(lambda r: r.path == "/api/v1/runs/2", timeout=30).path == "/api/v1/runs/2"
    later.join()
    with pytest.raises(TimeoutError):
        sim.wait_for_request(lambda r: r.path == "/never", timeout=0.01)


def test_after_answering_changes_the_state_once_between_two_requests(
    client: Client, sim: CoalesceSimulator
) -> None:
    run_id, env_id = max(sim.state.runs), sorted(sim.state.environments)[0]
    sim.after_answering(
        "/api/v1/runs", lambda: sim.state.delete_run(run_id), when=lambda q: "runType" not in q
    )
    sim.after_answering("/api/v1/environments", lambda: sim.state.delete_environment(env_id))
    client.get("/api/v1/environments/999")  # a 404 for another path does not fire anything
    client.get("/api/v1/runs", runType="deploy", limit=1)  # nor an answer the action does not wait for
    assert run_id in sim.state.runs

    listed = client.get("/api/v1/runs", orderBy="id", orderByDirection="desc", limit=1).json()["data"]
    assert listed[0]["id"] == run_id  # the answer that fired the action was made before it
    for path in (f"/api/v1/runs/{run_id}", f"/api/v1/runs/{run_id}/results"):
        assert_error(client.get(path), 404)
    assert_error(client.get("/scheduler/runStatus", runCounter=str(run_id)), 404)
    assert run_id not in [r["id"] for r in client.collect("/api/v1/runs")[0]]

    assert env_id in [e["id"] for e in client.get("/api/v1/environments").json()["data"]]
    assert_error(client.get(f"/api/v1/environments/{env_id}"), 404)
    assert_error(client.get(f"/api/v1/environments/{env_id}/nodes"), 404)
    assert env_id not in [e["id"] for e in client.get("/api/v1/environments").json()["data"]]  # once only
    assert sim.state.start_run(sorted(sim.state.environments)[0]) == run_id + 1  # ids are not reused


def test_max_concurrency_with_parallel_clients(sim: CoalesceSimulator) -> None:
    sim.faults.latency_ms = 300
    workers = 8
    barrier = threading.Barrier(workers)
    statuses: list[int] = []

    def worker() -> None:
        session = requests.Session()
        barrier.wait()  # release all requests together
        response = session.get(
            sim.base_url + "/api/v1/environments",
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
            timeout=5,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * workers
    assert sim.request_count() == workers
    assert 1 < sim.max_concurrency <= workers


def test_a_request_beyond_max_in_flight_is_refused_with_429(sim: CoalesceSimulator, client: Client) -> None:
    sim.faults.update(
        {"max_in_flight": 1, "hang_burst": 1, "hang_seconds": 1.0, "fault_path_prefix": "/api/v1/projects"}
    )
    held: list[int] = []
    first = threading.Thread(target=lambda: held.append(client.get("/api/v1/projects").status_code))
    first.start()
    sim.wait_for_request(lambda r: r.path == "/api/v1/projects", timeout=10)  # held by the hang

    refused = client.get("/api/v1/users")

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    first.join(timeout=10)
    assert held == [200]
    assert client.get("/api/v1/users").status_code == 200  # the slot was given back


# -- determinism and CLI --------------------------------------------------------------------------------


def test_same_seed_same_data_different_seed_different_data() -> None:
    config = SimulatorConfig(seed=11, environments=2, nodes_per_environment=10, runs=12)
    first, second = SimulatorState(config), SimulatorState(SimulatorConfig(**vars(config)))
    assert first.snapshot() == second.snapshot()
    assert first.snapshot() != SimulatorState(SimulatorConfig(seed=12)).snapshot()
    # Mutations replay identically too.
    for state in (first, second):
        run_id = state.start_run("1")
        state.set_run_status(run_id, "running")
        state.set_run_status(run_id, "failed")
        state.add_node("2")
    assert first.snapshot() == second.snapshot()


def test_same_seed_same_http_bodies() -> None:
    config = SimulatorConfig(seed=5, public_base_url="https://example.invalid")
    bodies = []
    for _ in range(2):
        with CoalesceSimulator(SimulatorConfig(**vars(config))) as simulator:
            client = Client(simulator)
            paths = (
                "/api/v1/environments/1/nodes?detail=true",
                "/api/v1/runs?detail=true&limit=1000",
                "/api/v1/runs/7/results",
                "/api/v1/users",
                "/api/v1/projects?includeWorkspaces=true&includeJobs=true",
            )
            bodies.append([client.get(path).content for path in paths])
    assert bodies[0] == bodies[1]


def test_projects(client: Client, sim: CoalesceSimulator) -> None:
    plain = client.get("/api/v1/projects").json()
    assert set(plain) == {"data"} and [p["id"] for p in plain["data"]] == ["1", "2"]
    assert "workspaces" not in plain["data"][0] and "jobs" not in plain["data"][0]
    full = client.get("/api/v1/projects/1", includeWorkspaces="true", includeJobs="true").json()
    assert all(ws["projectID"] == "1" for ws in full["workspaces"]) and full["jobs"]
    assert set(full["environments"]) == {
        e["id"] for e in sim.state.environments.values() if e["project"] == "1"
    }


def test_environment_jobs_are_their_projects_jobs_paged_like_any_list() -> None:
    with CoalesceSimulator(SimulatorConfig(seed=3, environments=3, projects=2, jobs_per_project=5)) as sim:
        client = Client(sim)
        for env_id, env in sim.state.environments.items():
            jobs, last, pages = client.collect(f"/api/v1/environments/{env_id}/jobs", limit=2)
            project_jobs = sim.state.projects[env["project"]]["jobs"]
            assert (pages, last["total"]) == (3, 5)
            assert [job["id"] for job in jobs] == [job["id"] for job in project_jobs]
            assert all(type(job["id"]) is int for job in jobs)  # small ints in responses (doc §3.6)
            assert {"id", "name", "includeSelector", "excludeSelector"} <= set(jobs[0])
            assert [job["name"] for job in jobs][:3] == ["Full refresh", "Marts only", "Job 3"]
            one = client.get(f"/api/v1/environments/{env_id}/jobs/{jobs[2]['id']}").json()
            assert one == jobs[2] and one["excludeSelector"] == "{ name: V_* }"
        # Job ids are unique across projects, so another project's job is not this environment's.
        other = sim.state.projects["2"]["jobs"][0]["id"]
        assert_error(client.get(f"/api/v1/environments/1/jobs/{other}"), 404)


def test_jobs_list_missing(client: Client, sim: CoalesceSimulator) -> None:
    assert client.get("/api/v1/environments/1/jobs").status_code == 200
    sim.faults.jobs_list_missing = True
    assert "No such endpoint" in assert_error(client.get("/api/v1/environments/1/jobs"), 404)
    assert client.get("/api/v1/environments/1/jobs/1").status_code == 200  # a job by id still answers
    assert client.get("/api/v1/environments/1/nodes").status_code == 200


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(environments=-1)
    with pytest.raises(ValueError):
        SimulatorConfig(jobs_per_project=-1)
    with pytest.raises(ValueError):
        SimulatorConfig(projects=0)
    empty = SimulatorState(SimulatorConfig(environments=0, runs=5, users=0))
    assert empty.runs == {} and empty.environments == {}


def test_cli_starts_and_answers() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "coalesce_simulator", "--port", "0", "--runs", "5", "--token", "cli-token"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = read_line(process.stdout, timeout=60)
        match = re.search(r"(http://127\.0\.0\.1:\d+)\S*", line)
        assert match and "cli-token" in line, line
        base_url = match.group(1)
        headers = {"Authorization": "Bearer cli-token"}
        response = requests.get(base_url + "/api/v1/runs", headers=headers, timeout=5)
        assert response.status_code == 200 and response.json()["total"] == 5
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_cli_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coalesce_simulator", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 2 and "--allow-remote" in result.stderr


def test_a_deploy_run_changes_the_nodes_of_its_environment(client: Client, sim: CoalesceSimulator) -> None:
    before = set(sim.state.nodes["2"])
    removed = sorted(before)[0]
    response = requests.post(
        sim.base_url + "/_simulator/environments/2/deploy",
        json={"add": 2, "remove": [removed], "status": "running"},
        timeout=5,
    )
    assert response.status_code == 200
    run_id, added = response.json()["run_id"], response.json()["added"]
    assert len(added) == 2 and not set(added) & before
    nodes, _, _ = client.collect("/api/v1/environments/2/nodes", limit=100)
    assert {node["id"] for node in nodes} == (before - {removed}) | set(added)
    (deploy,) = client.get("/api/v1/runs", runType="deploy", limit=1).json()["data"]
    assert (deploy["id"], deploy["runStatus"], deploy["environmentID"]) == (run_id, "running", "2")
    assert sim.state.environments["2"]["status"] == "Deploying"
    sim.state.set_run_status(run_id, "completed")
    assert client.get(f"/api/v1/runs/{run_id}").json()["runStatus"] == "completed"
    # A bad request changes nothing: an unknown node, or an unknown status.
    for body in ({"remove": ["no-such-node"]}, {"add": 1, "status": "exploded"}, {"add": -1}):
        assert_error(requests.post(sim.base_url + "/_simulator/environments/2/deploy", json=body, timeout=5),
                     404 if "remove" in body else 400)  # fmt: skip
    assert_error(requests.post(sim.base_url + "/_simulator/environments/99/deploy", json={}, timeout=5), 404)
    assert set(sim.state.nodes["2"]) == (before - {removed}) | set(added)
