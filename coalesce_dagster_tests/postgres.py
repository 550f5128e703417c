"""The PostgreSQL server the Postgres tests use, and a private database per test.

Every machine of this project, CI's included, runs one on 127.0.0.1:5432 with trust authentication
(`COALESCE_DAGSTER_TEST_POSTGRES_URL` points elsewhere). On a laptop without one the Postgres tests
skip, saying why; `.ci/run` sets `COALESCE_DAGSTER_REQUIRE_POSTGRES=1`, which turns that skip into a
failure, so CI can never pass with them silently left out.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

SERVER_URL_VARIABLE = "COALESCE_DAGSTER_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "COALESCE_DAGSTER_REQUIRE_POSTGRES"
# dlt insists on a password in its credentials; trust authentication ignores the empty one.
DEFAULT_SERVER_URL = "postgresql://postgres:@127.0.0.1:5432"


def server_url() -> str:
    return os.environ.get(SERVER_URL_VARIABLE, DEFAULT_SERVER_URL).rstrip("/")


def database_url(database: str) -> str:
    return f"{server_url()}/{database}"


@functools.cache
def _unreachable_reason(url: str) -> str | None:
    try:
        import psycopg2

        psycopg2.connect(f"{url}/postgres", connect_timeout=3).close()
    except Exception as error:  # no driver, no server, refused login: all mean "cannot test here"
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return None


def require_server() -> None:
    """Skip the calling test when no server answers, or fail it when CI requires one."""
    problem = _unreachable_reason(server_url())
    if problem is None:
        return
    where = f"{server_url().rsplit('@', 1)[-1]} ({SERVER_URL_VARIABLE})"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_VARIABLE}=1) but {where} is unreachable: {problem}")
    pytest.skip(f"needs a PostgreSQL server: {where} is unreachable ({problem})")


def _admin(sql: str) -> None:
    import psycopg2

    connection = psycopg2.connect(database_url("postgres"))
    try:
        connection.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@contextmanager
def temporary_database(purpose: str) -> Iterator[str]:
    """A new, empty database for one test, dropped afterwards (with any connection still open to it).

    A database rather than a schema: the test's dataset keeps the product's default name
    (`coalesce_data`, with `coalesce_data_staging`), and Dagster's storage gets a whole database as
    it does in a deployment. Parallel tests never share one."""
    require_server()
    name = f"coalesce_test_{purpose}_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
