"""Every shell and Python snippet in the README and in every guide under docs/ runs as written, in
a copy of the project, as a newcomer with nothing configured would run it.

The snippets are read from README.md and docs/*.md themselves. Each fenced `bash` or `python` block
follows a marker:

    <!-- readme-test: run -->          it must exit 0 (run in README order, in one copy)
    <!-- readme-test: serve URL -->    it must start answering URL, and stop on Ctrl-C
    <!-- readme-test: skip REASON -->  not run, for the reason given

A block without a marker fails the suite, so a new snippet cannot slip in untested. TOML blocks
must parse. And the documents name the tests that prove their guarantees: every name must be a test
that exists, so renaming or deleting one cannot leave a guarantee pointing at nothing, and none may
be a test of the simulator alone. The `run` snippets build on each other (a guide's query needs the
README's demo data), so one test runs them all in one copy, the README's first and then each guide's
in the order of their file names; each `serve` snippet gets a copy of its own.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from time import monotonic

import duckdb
import pytest
from filelock import FileLock, Timeout

from coalesce_dagster_tests.benchmarks.benchmark_checks import assert_small_benchmark_report
from coalesce_dagster_tests.project_copy import REPO_ROOT, make_project_copy, newcomer_environment

README = REPO_ROOT / "README.md"
# The front page first: its two commands set up what the guides' snippets build on.
DOCUMENTS = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
TESTS_ROOT = Path(__file__).resolve().parent
_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!-- readme-test: (run|serve|skip)\s*(.*?)\s*-->$")
RUN_TIMEOUT_SECONDS = 300  # one snippet
RUN_ALL_TIMEOUT_SECONDS = 900  # all of them, in order
SERVE_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 60
# A first Ctrl-C stops a server in seconds; past this, a second one is pressed (`_stop_with_ctrl_c`).
FIRST_CTRL_C_SECONDS = 20
# The serve snippets listen on fixed ports, as written (3000, 8765). A lock per port, machine-wide
# (another suite may run beside this one), lets one snippet at a time have it; the others wait this
# long at most, which covers the other snippets of that port being served and stopped.
PORT_LOCK_TIMEOUT_SECONDS = 900
# One place for every suite on the machine, whatever TMPDIR each has (scripts/test.sh sets its own).
PORT_LOCK_DIR = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())


@dataclass(frozen=True)
class Snippet:
    document: str  # README.md, docs/configuration.md, ...
    line: int  # of the opening fence
    language: str
    code: str
    kind: str | None  # run | serve | skip, or None when unmarked
    argument: str  # serve: the URL; skip: the reason

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"


def document_snippets(document: Path) -> list[Snippet]:
    lines = document.read_text().splitlines()
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
                document=str(document.relative_to(REPO_ROOT)),
                line=index + 1,
                language=fence.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                kind=marker.group(1) if marker else None,
                argument=marker.group(2) if marker else "",
            )
        )
        index = end + 1
    return snippets


SNIPPETS = [snippet for document in DOCUMENTS for snippet in document_snippets(document)]
EXECUTABLE = [s for s in SNIPPETS if s.language in ("bash", "sh", "python")]
RUN = [s for s in EXECUTABLE if s.kind == "run"]
SERVE = [s for s in EXECUTABLE if s.kind == "serve"]


def test_every_command_snippet_says_how_it_is_tested():
    unmarked = [s.id for s in EXECUTABLE if s.kind is None]
    assert not unmarked, f"snippets without a <!-- readme-test: ... --> marker: {unmarked}"
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
@pytest.mark.timeout(RUN_ALL_TIMEOUT_SECONDS)
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


def _port(snippet: Snippet) -> int:
    return int(re.match(r"https?://[^:/]+:(\d+)", snippet.argument).group(1))


@pytest.mark.long
@pytest.mark.timeout(
    PORT_LOCK_TIMEOUT_SECONDS + SERVE_TIMEOUT_SECONDS + FIRST_CTRL_C_SECONDS + 2 * STOP_TIMEOUT_SECONDS
)
@pytest.mark.parametrize(
    "snippet",
    # Snippets of one port go to one xdist worker (`--dist loadgroup`, scripts/test.sh), one after
    # the other, instead of holding several workers waiting on the port's lock.
    [pytest.param(s, id=s.id, marks=pytest.mark.xdist_group(f"readme-port-{_port(s)}")) for s in SERVE],
)
def test_serve_snippet(snippet, project):
    port = _port(snippet)
    lock = FileLock(PORT_LOCK_DIR / f"coalesce-dagster-readme-port-{port}.lock")
    try:
        lock.acquire(timeout=PORT_LOCK_TIMEOUT_SECONDS)
    except Timeout:
        pytest.fail(f"{snippet.id}: port {port}'s lock was not free within {PORT_LOCK_TIMEOUT_SECONDS} s")
    try:
        _serve_and_stop(snippet, project, port)
    finally:
        lock.release()


def _serve_and_stop(snippet: Snippet, project: Path, port: int) -> None:
    """Serve the snippet until it answers, stop it with Ctrl-C, and check that it was the one that
    answered: the port was free before it started and is free again once it stopped."""
    assert _port_is_free(port), f"port {port} is taken: {snippet.id} could not start as written"
    # Output goes to a file, not a pipe: nobody reads while it serves, and a full pipe would stall
    # every process of the snippet that logs (a terminal never does that to them).
    log_path = project / f".serve-{port}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [*AS_A_TERMINAL_STARTS_IT, *_command(snippet)],
            cwd=project,
            env=newcomer_environment(),
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    locations: dict[str, str] | None = None
    try:
        answered = _wait_until_answering(snippet.argument, server, SERVE_TIMEOUT_SECONDS)
        if answered and snippet.argument.endswith("/server_info"):
            # Dagster's webserver: Ctrl-C once the UI shows the code location, as a person would
            # (and the test checks the code location loaded, below).
            locations = _wait_until_code_locations_loaded(snippet.argument, server, SERVE_TIMEOUT_SECONDS)
    finally:
        _stop_with_ctrl_c(snippet, server, log_path)
    output = log_path.read_text(errors="replace")
    assert answered, f"{snippet.id} never answered {snippet.argument}:\n{output[-4000:]}"
    if snippet.argument.endswith("/server_info"):
        assert locations == {"coalesce": "LOADED"}, (
            f"{snippet.id}: code locations {locations}\n{output[-4000:]}"
        )
    # Whatever answered stopped with the snippet's processes: it was theirs, not another server's.
    assert _port_is_free(port), f"port {port} still answers after {snippet.id} stopped: it was not theirs"


# A terminal starts a command with Ctrl-C's signal at its default and no signal blocked. A process
# inherits both from whatever started it, across exec: in a suite started as a background job of a
# non-interactive shell (`./scripts/test.sh &`: POSIX starts such jobs with SIGINT ignored), every
# test worker's handler is SIG_IGN, and `dagster dev` never sees a Ctrl-C (Python installs no
# KeyboardInterrupt handler for an ignored SIGINT). So the snippet starts as from a terminal,
# whatever the worker's state (named in the failure below if it still does not stop).
AS_A_TERMINAL_STARTS_IT = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])",
]


def _signal_state() -> str:
    blocked = sorted(signal.Signals(number).name for number in signal.pthread_sigmask(signal.SIG_BLOCK, []))
    return f"the test worker's SIGINT handler {signal.getsignal(signal.SIGINT)!r}, blocked {blocked}"


def _stop_with_ctrl_c(snippet: Snippet, server: subprocess.Popen, log_path: Path) -> None:
    """Press Ctrl-C, and once more if the first did not stop it, as a person would. A server that
    stops on neither fails the test, naming the test worker's signal state: `dagster dev` started
    with SIGINT ignored never stops on Ctrl-C (see `AS_A_TERMINAL_STARTS_IT`)."""
    waits = (FIRST_CTRL_C_SECONDS, STOP_TIMEOUT_SECONDS)
    for wait in waits:
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
    os.killpg(server.pid, signal.SIGKILL)
    server.wait()
    output = log_path.read_text(errors="replace")
    pytest.fail(
        f"{snippet.id} did not stop on Ctrl-C pressed {len(waits)} times ({_signal_state()}):\n{output[-4000:]}"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_until_answering(url: str, server: subprocess.Popen, timeout: float) -> bool:
    """Whether `url` answered HTTP below 500 before `server` exited or the time ran out (a 401 from
    the simulator without a token counts: it is serving). The server announces nothing a test could
    wait on, so this asks it, a few times a second."""
    deadline = monotonic() + timeout
    while monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return True
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return True
        except OSError:
            pass  # not listening yet
        try:
            server.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
    return False


WORKSPACE_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"


def _wait_until_code_locations_loaded(server_info_url: str, server: subprocess.Popen, timeout: float):
    """The webserver's code locations and their load status once none is loading any more (or
    as last seen when the time ran out or the server exited), asked of its GraphQL API."""
    url = server_info_url.removesuffix("/server_info") + "/graphql"
    body = json.dumps({"query": WORKSPACE_QUERY}).encode()
    deadline, seen = monotonic() + timeout, None
    while monotonic() < deadline and server.poll() is None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
            seen = {entry["name"]: entry["loadStatus"] for entry in entries}
            if seen and "LOADING" not in seen.values():
                return seen
        except (OSError, KeyError, TypeError, ValueError):
            pass  # not answering GraphQL yet
        try:
            server.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
    return seen


# `defs/test_crash.py::test_x`, `configuration/test_connection.py`, or `::test_y` (same file as the last one).
REFERENCE = re.compile(r"`((?:\w+/)*test_\w+\.py)?(?:::(test_\w+))?`")
# A path under the simulator's own tests (named from the repository root).
SIMULATOR_TESTS = "coalesce_simulator_tests/"


def named_tests(text: str) -> list[tuple[str, str | None]]:
    """(path, test or None) for every test `text` names. Paths are under coalesce_dagster_tests/
    (the prefix may be written or left out), or under coalesce_simulator_tests/ when written so."""
    references, current = [], None
    for match in REFERENCE.finditer(text):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = (path or "").removeprefix("coalesce_dagster_tests/") or current
        assert current is not None, f"{match.group(0)} names no file"
        references.append((current, name))
    return references


def missing_tests(references: list[tuple[str, str | None]]) -> list[str]:
    missing = []
    for path, name in references:
        source = REPO_ROOT / path if path.startswith(SIMULATOR_TESTS) else TESTS_ROOT / path
        if not source.is_file() or (
            name and not re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE)
        ):
            missing.append(f"{path}::{name}" if name else path)
    return missing


def simulator_tests_named(text: str) -> list[str]:
    return [path for path, _ in named_tests(text) if path.startswith(SIMULATOR_TESTS)]


def rows_naming_a_whole_file(text: str) -> list[str]:
    """Table rows that name a test file without a test in it: a file proves nothing in particular,
    and would only be checked for existence."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("|") and any(name is None for _, name in named_tests(line))
    ]


