"""The dlt pipeline every load goes through: one pipeline, one dataset, one table per resource."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import TLoaderFileFormat
from dlt.common.destination.reference import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.extract.source import DltSource
from dlt.pipeline.progress import _NULL_COLLECTOR

from .configuration import DEFAULT_DESTINATION, DestinationSettings, read_section
from .configuration import names as settings

logger = logging.getLogger(__name__)


def make_destination(configured: DestinationSettings, connection: Any = None) -> Destination:
    """The configured destination; for DuckDB, with the project's load settings, on `connection`
    (a `duckdb` connection to the configured file, see `loading_pipeline`) when one is given."""
    name = configured.destination
    if name != "duckdb":
        destination = Destination.from_reference(name)
        if destination is None:
            raise ValueError(f"[coalesce_dagster] destination {name!r} is not a dlt destination")
        return destination
    given = configured_duckdb_credentials()
    if given is None:
        # a full credentials section: dlt resolves it as given
        return dlt.destinations.duckdb(loader_parallelism_strategy="sequential")
    credentials = DuckDbCredentials(connection if connection is not None else given)
    credentials.global_config = {"memory_limit": configured.duckdb_memory_limit, **DUCKDB_LOAD_SETTINGS}
    return dlt.destinations.duckdb(credentials=credentials, loader_parallelism_strategy="sequential")


def configured_duckdb_credentials() -> str | None:
    """`destination.duckdb.credentials` as given, a path or a `duckdb:///` URL (the project's default
    file when unset); None when the credentials are a whole section, which dlt resolves itself."""
    value: Any = dlt.config.get("destination.duckdb.credentials")
    if value is not None and not isinstance(value, str):
        return None
    return str(value or settings.DEFAULT_DUCKDB_PATH)


def _file_a_load_can_open() -> Path | None:
    """The configured DuckDB file as a plain path (also when given as a `duckdb:///` URL); None where
    dlt must resolve the credentials itself: a whole section, `:pipeline:`, MotherDuck's `md:`."""
    given = configured_duckdb_credentials()
    if given is None:
        return None
    database = str(DuckDbCredentials(given).database or "")
    if not database or database.startswith((":", "md:")):
        return None
    return Path(database)


# How a load runs in DuckDB (docs/benchmark.md, "Memory"): one load job at a time ("sequential"
# above; dlt's default runs up to `[load] workers`, 20, at once, each copy into staging with buffers of
# its own) and one DuckDB thread per statement. Measured: the load alone peaked 25-70 MB lower, for
# no more CPU (DuckDB's second thread cost CPU on two cores rather than saving it). Other destinations
# keep dlt's parallel loads.
DUCKDB_LOAD_SETTINGS: dict[str, Any] = {"threads": 1}


@contextmanager
def private_working_dir(prefix: str) -> Iterator[Path]:
    """A dlt working folder of one run's own under the pipelines dir, removed afterwards: runs that
    share one wipe each other's load packages (dagster#21022)."""
    root = settings.pipelines_dir()
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_pipeline(
    working_dir: Path | None = None,
    progress: Any = None,
    destination: DestinationSettings | None = None,
    connection: Any = None,
) -> dlt.Pipeline:
    """A fresh pipeline object.

    Build one per run: dagster-dlt mutates the schema of a pipeline it has run once (dagster#34052),
    and a separate working dir per run keeps concurrent runs from wiping each other's load packages
    (dagster#21022). State and schema come back from the destination at the start of each run.
    A load runs in `loading_pipeline`, which builds it on one DuckDB connection for the whole run.

    progress: a dlt collector reporting the load's progress (see `progress.LoadProgress`).
    destination: `[coalesce_dagster]` as resolved already; by default read now, and a bad value
    raises `ConfigurationError` naming its key.
    connection: for DuckDB, an open connection to the configured file for dlt to use (and not
    close); by default dlt opens the file whenever it needs it.
    """
    configured = destination or read_section(DestinationSettings)
    return dlt.pipeline(
        pipeline_name=settings.PIPELINE_NAME,
        pipelines_dir=str(working_dir or settings.pipelines_dir()),
        destination=make_destination(configured, connection),
        dataset_name=configured.dataset_name,
        progress=progress or _NULL_COLLECTOR,
    )


