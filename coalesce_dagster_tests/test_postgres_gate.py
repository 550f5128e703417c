"""Without a PostgreSQL server the Postgres tests skip on a laptop, and fail in CI (.ci/run)."""

from __future__ import annotations

import pytest

from coalesce_dagster_tests import postgres

NOWHERE = "postgresql://postgres:@127.0.0.1:9"  # the discard port: nothing listens there


def test_an_unreachable_server_skips_with_the_reason(monkeypatch):
    monkeypatch.setenv(postgres.SERVER_URL_VARIABLE, NOWHERE)
    monkeypatch.delenv(postgres.REQUIRE_VARIABLE, raising=False)
    with pytest.raises(
        pytest.skip.Exception, match="needs a PostgreSQL server: 127.0.0.1:9 .* is unreachable"
    ):
        postgres.require_server()


def test_an_unreachable_server_fails_when_ci_requires_one(monkeypatch):
    monkeypatch.setenv(postgres.SERVER_URL_VARIABLE, NOWHERE)
    monkeypatch.setenv(postgres.REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is required"):
        postgres.require_server()
