"""The shared HTTP session (`coalesce/http.py`), against the simulator over real HTTP.

It reads proxy settings from the environment once instead of per request and parses bodies with
orjson once. These tests pin that neither changes behaviour: proxies and `no_proxy` still apply,
malformed bodies still raise requests' own error, and a rewritten body is parsed again.
"""

from __future__ import annotations

import pytest
import requests

from coalesce_dagster.coalesce.http import JsonResponse, coalesce_session
from coalesce_dagster_tests.helpers import refused_port


@pytest.fixture
def dead_proxy():
    """A proxy address nothing answers at, held for the whole test."""
    with refused_port() as port:
        yield f"http://127.0.0.1:{port}"


def _get(simulator, path: str) -> requests.Response:
    session = coalesce_session(simulator.base_url)
    headers = {"Authorization": f"Bearer {simulator.config.token}"}
    return session.get(simulator.base_url + path, headers=headers, timeout=10)


def test_json_is_parsed_once_and_matches_the_standard_parser(simulator):
    response = _get(simulator, "/api/v1/environments")

    assert isinstance(response, JsonResponse)
    first = response.json()
    assert response.json() is first  # the paginator and dlt's selector share one parse
    assert first == requests.models.complexjson.loads(response.content)
    assert len(first["data"]) == len(simulator.state.environments)


def test_a_rewritten_body_is_parsed_again(simulator):
    response = _get(simulator, "/api/v1/environments")
    response.json()

    response._content = b'{"data": []}'  # what a response hook such as `run_results_envelope` does

    assert response.json() == {"data": []}


def test_a_malformed_body_raises_the_requests_error(simulator):
    simulator.faults.update({"garbage_burst": 1, "fault_path_prefix": "/api/v1/projects"})

    response = _get(simulator, "/api/v1/projects")

    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_proxy_variables_still_apply(simulator, monkeypatch, dead_proxy):
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("http_proxy", dead_proxy)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    session = coalesce_session(simulator.base_url)

    assert session.proxies.get("http") == dead_proxy
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(simulator.base_url + "/api/v1/environments", timeout=5)


def test_no_proxy_still_applies(simulator, monkeypatch, dead_proxy):
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("http_proxy", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")

    response = _get(simulator, "/api/v1/environments")

    assert response.status_code == 200


def test_one_session_across_extract_threads_keeps_every_answer_with_its_request(simulator):
    """dlt's rest_api hands one client session to all its extract threads, and so does this project.
    requests' connection pool is thread-safe and each response is a new object (its class is set
    before anyone else sees it): 16 threads, 600 requests, every body parsed from its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    simulator.faults.latency_ms = 2  # keep requests overlapping
    session = coalesce_session(simulator.base_url)
    headers = {"Authorization": f"Bearer {simulator.config.token}"}

    def fetch(run_id: int) -> tuple[int, str, object, bool]:
        response = session.get(f"{simulator.base_url}/api/v1/runs/{run_id}", headers=headers, timeout=10)
        body = response.json()
        return (
            run_id,
            response.request.url,
            body["id"],
            response.json() is body and isinstance(response, JsonResponse),
        )

    asked = sorted(simulator.state.runs) * 15
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(fetch, asked))

    assert simulator.max_concurrency > 1
    for run_id, url, body_id, parsed_once in answers:
        assert url.endswith(f"/api/v1/runs/{run_id}") and body_id == run_id and parsed_once