# glibc gives each thread that allocates an arena of its own, up to 8 per core, and what one arena
# frees the others do not reuse: with the extract's 32 threads the large sync under Dagster peaked at
# 452-456 MB, and at 424 MB with two arenas, in the same time (docs/benchmark.md, "Memory").
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads that allocate from now on (the extract's); whether the
    cap was set. `MALLOC_ARENA_MAX` in the environment wins (glibc read it at the process's start),
    and elsewhere than Linux with glibc nothing changes."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


@contextmanager
def loading_pipeline(working_dir: Path | None = None, progress: Any = None) -> Iterator[dlt.Pipeline]:
    """`make_pipeline` for one load, its DuckDB file opened once for the whole block and closed
    (checkpointed) when it ends; a failed first load leaves no file behind
    (`no_new_file_left_on_failure`).

    Left to itself, dlt opens the file, and checkpoints it on closing, for every load job and every
    look at the destination: 27 times in a small sync. Measured (docs/benchmark.md, "Where the time
    goes", "The load"): the load step of a first sync of the harness size 1.8-1.9 s -> 0.7-0.8 s,
    of a sync without changes 1.05 -> 0.28 s. dlt's jobs borrow cursors of this one connection, one job
    at a time as before. Other destinations, and DuckDB credentials given as a whole section, are
    dlt's to connect to as before.

    The file is held for the whole block (the run, then the checks on its tables): another process
    cannot open it meanwhile, as it could not during a load's own connections before.
    """
    configured = read_section(DestinationSettings)
    limit_malloc_arenas()  # before the extract starts its threads
    path = _file_a_load_can_open() if configured.destination == "duckdb" else None
    if path is None:
        pipeline = make_pipeline(working_dir, progress, configured)
        with no_new_file_left_on_failure(pipeline):
            yield pipeline
        return
    import duckdb

    existed = path.exists()
    connection = duckdb.connect(str(path))
    try:
        yield make_pipeline(working_dir, progress, configured, connection)
    except BaseException:
        connection.close()
        if not existed:
            _remove_database_file(path)
        raise
    connection.close()


def definition_pipeline() -> dlt.Pipeline:
    """The pipeline Dagster's definitions describe (never run): only its destination's name and its
    dataset are read, and it is built in a temporary folder, removed at once. Its destination is
    dlt's factory without credentials, so loading the definitions imports no destination driver (for
    DuckDB: `duckdb`, and `sqlalchemy` to parse the path) and reads no destination config; each run
    builds its own pipeline (`make_pipeline`).
    A bad `[coalesce_dagster]` value, or a destination that cannot be set up here (a missing extra),
    is logged and its default used, so the code location still loads; a load then fails naming the
    key, or with dlt's own message."""
    configured = read_section(DestinationSettings, strict=False)
    try:
        return _described_pipeline(configured.destination, configured.dataset_name)
    except Exception as error:
        logger.warning(
            "[coalesce_dagster] destination %r cannot be used (%s); describing the assets with %s.",
            configured.destination,
            str(error).splitlines()[0][:200],
            DEFAULT_DESTINATION,
        )
        return _described_pipeline(DEFAULT_DESTINATION, configured.dataset_name)


def _described_pipeline(destination: str, dataset_name: str) -> dlt.Pipeline:
    # dlt writes a pipeline's working folder (its first-run state) as it builds the object, and the
    # definitions only read the object's names: build it in a throwaway folder, so that loading the
    # definitions writes nothing into the project (issue 22). The object keeps dlt's own naming
    # rules (a `dataset_name_layout`, say); a run never uses it (`make_pipeline`).
    with tempfile.TemporaryDirectory(prefix="coalesce-definitions-") as folder:
        return dlt.pipeline(
            pipeline_name=settings.PIPELINE_NAME,
            pipelines_dir=folder,
            destination=Destination.from_reference(destination),
            dataset_name=dataset_name,
        )


def duckdb_file(pipeline: dlt.Pipeline) -> Path | None:
    """The DuckDB file a pipeline loads into, or None for another destination."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    credentials = pipeline.destination_client().config.credentials
    return Path(str(getattr(credentials, "database", None)))


@contextmanager
def no_new_file_left_on_failure(pipeline: dlt.Pipeline) -> Iterator[None]:
    """A failed first load leaves no empty DuckDB file behind: dlt creates the file when it first
    connects, so a file that did not exist before a load that failed is removed (with its WAL).
    A file that existed before is never touched."""
    path = duckdb_file(pipeline)
    existed = path is None or path.exists()
    try:
        yield
    except BaseException:
        if not existed and path is not None:
            _remove_database_file(path)
        raise


def _remove_database_file(path: Path) -> None:
    for created in (path, path.with_name(path.name + ".wal")):
        created.unlink(missing_ok=True)


# Destinations whose best file format was measured (docs/benchmark.md): Postgres loads csv with
# COPY; its parquet needs the ADBC driver, without which dlt falls back to INSERT statements.
_MEASURED_FILE_FORMATS: dict[str, TLoaderFileFormat] = {"postgres": "csv"}


def preferred_file_format(pipeline: dlt.Pipeline) -> TLoaderFileFormat | None:
    """The measured format for Postgres (csv); elsewhere parquet where the destination takes it
    (DuckDB, Snowflake, BigQuery, ...), else dlt's default.

    On DuckDB, parquet loads several times faster and with far less memory than dlt's default INSERT
    statements, whose parsing inside DuckDB is what costs the memory.
    """
    name = pipeline.destination.destination_name
    if name in _MEASURED_FILE_FORMATS:
        return _MEASURED_FILE_FORMATS[name]
    capabilities = pipeline.destination.capabilities()
    return "parquet" if "parquet" in capabilities.supported_loader_file_formats else None


def run_load(source: DltSource, working_dir: Path | None = None, progress: Any = None) -> LoadInfo:
    """`pipeline.run(source)` in a `loading_pipeline`, with the preferred file format, as the Dagster
    asset runs it (through dagster-dlt): for loads outside Dagster, such as the tests and the
    benchmark. Build a `make_pipeline()` afterwards to look at what it loaded."""
    with loading_pipeline(working_dir, progress) as pipeline:
        file_format = preferred_file_format(pipeline)
        if file_format is None:
            load_info = pipeline.run(source)
        else:
            load_info = pipeline.run(source, loader_file_format=file_format)
        load_info.raise_on_failed_jobs()
    return load_info


_NORMALIZE_WORKERS_VAR = "NORMALIZE__WORKERS"


@contextmanager
def in_process_normalize() -> Iterator[None]:
    """Within the block, dlt normalizes in this process, whatever `[normalize] workers` says.

    Worker processes (`[normalize] workers` raised for a large first sync) pay off on large loads
    only: each is a fresh interpreter, and under Dagster starting one costs more than a small load's
    normalize. A load of a few given runs, such
    as the run-status sensor's, has a few thousand rows to normalize and is faster without them. dlt resolves the
    setting when its normalize step starts, so the block must span the whole `pipeline.run`.

    It does so through dlt's own environment variable, which is process-wide: fine for a Dagster
    step, which has its process to itself, but not for loads run concurrently on threads.
    """
    previous = os.environ.get(_NORMALIZE_WORKERS_VAR)
    os.environ[_NORMALIZE_WORKERS_VAR] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_NORMALIZE_WORKERS_VAR, None)
        else:
            os.environ[_NORMALIZE_WORKERS_VAR] = previous
