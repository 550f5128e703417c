"""Settings that cannot work are refused before any request, naming the key, the value and what is
allowed (page sizes are covered with the real-account behaviour, the sensor's with the sensor)."""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.configuration import ConfigurationError


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_a_bad_nodes_timeout_is_refused_before_any_request(simulator, monkeypatch, value):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_TIMEOUT", value)
    with pytest.raises(ConfigurationError) as refused:
        coalesce_source()
    expected = f"[sources.coalesce_source] nodes_timeout = {value!r} must be a positive number of seconds"
    assert expected in str(refused.value)
    assert simulator.request_count() == 0


@pytest.mark.parametrize("base_url", ["eu-nowhere", "ftp://app.coalescesoftware.io"])
def test_a_bad_base_url_fails_a_load_before_any_request(simulator, monkeypatch, base_url):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", base_url)
    with pytest.raises(ConfigurationError) as refused:
        coalesce_source()
    assert "[sources.coalesce_source] base_url" in str(refused.value) and "us-east-1" in str(refused.value)
    assert simulator.request_count() == 0