# The headers of the guarantee tables: docs/guarantees.md's failures, keeping-fresh.md's sensor, health.md's.
GUARANTEE_TABLES = (
    "| what happens | what the project does | proven by |",
    "| sensor guarantee |",
    "| health guarantee |",
)


def guarantees(text: str) -> str:
    """A document from its first guarantee table on (nothing when it has none): what the project
    promises."""
    starts = [text.index(header) for header in GUARANTEE_TABLES if header in text]
    return text[min(starts) :] if starts else ""


def test_every_test_the_documents_name_exists():
    references = [reference for document in DOCUMENTS for reference in named_tests(document.read_text())]
    assert len(references) > 40  # the failure table, the sensor's guarantees and the paragraphs after them
    missing = missing_tests(references)
    assert not missing, f"the documents name tests that do not exist: {missing}"


def test_no_guarantee_rests_on_a_simulator_test_or_a_whole_file():
    """The simulator's own tests pin its fidelity to the API; what the project promises is proven
    by loading through the product, by tests the guarantee tables name one by one."""
    texts = {document.name: document.read_text() for document in DOCUMENTS}
    for header in GUARANTEE_TABLES:
        assert any(header in text for text in texts.values()), f"the guarantee table {header!r} is gone"
    for name, text in texts.items():
        assert not simulator_tests_named(guarantees(text)), name
        assert not rows_naming_a_whole_file(text), name


