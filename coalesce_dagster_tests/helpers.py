"""Helpers shared by tests: reading the destination whole, looking for secrets anywhere, and sockets
and pipes that cannot hang or race."""

from __future__ import annotations

import base64
import contextlib
import queue
import socket
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import dagster as dg
import pytest

DATASET = "coalesce_data"
# dlt's bookkeeping columns: ids that differ between two loads of the same rows.
_BOOKKEEPING_COLUMNS = ("_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id")


def contents(warehouse: Any) -> dict[str, list[str]]:
    """Every row of every table of the dataset (without dlt's per-load ids), to compare the whole
    destination before and after something happened."""
    with warehouse.session():  # one connection for two queries a table
        return _contents(warehouse)


def _contents(warehouse: Any) -> dict[str, list[str]]:
    snapshot = {}
    excluded = ", ".join(f"'{name}'" for name in _BOOKKEEPING_COLUMNS)
    for table in sorted(warehouse.tables()):
        if table.startswith("_dlt"):
            continue
        columns = [
            f'"{c}"'
            for (c,) in warehouse.rows(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                f"AND table_name = ? AND column_name NOT IN ({excluded}) ORDER BY column_name",
                DATASET,
                table,
            )
        ]
        rows = warehouse.rows(f'SELECT {", ".join(columns)} FROM {DATASET}."{table}"')
        snapshot[table] = sorted(map(repr, rows))
    return snapshot


def stored_text_containing(warehouse: Any, needles: Iterable[str]) -> list[str]:
    """Where any of `needles` is stored in the DuckDB file, as `schema.table.column`: every text and
    JSON column of every schema (the dataset, its staging dataset, dlt's own tables), and dlt's
    pipeline state, which is stored compressed and would hide a secret from a byte search (as
    DuckDB's string compression can)."""
    with warehouse.session():  # one connection for a query a column
        return _stored_text_containing(warehouse, list(needles))


def _stored_text_containing(warehouse: Any, needles: list[str]) -> list[str]:
    hits = []
    for schema, table, column, _data_type in warehouse.rows(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE data_type IN ('VARCHAR', 'JSON')"
    ):
        values = [
            v for (v,) in warehouse.rows(f'SELECT "{column}" FROM "{schema}"."{table}"') if v is not None
        ]
        if table == "_dlt_pipeline_state" and column == "state":
            values = [_decoded_state(value) for value in values]
        if any(needle in str(value) for value in values for needle in needles):
            hits.append(f"{schema}.{table}.{column}")
    return hits


def _decoded_state(value: str) -> str:
    try:
        return zlib.decompress(base64.b64decode(value)).decode("utf-8", "replace")
    except (ValueError, zlib.error):
        return value


def files_containing(root: Path, needles: Iterable[bytes]) -> list[str]:
    needles = list(needles)
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                hits.append(str(path))
    return hits


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs: bound (so nothing
    else can take it meanwhile) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class CountingServer:
    """A loopback TCP server that answers every connection with `reply` and closes it, counting
    connections: a stand-in for a host that is reachable but does not speak what the client expects
    (plain bytes where TLS is wanted, say). The port is bound before anyone learns it."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.connections = 0
        self._stopping = False
        self._lock = threading.Lock()
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing a socket does not wake a thread blocked in accept(); one last connection does.
        self._stopping = True
        socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
        self._thread.join(timeout=10)
        self._socket.close()

    def _serve(self) -> None:
        while True:
            connection, _ = self._socket.accept()
            if self._stopping:
                connection.close()
                return
            with self._lock:
                self.connections += 1
            with connection:
                try:
                    connection.recv(4096)
                    connection.sendall(self.reply)
                except OSError:
                    pass


def read_line(stream: IO[str], timeout: float = 60) -> str:
    """One line from a child process's pipe, or AssertionError after `timeout` s: a child that
    never prints fails the test instead of hanging it."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"the process printed no line within {timeout:g} s") from None


DESTINATIONS = ("duckdb", "postgres")
# The load path's end-to-end tests run against every destination (the `destination` fixture).
on_every_destination = pytest.mark.parametrize("destination", DESTINATIONS, indirect=True)


def materialize(
    instance: dg.DagsterInstance,
    selection: list[str] | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    resources: dict | None = None,
    tags: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize Coalesce assets through real Dagster, as the UI or a schedule would."""
    from coalesce_dagster.defs.assets import coalesce_assets
    from coalesce_dagster.defs.resources import resource_defs

    asset_selection = (
        dg.AssetSelection.assets(*[dg.AssetKey(["coalesce", name]) for name in selection])
        if selection
        else None
    )
    return dg.materialize(
        [coalesce_assets],
        instance=instance,
        resources={**resource_defs(), **(resources or {})},
        selection=asset_selection,
        run_config=run_config,
        raise_on_error=raise_on_error,
        tags=tags,
    )


def tick_run_status_sensor(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None
) -> Any:
    """One tick of the code location's run-status sensor, with its repository (so it sees the node
    assets), as the daemon ticks it."""
    from coalesce_dagster.defs.resources import CoalesceResource
    from coalesce_dagster.defs.sensors import SENSOR_NAME

    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"coalesce": CoalesceResource()},
        repository_def=defs.get_repository_def(),
    ) as context:
        return sensor(context)
