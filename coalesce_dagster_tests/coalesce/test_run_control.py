"""Starting, following, cancelling and rerunning Coalesce runs over real HTTP against the simulator
(docs/coalesce-api.md §7, §10.6-10.8), with the retry policy of requests that must not run twice."""

from __future__ import annotations

import logging

import pytest
import requests

from coalesce_dagster.coalesce.credentials import WarehouseCredentials
from coalesce_dagster.coalesce.errors import (
    CoalesceApiError,
    RunOutcomeUnknownError,
    RunRequestRefusedError,
    explain,
    is_transient,
)
from coalesce_dagster.coalesce.http import failed_before_sending
from coalesce_dagster.coalesce.run_control import CREDENTIALS_HINT, CoalesceRunControl, _scrub, node_selector
from coalesce_dagster_tests.helpers import refused_port
from coalesce_simulator import CoalesceSimulator

PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nTUlJQ2FrZWtleVZhbHVl\nc2Vjb25kbGluZVZhbHVl\n-----END ENCRYPTED PRIVATE KEY-----"
KEY_PAIR = WarehouseCredentials.key_pair("LOADER", PEM, "phrase-x9", warehouse="LOAD_WH", role="LOADER_ROLE")
BASIC = WarehouseCredentials.basic("LOADER", "pa55-w0rd-x9")
SECRETS = ("pa55-w0rd-x9", "TUlJQ2FrZWtleVZhbHVl", "c2Vjb25kbGluZVZhbHVl", "phrase-x9", "sim-token")


@pytest.fixture
def control(simulator: CoalesceSimulator) -> CoalesceRunControl:
    return CoalesceRunControl.from_config()


def _sent(simulator: CoalesceSimulator, path: str) -> list[dict]:
    return [record.body for record in simulator.requests if record.path == path]


def _assert_no_secret(*texts: str | None) -> None:
    for text in texts:
        assert text is not None
        assert not any(secret in text for secret in SECRETS), text


def test_a_selector_of_three_nodes_runs_exactly_those(control, simulator) -> None:
    nodes = list(simulator.state.nodes["1"].values())
    picked = [nodes[20], nodes[2], nodes[9]]
    selector = node_selector((node["locationName"], node["name"]) for node in picked)
    run_id = control.start_run("1", include_nodes_selector=selector, credentials=BASIC, parallelism=4)
    run = simulator.state.runs[run_id]
    assert [node["id"] for node in run["_nodes"]] == [nodes[2]["id"], nodes[9]["id"], nodes[20]["id"]]
    assert _sent(simulator, "/scheduler/startRun")[0]["runDetails"] == {
        "environmentID": "1",
        "includeNodesSelector": selector,
        "parallelism": 4,
    }
    assert control.run_status(run_id).status == "waitingToRun"
    assert control.node_outcomes(run_id) == ()  # queued: nothing yet
    simulator.state.set_run_status(run_id, "completed")
    outcomes = control.node_outcomes(run_id)
    assert {o.node_id for o in outcomes} == {n["id"] for n in picked} and all(o.completed for o in outcomes)


def test_a_job_runs_its_saved_selectors_and_goes_as_jobID_text(control, simulator) -> None:
    project = simulator.state.environments["1"]["project"]
    marts = next(job for job in simulator.state.projects[project]["jobs"] if job["includeSelector"])
    run_id = control.start_run("1", job_id=str(marts["id"]), credentials=BASIC)
    details = _sent(simulator, "/scheduler/startRun")[0]["runDetails"]
    assert details == {"environmentID": "1", "jobID": str(marts["id"])}  # a string, never `jobId`
    expected = [n["id"] for n in simulator.state.nodes["1"].values() if n["locationName"] == "MART"]
    assert [n["id"] for n in simulator.state.runs[run_id]["_nodes"]] == expected
    with pytest.raises(RunRequestRefusedError) as refused:
        control.start_run("1", job_id="999", credentials=BASIC)
    assert "Job 999 not found" in str(refused.value) and "Nothing was started" in str(refused.value)


