"""Fast tests of the pure pieces: the sensor cursor, the paginator's state, envelopes, explanations,
and the settings checks. Inputs are built as the HTTP layer builds them (a `requests.Response` with a
body); nothing of the project's own is replaced."""

from __future__ import annotations

import json

import pytest
import requests

from coalesce_dagster.coalesce.errors import UnexpectedResponseError, explain, is_transient
from coalesce_dagster.coalesce.http import JsonResponse
from coalesce_dagster.coalesce.pagination import CoalescePaginator, run_results_envelope
from coalesce_dagster.coalesce.run_tracker import CURSOR_VERSION, TrackerCursor
from coalesce_dagster.coalesce.types import RunStatus, is_terminal
from coalesce_dagster.configuration import ConfigurationError, resolve_source_settings

BASE = "https://app.coalescesoftware.io"


def response(body: object, status: int = 200, path: str = "/api/v1/runs") -> JsonResponse:
    answer = JsonResponse()
    answer.status_code = status
    answer._content = json.dumps(body).encode()
    answer.url = BASE + path
    answer.request = requests.Request("GET", BASE + path).prepare()
    return answer


def paged(
    page: list[dict], *, v62_runs: bool = True, **envelope: object
) -> tuple[CoalescePaginator, JsonResponse]:
    paginator = CoalescePaginator(v62_runs=v62_runs)
    request = requests.Request("GET", BASE + "/api/v1/runs", params={"limit": 2})
    paginator.init_request(request)
    answer = response({"data": page, **envelope})
    paginator.update_state(answer, page)
    return paginator, answer


# -- the sensor cursor --------------------------------------------------------------------------


def test_the_cursor_round_trips():
    cursor = TrackerCursor(highest_run_id=41, in_flight={40: "running", 38: "unknown"})
    again, readable = TrackerCursor.deserialize(cursor.serialize())
    assert readable and again == cursor
    assert json.loads(cursor.serialize())["version"] == CURSOR_VERSION


def test_a_version_1_cursor_is_still_read():
    old = json.dumps({"version": 1, "high_water": 12, "in_flight": {"11": "running"}})
    assert TrackerCursor.deserialize(old) == (
        TrackerCursor(highest_run_id=12, in_flight={11: "running"}),
        True,
    )


@pytest.mark.parametrize("raw", ["{", "[]", json.dumps({"version": 99}), json.dumps({"version": 2})])
def test_an_unreadable_cursor_starts_fresh_and_says_so(raw):
    assert TrackerCursor.deserialize(raw) == (TrackerCursor(), False)


# -- the paginator's state ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "end", [{}, {"next": None}, {"next": ""}, {"next": "  "}], ids=["absent", "null", "empty", "blank"]
)
def test_every_end_of_data_variant_ends_paging(end):
    paginator, _ = paged([{"id": 2}, {"id": 1}], total=2, **end)
    assert paginator.next_cursor is None


def test_a_numeric_next_becomes_the_string_sent_back():
    paginator, _ = paged([{"id": 2}, {"id": 1}], total=9, next=7.0)
    assert paginator.next_cursor == "7"


def test_a_repeated_cursor_stops_paging():
    paginator, answer = paged([{"id": 2}, {"id": 1}], total=9, next="abc")
    paginator.update_state(answer, [{"id": 2}, {"id": 1}])
    assert paginator.next_cursor is None


def test_v62_runs_paging_continues_from_the_last_id_of_a_full_page():
    full, _ = paged([{"id": 9}, {"id": 8}])  # no next, no total: the v6.2 runs API
    assert full.next_cursor == "8"
    short, _ = paged([{"id": 7}])
    assert short.next_cursor is None


def test_v62_runs_paging_judges_a_full_page_by_the_limit_the_page_says_it_had():
    capped, _ = paged([{"id": 9}], limit=1)  # 2 asked for, 1 given and echoed: more may follow
    assert capped.next_cursor == "9"


def test_a_full_page_without_next_or_total_ends_any_other_list():
    # v6.2 paged runs only; elsewhere `total` is optional and no `next` means the last page.
    full, _ = paged([{"id": 9}, {"id": 8}], v62_runs=False)
    assert full.next_cursor is None


def test_a_list_without_a_data_list_is_refused():
    paginator = CoalescePaginator()
    with pytest.raises(UnexpectedResponseError, match="expected an object with a `data` list"):
        paginator.update_state(response({"items": []}), [])


# -- run results envelopes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"data": [{"nodeID": "a"}]},
        {"results": [{"nodeID": "a"}]},
        [{"nodeID": "a"}],
        {"note": "x" * 300, "results": [{"nodeID": "a"}]},
    ],
    ids=["data", "results", "bare", "results_late"],
)
def test_every_documented_results_envelope_reads_as_data(body):
    answer = run_results_envelope(response(body, path="/api/v1/runs/5/results"))
    assert answer.json()["data"] == [{"nodeID": "a"}]


def test_an_unknown_results_envelope_names_the_run_and_its_shape():
    with pytest.raises(UnexpectedResponseError, match=r"the results of run 5 .*\['items'\]"):
        run_results_envelope(response({"items": []}, path="/api/v1/runs/5/results"))


# -- explanations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, words, transient",
    [
        (401, "rejected the access token (401)", False),
        (403, "(403)", False),
        (404, "(404)", False),
        (429, "rate-limiting", True),
        (503, "failing (503)", True),
    ],
)
def test_an_http_failure_is_explained_and_classified(status, words, transient):
    error = requests.HTTPError(response=response({"error": {"errorString": f"{status}: nope"}}, status))
    message = explain(error)
    assert words in message and f'"{status}: nope"' in message
    assert is_transient(error) is transient


def test_a_wrapped_cause_is_found():
    try:
        try:
            raise requests.ConnectionError("refused")
        except requests.ConnectionError as inner:
            raise RuntimeError("dlt's wrapper") from inner
    except RuntimeError as outer:
        assert explain(outer).startswith("Could not connect to Coalesce")
        assert is_transient(outer)


def test_an_unrelated_failure_is_left_alone():
    assert explain(KeyError("x")) is None and not is_transient(KeyError("x"))


# -- statuses and settings ----------------------------------------------------------------------------


def test_only_completed_failed_and_canceled_are_terminal():
    assert {s.value for s in RunStatus if s.is_terminal} == {"completed", "failed", "canceled"}
    assert not is_terminal(None) and not is_terminal("unknown")


@pytest.mark.parametrize(
    "arguments, key",
    [
        ({"page_size": 501}, "page_size"),
        ({"runs_page_size": "x"}, "runs_page_size"),
        ({"nodes_timeout": 0}, "nodes_timeout"),
        ({"base_url": "eu-nowhere"}, "base_url"),
    ],
)
def test_a_bad_setting_names_its_key(arguments, key):
    with pytest.raises(ConfigurationError, match=rf"\[sources.coalesce_source\] {key}"):
        resolve_source_settings(access_token="t", **arguments)


def test_settings_never_show_the_token():
    settings = resolve_source_settings(base_url="eu", access_token="very-secret-token")
    assert "very-secret-token" not in repr(settings)
