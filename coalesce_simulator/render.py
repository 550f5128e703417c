"""API views of the state's records (doc §3).

Records are stored in their fullest form; these functions pick the fields each endpoint
shows. They return new top-level dicts but may share nested objects with the state, so
callers serialise while still holding the state lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENVIRONMENT_SUMMARY_FIELDS = ("createdAt", "createdBy", "id", "name", "project", "status")
NODE_SUMMARY_FIELDS = ("id", "name", "nodeType", "database", "schema", "locationName")
_RUN_SUMMARY_FIELDS = ("id", "runType", "runStatus", "reRunID", "runStartTime", "runEndTime",
                       "environmentID", "runFailureReason")  # fmt: skip
_RUN_INFO_FIELDS = ("id", "version", "reRunID", "runDetails", "runStartTime", "runEndTime", "runHistory",
                    "runStatus", "runTimeParameters", "runType", "userCredentials", "userID",
                    "runFailureReason")  # fmt: skip
#: Secret values run objects echo in ``userCredentials`` under the ``echo_credentials`` fault.
#: Fixed and distinctive, so a test can look for them anywhere a client may have stored data.
ECHOED_SECRET_VALUES: dict[str, str] = {
    "snowflakePassword": "sim-echoed-snowflake-password",
    "snowflakeKeyPairKey": (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nc2ltLWVjaG9lZC1wcml2YXRlLWtleQ==\n-----END ENCRYPTED PRIVATE KEY-----"
    ),
    "snowflakeKeyPairPass": "sim-echoed-key-pair-passphrase",
}
# Leads the "results_late" envelope: 200 characters, so "results" starts beyond byte 200.
RESULTS_LATE_NOTE = "What each node of this run did follows this note, not before it. ".ljust(200, ".")


def _pick(record: Mapping[str, Any], keys: tuple[str, ...], nulls: bool = False) -> dict[str, Any]:
    # Optional fields are left out rather than sent as null (e.g. runEndTime of a live run), unless
    # `nulls`: then each is sent as null, as an API serialising one model with nullable fields would.
    return {key: record.get(key) for key in keys if nulls or record.get(key) is not None}


def environment(env: Mapping[str, Any], detail: bool) -> dict[str, Any]:
    return dict(env) if detail else _pick(env, ENVIRONMENT_SUMMARY_FIELDS)


def node(node: Mapping[str, Any], detail: bool) -> dict[str, Any]:
    return dict(node) if detail else _pick(node, NODE_SUMMARY_FIELDS)


def _run_id(run: Mapping[str, Any], as_string: bool) -> int | str:
    return str(run["id"]) if as_string else int(run["id"])


def _echoed_credentials(run: Mapping[str, Any]) -> dict[str, Any]:
    # A new dict: the state's record never holds a secret.
    return {**run["userCredentials"], **ECHOED_SECRET_VALUES}


def run_summary(
    run: Mapping[str, Any], *, id_as_string: bool = False, echo_credentials: bool = False, nulls: bool = False
) -> dict[str, Any]:
    """RunSummary: environmentID is top-level.

    ``echo_credentials`` adds userCredentials with secrets even here, where RunSummary has none:
    a misbehaving API need not stop at the detail view. ``nulls``: absent optional fields as null.
    """
    view = _pick(run, _RUN_SUMMARY_FIELDS, nulls)
    view["id"] = _run_id(run, id_as_string)
    if echo_credentials:
        view["userCredentials"] = _echoed_credentials(run)
    return view


def run_info(
    run: Mapping[str, Any], *, id_as_string: bool = False, echo_credentials: bool = False, nulls: bool = False
) -> dict[str, Any]:
    """RunInfo: environmentID sits inside runDetails.

    ``runFailureReason`` is not in the v6.2 RunInfo schema; it is added for failed runs
    because a client polling ``/runs/{id}`` has no other way to learn why a run failed.
    ``echo_credentials`` adds the secret values of ECHOED_SECRET_VALUES to userCredentials.
    ``nulls``: absent optional fields as null, and a top-level ``environmentID`` of null beside the
    one in runDetails (one model for both views, its summary-only fields null).
    """
    view = _pick(run, _RUN_INFO_FIELDS, nulls)
    if nulls:
        view["environmentID"] = None
    view["id"] = _run_id(run, id_as_string)
    details = {key: value for key, value in run["runDetails"].items() if value is not None}
    view["runDetails"] = {"environmentID": run["environmentID"], **details}
    if echo_credentials:
        view["userCredentials"] = _echoed_credentials(run)
    return view


def run_status(run: Mapping[str, Any], run_link: str, *, with_status: bool = True) -> dict[str, Any]:
    """``/scheduler/runStatus`` body; ``with_status=False`` leaves out runStatus, which v6.2 marks optional."""
    body = {"runStatus": run["runStatus"]} if with_status else {}
    return {**body, "runType": run["runType"], "runLink": run_link}


def user(record: Mapping[str, Any]) -> dict[str, Any]:
    return dict(record)


def job(record: Mapping[str, Any]) -> dict[str, Any]:
    """A saved job: ``id`` (a small int), ``name``, ``includeSelector``, ``excludeSelector`` (doc §3.6)."""
    return dict(record)


def project(record: Mapping[str, Any], *, include_workspaces: bool, include_jobs: bool) -> dict[str, Any]:
    view = {key: value for key, value in record.items() if key not in ("workspaces", "jobs")}
    if include_workspaces:
        view["workspaces"] = record["workspaces"]
    if include_jobs:
        view["jobs"] = record["jobs"]
    return view


def run_results(
    results: list[dict[str, Any]], envelope: str, *, run_id: int | str, failed_state: str = "error"
) -> Any:
    """``/runs/{id}/results`` body in the envelope Faults.results_envelope asks for.

    "results_late" puts ``runID`` and a 200-character ``note`` before ``results`` (json.dumps keeps
    insertion order), so the key a client looks for only appears beyond the first 200 bytes.

    ``failed_state`` (Faults.failed_run_state) replaces the runState "error" the state stores.
    Mapping on the way out, not in the state, lets stored and rebuilt historical results honour
    it alike, and keeps the state's own logic (re-runs) on one spelling.
    """
    if failed_state != "error":
        results = [
            {**result, "runState": failed_state} if result["runState"] == "error" else result
            for result in results
        ]
    if envelope == "bare":
        return results
    if envelope == "results_late":
        return {"runID": run_id, "note": RESULTS_LATE_NOTE, "results": results}
    return {envelope: results}