@pytest.mark.parametrize(
    ("environment", "credentials"),
    [
        ("1", KEY_PAIR),
        ("1", WarehouseCredentials.key_pair("LOADER", PEM)),
        ("2", BASIC),
        ("3", WarehouseCredentials.oauth()),  # the Production environment uses Snowflake OAuth
        ("3", None),
    ],
)
def test_each_credential_variant_reaches_coalesce_as_sent(
    control, simulator, environment, credentials, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    parameters = {"TARGET": "x"}
    run_id = control.start_run(environment, credentials=credentials, parameters=parameters)
    (body,) = _sent(simulator, "/scheduler/startRun")
    expected = credentials.to_body() if credentials else None
    assert body.get("userCredentials") == expected and body["parameters"] == parameters
    stored = simulator.state.runs[run_id]["userCredentials"]  # only its non-secret keys exist
    if credentials is not None:
        assert stored["snowflakeAuthType"] == credentials.auth_type
    if credentials is not None and credentials.auth_type != "OAuth":
        assert stored["snowflakeUsername"] == "LOADER"
        assert (credentials.warehouse or "COMPUTE_WH", credentials.role or "TRANSFORMER") == (
            stored["snowflakeWarehouse"],
            stored["snowflakeRole"],
        )
    _assert_no_secret(caplog.text, repr(control), repr(credentials))


def test_no_credentials_for_an_environment_without_oauth_is_a_clear_error(control, simulator) -> None:
    with pytest.raises(RunRequestRefusedError) as refused:
        control.start_run("1")
    message = explain(refused.value)
    assert message is not None and "userCredentials are required" in message and CREDENTIALS_HINT in message
    assert not is_transient(refused.value)
    assert simulator.request_count("/scheduler/startRun") == 1 and len(simulator.state.runs) == 40


def test_secrets_are_sent_but_never_in_an_error_or_a_log_line(control, simulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with pytest.raises(RunRequestRefusedError) as refused:  # refused by Coalesce
        control.start_run("1", job_id="999", credentials=KEY_PAIR)
    errors.append(refused.value)
    simulator.faults.fault_path_prefix = "/scheduler/"
    simulator.faults.server_error_burst = 1
    with pytest.raises(RunOutcomeUnknownError) as failing:  # Coalesce failing
        control.start_run("1", credentials=BASIC)
    errors.append(failing.value)
    simulator.faults.body_override = {"/scheduler/rerun": {"note": f"bad key {PEM}"}}
    with pytest.raises(RunOutcomeUnknownError, match="no runCounter") as odd:  # a 200 of the wrong shape
        control.rerun(1, credentials=KEY_PAIR)
    errors.append(odd.value)
    assert [body["userCredentials"] for body in _sent(simulator, "/scheduler/startRun")] == [
        KEY_PAIR.to_body(),
        BASIC.to_body(),
    ]
    for error in errors:
        _assert_no_secret(str(error), repr(error), explain(error))
    _assert_no_secret(caplog.text)


def test_cancel_mid_run(control, simulator, caplog) -> None:
    run_id = control.start_run("2", credentials=BASIC)
    simulator.state.set_run_status(run_id, "running")
    assert all(o.is_running for o in control.node_outcomes(run_id))
    control.cancel_run(run_id, "2", org_id="org-1")
    assert control.run_status(run_id).status == "canceled"
    outcomes = control.node_outcomes(run_id)
    assert outcomes and not any(o.completed or o.is_running for o in outcomes)
    assert _sent(simulator, "/scheduler/cancelRun") == [
        {"runID": run_id, "environmentID": "2", "orgID": "org-1"}
    ]

    caplog.set_level(logging.INFO, logger="coalesce_dagster.coalesce.run_control")
    control.cancel_run(run_id, "2")  # already over: nothing to do, said in the log
    assert f"run {run_id} is already canceled" in caplog.text
    assert _sent(simulator, "/scheduler/cancelRun")[1] == {"runID": run_id, "environmentID": "2"}
    with pytest.raises(CoalesceApiError, match="not found"):
        control.cancel_run(4242, "2")


def test_a_cancel_is_retried_when_coalesce_fails(control, simulator) -> None:
    run_id = control.start_run("2", credentials=BASIC)
    simulator.faults.fault_path_prefix = "/scheduler/cancelRun"
    simulator.faults.server_error_burst = 1
    control.cancel_run(run_id, "2")
    assert simulator.request_count("/scheduler/cancelRun") == 2
    assert control.run_status(run_id).status == "canceled"


def test_rerun_after_a_failure_builds_only_what_failed(control, simulator) -> None:
    run_id = control.start_run("1", credentials=KEY_PAIR)
    nodes = simulator.state.runs[run_id]["_nodes"]
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "failed", failed_node=nodes[5]["name"])
    assert control.run_status(run_id).status == "failed"
    original = control.node_outcomes(run_id)
    unfinished = [o.node_id for o in original if not o.completed]
    assert [o.node_id for o in original if o.failed] == [nodes[5]["id"]] and len(unfinished) == len(nodes) - 5

    new_id = control.rerun(run_id, credentials=KEY_PAIR)
    assert _sent(simulator, "/scheduler/rerun") == [
        {"runDetails": {"runID": str(run_id)}, "userCredentials": KEY_PAIR.to_body()}
    ]
    assert simulator.state.runs[new_id]["reRunID"] == str(run_id)
    assert [n["id"] for n in simulator.state.runs[new_id]["_nodes"]] == unfinished
    simulator.state.set_run_status(new_id, "completed")
    assert control.run_status(new_id).status == "completed"
    assert [o.node_id for o in control.node_outcomes(new_id) if o.completed] == unfinished


def test_a_5xx_on_start_run_is_not_retried(control, simulator) -> None:
    simulator.faults.fault_path_prefix = "/scheduler/startRun"
    simulator.faults.server_error_burst = 1
    with pytest.raises(RunOutcomeUnknownError) as unknown:
        control.start_run("1", credentials=BASIC)
    assert simulator.request_count("/scheduler/startRun") == 1
    message = explain(unknown.value)
    assert message is not None and "(503)" in message and "may or may not have started" in message
    assert "run history" in message and not is_transient(unknown.value)


def test_a_5xx_on_rerun_is_not_retried(control, simulator) -> None:
    failed = control.start_run("1", credentials=BASIC)
    simulator.state.set_run_status(failed, "failed")
    simulator.faults.status_override = {"/scheduler/rerun": 502}
    with pytest.raises(RunOutcomeUnknownError, match="may or may not have started"):
        control.rerun(failed, credentials=BASIC)
    assert simulator.request_count("/scheduler/rerun") == 1


def test_a_429_on_start_run_is_retried(control, simulator) -> None:
    simulator.faults.fault_path_prefix = "/scheduler/startRun"
    simulator.faults.retry_after_seconds = 0
    simulator.faults.rate_limit_burst = 1
    run_id = control.start_run("1", credentials=BASIC)
    assert simulator.request_count("/scheduler/startRun") == 2 and run_id == 41
    assert len(simulator.state.runs) == 41  # one run, not two


def test_a_start_run_rate_limited_every_time_started_nothing(control, simulator) -> None:
    simulator.faults.fault_path_prefix = "/scheduler/startRun"
    simulator.faults.retry_after_seconds = 0
    simulator.faults.rate_limit_burst = 10
    with pytest.raises(RunRequestRefusedError) as refused:
        control.start_run("1", credentials=BASIC)
    assert simulator.request_count("/scheduler/startRun") == 3  # RUNTIME__REQUEST_MAX_ATTEMPTS
    assert "(429)" in str(explain(refused.value)) and "was not started" in str(explain(refused.value))
    assert is_transient(refused.value) and len(simulator.state.runs) == 40


def test_a_read_timeout_or_a_dropped_connection_is_not_retried(simulator, monkeypatch) -> None:
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    impatient = CoalesceRunControl.from_config()
    simulator.faults.fault_path_prefix = "/scheduler/startRun"
    simulator.faults.hang_seconds = 5.0
    simulator.faults.hang_burst = 1
    with pytest.raises(RunOutcomeUnknownError, match="may or may not have started") as timed_out:
        impatient.start_run("1", credentials=BASIC)
    assert isinstance(timed_out.value.__cause__, requests.ReadTimeout)
    # The reset with a timeout no starved machine reaches, so it cannot come back as a read timeout.
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "60")
    patient = CoalesceRunControl.from_config()
    simulator.faults.reset_burst = 1
    with pytest.raises(RunOutcomeUnknownError, match="ConnectionError") as dropped:
        patient.start_run("1", credentials=BASIC)
    assert isinstance(dropped.value.__cause__, requests.ConnectionError)
    assert simulator.request_count("/scheduler/startRun") == 2


