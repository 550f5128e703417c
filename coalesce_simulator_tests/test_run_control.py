"""startRun, rerun and cancelRun as a client that controls runs sees them (doc §7, §10.6-10.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coalesce_simulator import CoalesceSimulator

from .test_simulator import BASIC_CREDENTIALS, Client, assert_error

PEM = "-----BEGIN PRIVATE KEY-----\nc2ltLWtleQ==\n-----END PRIVATE KEY-----"


def _start(client: Client, **body: Any) -> int:
    response = client.post("/scheduler/startRun", body)
    assert response.status_code == 200, response.text
    return int(response.json()["runCounter"])


def _names(sim: CoalesceSimulator, run_id: int) -> list[str]:
    return [node["name"] for node in sim.state.runs[run_id]["_nodes"]]


def test_selector_runs_exactly_the_selected_nodes_in_lineage_order(
    client: Client, sim: CoalesceSimulator
) -> None:
    ordered = list(sim.state.nodes["1"].values())
    picked = [ordered[12], ordered[3], ordered[20]]
    selector = " OR ".join(f'{{ location: {n["locationName"]} name: "{n["name"]}" }}' for n in picked)
    run_id = _start(
        client,
        runDetails={"environmentID": "1", "includeNodesSelector": selector},
        userCredentials=BASIC_CREDENTIALS,
    )
    assert _names(sim, run_id) == [ordered[3]["name"], ordered[12]["name"], ordered[20]["name"]]
    sim.state.set_run_status(run_id, "completed")
    results = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert [r["name"] for r in results] == _names(sim, run_id)
    assert client.get(f"/api/v1/runs/{run_id}").json()["runDetails"]["includeNodesSelector"] == selector


def test_job_runs_its_selectors_and_an_unknown_job_is_refused(client: Client, sim: CoalesceSimulator) -> None:
    project = sim.state.environments["1"]["project"]
    marts = next(job for job in sim.state.projects[project]["jobs"] if job["includeSelector"])
    run_id = _start(
        client,
        runDetails={"environmentID": "1", "jobID": str(marts["id"])},
        userCredentials=BASIC_CREDENTIALS,
    )
    expected = [n["name"] for n in sim.state.nodes["1"].values() if n["locationName"] == "MART"]
    assert _names(sim, run_id) == expected
    unknown = {"runDetails": {"environmentID": "1", "jobID": "999"}, "userCredentials": BASIC_CREDENTIALS}
    assert "Job 999" in assert_error(client.post("/scheduler/startRun", unknown), 400)


def test_credentials_are_required_unless_the_environment_uses_oauth(
    client: Client, sim: CoalesceSimulator
) -> None:
    assert [env_id for env_id, env in sim.state.environments.items() if env["oauthEnabled"]] == ["3"]
    message = assert_error(client.post("/scheduler/startRun", {"runDetails": {"environmentID": "1"}}), 400)
    assert "userCredentials are required" in message and "OAuth" in message
    _start(client, runDetails={"environmentID": "3"})  # OAuth: none needed
    _start(client, runDetails={"environmentID": "3"}, userCredentials={"snowflakeAuthType": "OAuth"})
    oauth_elsewhere = {
        "runDetails": {"environmentID": "1"},
        "userCredentials": {"snowflakeAuthType": "OAuth"},
    }
    assert "OAuth is not enabled" in assert_error(client.post("/scheduler/startRun", oauth_elsewhere), 400)
    sim.state.set_environment_oauth("1", True)
    _start(client, **oauth_elsewhere)


@pytest.mark.parametrize(
    ("credentials", "missing"),
    [
        (
            {"snowflakeAuthType": "KeyPair", "snowflakeUsername": "U", "snowflakeKeyPairPass": "s3cret"},
            "snowflakeKeyPairKey",
        ),
        ({"snowflakeAuthType": "Basic", "snowflakeUsername": "U"}, "snowflakePassword"),
        ({"snowflakeAuthType": "Basic", "snowflakePassword": "s3cret"}, "snowflakeUsername"),
        ({"snowflakeUsername": "U", "snowflakePassword": ""}, "snowflakePassword"),
    ],
)
def test_incomplete_credentials_are_refused_naming_the_field(
    client: Client, credentials: dict[str, str], missing: str
) -> None:
    body = {"runDetails": {"environmentID": "1"}, "userCredentials": credentials}
    response = client.post("/scheduler/startRun", body)
    message = assert_error(response, 400)
    assert missing in message and "s3cret" not in response.text


def test_credentials_are_accepted_and_never_echoed(client: Client, sim: CoalesceSimulator) -> None:
    key_pair = {
        "snowflakeAuthType": "KeyPair",
        "snowflakeUsername": "LOADER",
        "snowflakeKeyPairKey": PEM,
        "snowflakeKeyPairPass": "pass-phrase",
        "snowflakeWarehouse": "LOAD_WH",
        "snowflakeRole": "LOADER_ROLE",
    }
    run_id = _start(client, runDetails={"environmentID": "1"}, userCredentials=key_pair)
    shown = client.get(f"/api/v1/runs/{run_id}").json()["userCredentials"]
    assert shown["snowflakeAuthType"] == "KeyPair" and shown["snowflakeUsername"] == "LOADER"
    assert (shown["snowflakeWarehouse"], shown["snowflakeRole"]) == ("LOAD_WH", "LOADER_ROLE")
    assert "snowflakeKeyPairKey" not in shown and "pass-phrase" not in str(sim.state.runs[run_id])
    not_pem = {**key_pair, "snowflakeKeyPairKey": "just text"}
    body = {"runDetails": {"environmentID": "1"}, "userCredentials": not_pem}
    assert "PEM" in assert_error(client.post("/scheduler/startRun", body), 400)
    # The request log keeps what the client sent, for tests of what a client sends.
    sent = [r.body for r in sim.requests if r.path == "/scheduler/startRun"]
    assert sent[0]["userCredentials"] == key_pair


def test_cancel_mid_run_is_recorded_and_leaves_nothing_complete(
    client: Client, sim: CoalesceSimulator
) -> None:
    run_id = _start(client, runDetails={"environmentID": "2"}, userCredentials=BASIC_CREDENTIALS)
    sim.state.set_run_status(run_id, "running")
    response = client.post("/scheduler/cancelRun", {"runID": run_id, "environmentID": "2"})
    assert response.status_code == 204
    assert client.get("/scheduler/runStatus", runCounter=run_id).json()["runStatus"] == "canceled"
    results = client.get(f"/api/v1/runs/{run_id}/results").json()["data"]
    assert (
        results
        and {r["runState"] for r in results} == {"skipped"}
        and not any(r["isRunning"] for r in results)
    )
    seen = sim.wait_for_request(lambda r: r.path == "/scheduler/cancelRun", timeout=1)
    assert seen.body == {"runID": run_id, "environmentID": "2"} and seen.status == 204
    assert sim.request_count("/scheduler/cancelRun") == 1
    again = client.post("/scheduler/cancelRun", {"runID": run_id, "environmentID": "2"})
    assert "already canceled" in assert_error(again, 400)


def test_rerun_builds_what_failed_and_can_be_made_to_succeed(client: Client, sim: CoalesceSimulator) -> None:
    run_id = _start(client, runDetails={"environmentID": "1"}, userCredentials=BASIC_CREDENTIALS)
    nodes = _names(sim, run_id)
    sim.state.set_run_status(run_id, "running")
    sim.state.set_run_status(run_id, "failed", failed_node=nodes[3])
    states = {r["name"]: r["runState"] for r in client.get(f"/api/v1/runs/{run_id}/results").json()["data"]}
    assert [states[name] for name in nodes[:4]] == ["complete"] * 3 + ["error"]
    assert {states[name] for name in nodes[4:]} == {"skipped"}  # never ran: the failure stopped them
    assert "Error executing node " + nodes[3] in sim.state.runs[run_id]["runFailureReason"]

    missing_credentials = {"runDetails": {"runID": str(run_id)}}
    assert "userCredentials" in assert_error(client.post("/scheduler/rerun", missing_credentials), 400)
    rerun = client.post("/scheduler/rerun", {**missing_credentials, "userCredentials": BASIC_CREDENTIALS})
    new_id = int(rerun.json()["runCounter"])
    assert new_id == run_id + 1
    assert _names(sim, new_id) == nodes[3:]  # not the three that completed
    assert client.get(f"/api/v1/runs/{new_id}").json()["reRunID"] == str(run_id)
    sim.state.set_run_status(new_id, "completed")
    after = client.get(f"/api/v1/runs/{new_id}/results").json()["data"]
    assert [r["name"] for r in after] == nodes[3:] and {r["runState"] for r in after} == {"complete"}


def test_failed_node_must_be_one_that_could_fail(sim: CoalesceSimulator) -> None:
    run_id = sim.state.start_run("1")
    with pytest.raises(ValueError, match="no unfinished node"):
        sim.state.set_run_status(run_id, "failed", failed_node="NO_SUCH_NODE")
    with pytest.raises(ValueError, match="failed_node"):
        sim.state.set_run_status(run_id, "completed", failed_node=_names(sim, run_id)[0])
    assert sim.state.runs[run_id]["runStatus"] == "waitingToRun"


def test_failing_a_chosen_node_leaves_the_other_results_as_they_were(sim: CoalesceSimulator) -> None:
    """The hook picks the failing node and nothing else: same seed, same results elsewhere."""
    first, second = sim.state.start_run("1"), sim.state.start_run("1")
    sim.state.set_run_status(first, "failed")
    chosen = next(r["nodeID"] for r in sim.state.results[first] if r["runState"] == "error")
    assert chosen  # the random draw, made again by name below for a run with the same nodes
    sim.state.set_run_status(second, "failed", failed_node=chosen)
    assert [r["runState"] for r in sim.state.results[second]] == [
        r["runState"] for r in sim.state.results[first]
    ]


def test_demo_driver_finishes_api_started_runs_and_reruns(client: Client, sim: CoalesceSimulator) -> None:
    failed = _start(client, runDetails={"environmentID": "1"}, userCredentials=BASIC_CREDENTIALS)
    sim.state.set_run_status(failed, "failed")
    sim.start_demo(interval=0, duration=30)
    try:
        started = _start(client, runDetails={"environmentID": "2"}, userCredentials=BASIC_CREDENTIALS)
        rerun = client.post(
            "/scheduler/rerun", {"runDetails": {"runID": str(failed)}, "userCredentials": BASIC_CREDENTIALS}
        )
        rerun_id = int(rerun.json()["runCounter"])
        later = datetime.now(UTC) + timedelta(seconds=31)
        sim.state.advance_all(later)
        for run_id in (started, rerun_id):
            assert sim.state.runs[run_id]["runStatus"] in {"completed", "failed"}
    finally:
        sim.stop_demo()