def test_the_reference_checks_catch_what_they_exist_for():
    """The checks above, on rows written to break them: each must object."""
    simulator_row = "| x | y | `coalesce_simulator_tests/test_api.py::test_paging` |"
    file_row = "| x | y | `defs/test_jobs.py`; `defs/test_crash.py::test_sigkill_during_extract` |"
    assert simulator_tests_named(simulator_row) == ["coalesce_simulator_tests/test_api.py"]
    assert rows_naming_a_whole_file(file_row) == [file_row]
    assert rows_naming_a_whole_file(simulator_row) == []
    assert missing_tests(named_tests("`defs/test_jobs.py::test_no_such_test`, `test_nowhere.py`")) == [
        "defs/test_jobs.py::test_no_such_test",
        "test_nowhere.py",
    ]
    assert missing_tests(named_tests(simulator_row)) == ["coalesce_simulator_tests/test_api.py::test_paging"]
    for (
        header
    ) in GUARANTEE_TABLES:  # a simulator test in either guarantee table is caught; prose before it is not
        document = (
            f"`coalesce_simulator_tests/test_x.py::test_y`\n\n{header}\n|---|---|---|\n{simulator_row}\n"
        )
        assert simulator_tests_named(guarantees(document)) == ["coalesce_simulator_tests/test_api.py"]


# [text](target) and ![alt](target), outside code: a relative target is a file of the repository,
# with an optional #anchor that must be one of that file's headings.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces
    to hyphens), fenced code left out."""
    anchors, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def broken_links(document: Path) -> list[str]:
    text = document.read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists() or (
            anchor and file.suffix == ".md" and anchor not in heading_anchors(file.read_text())
        ):
            broken.append(target)
    return broken


def test_every_link_between_the_documents_resolves():
    broken = {document.name: broken_links(document) for document in DOCUMENTS}
    assert not {name: links for name, links in broken.items() if links}, broken
    # Every guide is reachable from the front page.
    linked = set(LINK.findall(README.read_text()))
    unlinked = [d.name for d in DOCUMENTS[1:] if f"docs/{d.name}" not in linked]
    assert not unlinked, f"guides the README does not link: {unlinked}"


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "guide.md").write_text("# A guide\n\n## Some part\n")
    doc = tmp_path / "front.md"
    doc.write_text(
        "[ok](guide.md#some-part) [gone](nowhere.md) [bad anchor](guide.md#other) "
        "[web](https://example.com)\n```\n[in code](ignored.md)\n```\n"
    )
    assert broken_links(doc) == ["nowhere.md", "guide.md#other"]