def test_a_connection_never_made_is_retried_and_then_says_so(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="coalesce_dagster.coalesce.http")
    with refused_port() as port:  # bound for the whole test, so no other test can take it
        control = CoalesceRunControl(f"http://127.0.0.1:{port}", "sim-token")
        with pytest.raises(requests.ConnectionError) as refused:
            control.start_run("1", credentials=BASIC)
    assert failed_before_sending(refused.value)
    # Every attempt was made (RUNTIME__REQUEST_MAX_ATTEMPTS = 3): each retry is logged as scheduled.
    retries = [m for m in caplog.messages if m.startswith("Coalesce request failed (ConnectionError)")]
    assert len(retries) == 2, caplog.messages
    message = explain(refused.value)
    assert message is not None and message.startswith("Could not connect to Coalesce")
    assert is_transient(refused.value)
    assert not failed_before_sending(requests.ReadTimeout("read timed out"))
    assert not failed_before_sending(requests.ConnectionError("Connection aborted."))


def test_arguments_that_could_start_the_wrong_run_are_refused(control, simulator) -> None:
    with pytest.raises(ValueError, match="whole environment"):
        control.start_run("1", include_nodes_selector="  ", credentials=BASIC)
    with pytest.raises(ValueError, match="environment_id"):
        control.start_run("", credentials=BASIC)
    with pytest.raises(ValueError, match="parallelism"):
        control.start_run("1", parallelism=0, credentials=BASIC)
    with pytest.raises(ValueError, match="run id"):
        control.rerun("abc", credentials=BASIC)  # type: ignore[arg-type]
    assert simulator.request_count() == 0


