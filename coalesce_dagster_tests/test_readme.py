"""Every shell and Python snippet in the README runs as written, in a copy of the project, as a
newcomer with nothing configured would run it.

The snippets are read from README.md itself. Each fenced `bash` or `python` block follows a marker:

    <!-- readme-test: run -->          it must exit 0 (run in README order, in one copy)
    <!-- readme-test: serve URL -->    it must start answering URL, and stop on Ctrl-C
    <!-- readme-test: skip REASON -->  not run, for the reason given

A block without a marker fails the suite, so a new snippet cannot slip in untested. TOML blocks
must parse. And the README's guarantees name the tests that prove them: every name must be a test
that exists, so renaming or deleting one cannot leave a guarantee pointing at nothing, and none may
be a test of the simulator alone. The `run` snippets build on each other (the query needs the demo's data), so one test
runs them all in README order in one copy; each `serve` snippet gets a copy of its own.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import duckdb
import pytest

from coalesce_dagster_tests.benchmarks.benchmark_checks import assert_small_benchmark_report
from coalesce_dagster_tests.project_copy import REPO_ROOT, make_project_copy, newcomer_environment

README = REPO_ROOT / "README.md"
TESTS_ROOT = Path(__file__).resolve().parent
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- readme-test: (run|serve|skip)\s*(.*?)\s*-->$")
RUN_TIMEOUT_SECONDS = 600
SERVE_TIMEOUT_SECONDS = 240


@dataclass(frozen=True)
class Snippet:
    line: int  # of the opening fence
    language: str
    code: str
    kind: str | None  # run | serve | skip, or None when unmarked
    argument: str  # serve: the URL; skip: the reason

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def readme_snippets() -> list[Snippet]:
    lines = README.read_text().splitlines()
    snippets, index = [], 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = lines[index - 1].strip() if index else ""
        marker = _MARKER.match(previous)
        snippets.append(
            Snippet(
                line=index + 1,
                language=fence.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                kind=marker.group(1) if marker else None,
                argument=marker.group(2) if marker else "",
            )
        )
        index = end + 1
    return snippets


SNIPPETS = readme_snippets()
EXECUTABLE = [s for s in SNIPPETS if s.language in ("bash", "sh", "python")]
RUN = [s for s in EXECUTABLE if s.kind == "run"]
SERVE = [s for s in EXECUTABLE if s.kind == "serve"]


def test_every_command_snippet_says_how_it_is_tested():
    unmarked = [s.id for s in EXECUTABLE if s.kind is None]
    assert not unmarked, f"README snippets without a <!-- readme-test: ... --> marker: {unmarked}"
    assert all(s.argument for s in EXECUTABLE if s.kind in ("serve", "skip")), (
        "serve needs a URL, skip a reason"
    )
    assert len(RUN) >= 4 and len(SERVE) >= 2


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.language == "toml"], ids=lambda s: s.id)
def test_toml_snippets_parse(snippet):
    tomllib.loads(snippet.code)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project_copy(tmp_path / "coalesce-dagster")


def assert_demo_loaded(project: Path, output: str) -> None:
    """The demo loaded every table, showed its progress, and left one clean file."""
    assert "Loaded dataset 'coalesce_data' (duckdb)" in output
    for step in ("Extract coalesce_source", "Normalize coalesce_source", "Load coalesce_source"):
        assert step in output, step  # dlt's steps, with per-table counts and Coalesce requests
    assert "Coalesce requests: " in output and "environment_nodes: " in output
    with duckdb.connect(str(project / "coalesce_demo.duckdb"), read_only=True) as con:
        assert con.sql("SELECT count(*) FROM coalesce_data.runs").fetchall()[0][0] > 0
        staged = con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'coalesce_data_staging'"
        ).fetchall()
        # dlt empties its staging dataset after each load: no second copy of every table (its own
        # `_dlt_version` bookkeeping aside).
        data_tables = [table for (table,) in staged if not table.startswith("_dlt")]
        assert "environment_nodes" in data_tables
        for table in data_tables:
            assert con.sql(f'SELECT count(*) FROM coalesce_data_staging."{table}"').fetchall() == [(0,)], (
                table
            )


def _command(snippet: Snippet) -> list[str]:
    if snippet.language == "python":
        return [".venv/bin/python", "-c", snippet.code]
    return ["bash", "-euo", "pipefail", "-c", snippet.code]


@pytest.mark.long(seconds=45)
def test_run_snippets_in_readme_order(project):
    for snippet in RUN:
        result = subprocess.run(
            _command(snippet),
            cwd=project,
            env=newcomer_environment(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{snippet.id} exited {result.returncode}:\n{output[-4000:]}"
        if snippet.code.startswith("./scripts/demo.sh --check"):
            assert "13 PASS, 0 WARN, 0 FAIL" in output and "A full load would succeed." in output
        elif snippet.code.startswith("./scripts/demo.sh"):
            assert_demo_loaded(project, output)
        if "-m benchmarks.run" in snippet.code:
            (report,) = sorted((project / "benchmarks" / "results").glob("small-*.json"))[-1:]
            assert_small_benchmark_report(report)

    # Nothing stray left in the project: no temporary Dagster homes, half-loaded demo files or
    # DuckDB write-ahead logs.
    stray = [
        path.name
        for pattern in (".tmp_dagster_home_*", "*.loading.duckdb", "*.duckdb.wal")
        for path in project.glob(pattern)
    ]
    assert not stray
    assert (project / "coalesce_demo.duckdb").exists()


@pytest.mark.long
@pytest.mark.parametrize("snippet", SERVE, ids=lambda s: s.id)
def test_serve_snippet(snippet, project):
    port = int(re.match(r"https?://[^:/]+:(\d+)", snippet.argument).group(1))
    assert _port_is_free(port), f"port {port} is taken: {snippet.id} could not start as written"
    server = subprocess.Popen(
        _command(snippet),
        cwd=project,
        env=newcomer_environment(),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        answered = _wait_until_answering(snippet.argument, server, SERVE_TIMEOUT_SECONDS)
    finally:
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        try:
            output, _ = server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            output, _ = server.communicate()
            pytest.fail(f"{snippet.id} did not stop on Ctrl-C:\n{output[-4000:]}")
    assert answered, f"{snippet.id} never answered {snippet.argument}:\n{output[-4000:]}"


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_until_answering(url: str, server: subprocess.Popen, timeout: float) -> bool:
    """Whether `url` answered HTTP (any status) before `server` exited or the time ran out. The
    server announces nothing a test could wait on, so this asks it, a few times a second."""
    deadline = monotonic() + timeout
    while monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # it answered (e.g. 401 from the simulator without a token)
        except OSError:
            try:
                server.wait(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
    return False


# `defs/test_crash.py::test_x`, `coalesce/test_config.py`, or `::test_y` (same file as the last one).
REFERENCE = re.compile(r"`((?:\w+/)*test_\w+\.py)?(?:::(test_\w+))?`")


def named_tests(text: str) -> list[tuple[str, str | None]]:
    references, current = [], None
    for match in REFERENCE.finditer(text):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = (path or "").removeprefix("coalesce_dagster_tests/") or current
        assert current is not None, f"{match.group(0)} names no file"
        references.append((current, name))
    return references


def test_every_test_the_readme_names_exists():
    references = named_tests(README.read_text())
    assert len(references) > 40  # the failure table, the sensor's guarantees and the paragraphs after them
    missing = []
    for path, name in references:
        source = TESTS_ROOT / path
        if not source.is_file() or (
            name and not re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE)
        ):
            missing.append(f"{path}::{name}" if name else path)
    assert not missing, f"README names tests that do not exist: {missing}"


def test_no_guarantee_rests_on_a_simulator_test():
    """The simulator's own tests pin its fidelity to the API; what the project promises is proven
    by loading through the product."""
    start = README.read_text().index("| sensor guarantee |")
    on_the_simulator = [
        path for path, _ in named_tests(README.read_text()[start:]) if "simulator" in path.split("/")[0]
    ]
    assert not on_the_simulator