def test_node_selector_quotes_what_needs_quoting_and_sorts() -> None:
    selector = node_selector(
        [("STAGE", "STG_ORDERS"), ("MART", "Order Facts"), ("STAGE", "STG_ORDERS"), ("RAW", "a-b.c")]
    )
    assert selector == (
        '{ location: MART name: "Order Facts" } OR { location: RAW name: "a-b.c" } '
        "OR { location: STAGE name: STG_ORDERS }"
    )
    assert node_selector([("My Location", "X")]) == '{ location: "My Location" name: X }'
    with pytest.raises(ValueError, match="whole environment"):
        node_selector([])
    for bad in (("L", 'say "hi"'), ("L", "a{b}"), ("", "X")):
        with pytest.raises(ValueError):
            node_selector([bad])


def test_node_selector_round_trips_through_the_simulator_parser(simulator) -> None:
    from coalesce_simulator.selectors import parse_selector

    pairs = [("MART", "Order Facts"), ("STAGE", "STG_ORDERS"), ("RAW", "a-b.c")]
    terms = parse_selector(node_selector(pairs))
    assert sorted((term["location"], term["name"]) for term in terms) == sorted(pairs)


def test_what_coalesce_quotes_back_is_scrubbed_of_secrets() -> None:
    one_line = PEM.replace("\n", " ")
    for quoted in (f"bad key {PEM}", f"bad key {one_line}", "password pa55-w0rd-x9 refused, token sim-token"):
        _assert_no_secret(_scrub(quoted, ("sim-token", *KEY_PAIR.secret_values(), *BASIC.secret_values())))
    assert _scrub("nothing secret", ("sim-token",)) == "nothing secret"
