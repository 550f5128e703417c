"""The Dagster UI, read in a real browser: what a person sees with the demo's data.

The demo's simulated account (`demo.simulated_account`: node assets of every environment with
Development orchestrated, Coalesce's tests as checks with "Not Null" failing, a Production freshness
rule) is loaded the way the demo loads it; then a failed Production run and a completed Development
run finish in Coalesce; one tick of the run-status sensor, run by the daemon's own sensor code,
reports them into the instance, and one pass of the daemon's run queue runs the load it requested.
The webserver (`dagster-webserver` on an
ephemeral loopback port) serves that instance, and Debian's Chromium, driven by playwright through
`executable_path` (no browser download), reads the pages. Screenshots go to `.screenshots/`.

Without Chromium (`/usr/bin/chromium`, or `COALESCE_DAGSTER_CHROMIUM`) the test skips, saying so;
`.ci/run` installs it and sets `COALESCE_DAGSTER_REQUIRE_BROWSER=1`, which turns that skip into a
failure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.assets.definition.asset_spec import SYSTEM_METADATA_KEY_AUTO_CREATED_STUB_ASSET

from coalesce_dagster import demo
from coalesce_dagster.defs.health.column_docs import column_description
from coalesce_dagster.defs.health.table_checks import UNIQUE_CHECK
from coalesce_dagster.defs.health.views import RUN_HEALTH
from coalesce_dagster.defs.nodes.translator import RUN_CHECK_NAME
from coalesce_dagster.defs.sensors import SENSOR_NAME

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = PROJECT_ROOT / ".screenshots"
CHROMIUM = Path(os.environ.get("COALESCE_DAGSTER_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_VARIABLE = "COALESCE_DAGSTER_REQUIRE_BROWSER"
(CODE_LOCATION,) = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())["load_from"]
LOCATION_NAME = CODE_LOCATION["python_module"]["location_name"]
MODULE_NAME = CODE_LOCATION["python_module"]["module_name"]
# Bounded waits: the webserver loads the code location in a subprocess of its own.
WEBSERVER_SECONDS = 90
PAGE_MILLISECONDS = 30_000
VIEWPORT = {"width": 1600, "height": 1000}
GRAPH_VIEWPORT = {"width": 1600, "height": 900}  # the README's picture of the asset graph


def require_browser(chromium: Path = CHROMIUM) -> None:
    """Skip when Chromium or playwright is missing, or fail when CI requires the browser test."""
    problem = None
    if not chromium.exists():
        problem = f"no Chromium at {chromium} (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"The browser test is required ({REQUIRE_VARIABLE}=1) but cannot run: {problem}")
    pytest.skip(f"The browser test needs Chromium and playwright: {problem}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(what: str, condition: Callable[[], Any], timeout: float, process=None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the webserver exited ({process.returncode}) while waiting for {what}")
        value = condition()
        if value:
            return value
        time.sleep(0.25)  # polling another process's progress, not synchronisation by time
    raise AssertionError(f"waited {timeout:g} s for {what}")


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


LOCATION_STATUS = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _location_loaded(url: str) -> bool:
    """Whether the webserver has loaded the code location; a location that failed to load fails
    the test at once, with Dagster's error."""
    try:
        entries = _graphql(url, LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
    except OSError:
        return False  # not listening yet
    for entry in entries:
        if entry["name"] != LOCATION_NAME or entry["loadStatus"] != "LOADED":
            continue
        loaded = entry["locationOrLoadError"]
        if loaded["__typename"] == "PythonError":
            raise AssertionError(f"the webserver could not load the code location: {loaded['message']}")
        return loaded["__typename"] == "RepositoryLocation"
    return False


@contextmanager
def webserver(home: Path, log: Path) -> Iterator[Callable[[], str]]:
    """Start `dagster-webserver` for the code location of workspace.yaml on a fresh loopback port;
    yields a call that waits until the location is loaded and returns the URL. Stopped (with the
    code server it started) when the block ends."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).with_name("dagster-webserver")), "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env={**os.environ, "DAGSTER_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stopping it stops its code server too
        )
        try:

            def loaded() -> str:
                what = "the webserver to load the code location"
                try:
                    _wait_for(what, lambda: _location_loaded(url), WEBSERVER_SECONDS, process)
                except AssertionError as error:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    raise AssertionError(f"{error}; the webserver's log ends:\n{tail}") from None
                return url

            yield loaded
        finally:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(timeout=10)


def _instance_home(path: Path) -> Path:
    """A Dagster home with the committed dagster.yaml, whose runs execute in the process that
    launches them (here: the sensor's load, as soon as the daemon's tick submits it)."""
    settings = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    settings["run_launcher"] = {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    }
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return path


def _finish_coalesce_runs(simulator) -> dict[str, int]:
    """A failed Production run and a completed Development run, finished just now."""
    state = simulator.state
    state.use_real_clock()
    by_name = {env["name"]: env_id for env_id, env in state.environments.items()}
    finished = {}
    for name, status in (("Production", "failed"), ("Development", "completed")):
        run_id = state.start_run(by_name[name])
        state.set_run_status(run_id, "running")
        state.set_run_status(run_id, status)
        finished[name] = run_id
    return finished


def _tick_sensor_as_the_daemon(instance: dg.DagsterInstance, folder: Path) -> None:
    """One iteration of the daemon's sensor loop against the code location's definitions, which
    reports the sensor's asset events (node materializations, check results) into the instance and
    queues the load it requests; then one pass of the daemon's run queue, which launches (here:
    executes) that load, with the checks it evaluates on the tables."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
    from dagster._daemon.sensor import execute_sensor_iteration

    # The code location's definitions built afresh, as a process of the daemon would import them:
    # the module itself may have been imported by an earlier test of this process, before this
    # test's snapshot and settings existed.
    code_location = folder / "browser_test_code_location.py"
    code_location.write_text(f"from {MODULE_NAME} import build_definitions\n\ndefs = build_definitions()\n")
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            working_directory=str(PROJECT_ROOT),
            python_file=str(code_location),
        ),
        location_name=LOCATION_NAME,
    )
    with create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget(origin), instance) as workspace:
        location = workspace.create_request_context().get_code_location(LOCATION_NAME)
        (repository,) = location.get_repositories().values()
        instance.start_sensor(repository.get_sensor(SENSOR_NAME))  # the UI's toggle
        list(execute_sensor_iteration(workspace, logging.getLogger(__name__), None, None))
        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))


@dataclass
class Expected:
    """What the pages must show, worked out from the definitions, the simulator and the instance."""

    asset_names: list[str]  # every asset key as the catalog writes it
    failed_node: dg.AssetKey  # a Production node Coalesce's failed run did not build
    failed_node_error: str  # Coalesce's error for it (first line)
    failed_run_id: int
    tested_node: dg.AssetKey  # a Development node whose "Not Null" test failed
    failing_test_check: str
    health_figures: dict[str, str]  # run_health_daily's headline figures, as the UI prints them


def _expected(simulator, finished: dict[str, int], instance: dg.DagsterInstance) -> Expected:
    from coalesce_dagster.coalesce.types import FAILED_NODE_STATES
    from coalesce_dagster.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    by_node = {
        (spec.metadata["coalesce/environment_id"], spec.metadata["coalesce/node_id"]): key
        for key in graph.get_all_asset_keys()
        if "coalesce/node_id" in (spec := graph.get(key)).metadata
    }
    environments = {env["name"]: env_id for env_id, env in simulator.state.environments.items()}
    production, development = environments["Production"], environments["Development"]
    failed_results = [
        r for r in simulator.state.results[finished["Production"]] if r["runState"] in FAILED_NODE_STATES
    ]
    assert failed_results, "the simulator's failed Production run failed no node"
    failed_result = failed_results[0]
    error = failed_result["queryResults"][-1]["error"]["errorString"].splitlines()[0]
    built_tested = [
        by_node[development, r["nodeID"]]
        for r in simulator.state.results[finished["Development"]]
        if r["runState"] == "complete"
        and simulator.state.nodes[development][r["nodeID"]]["metadata"]["appliedNodeTests"]
    ]
    assert built_tested, "the simulator's Development run built no node with Coalesce tests"
    tested = built_tested[0]
    assert instance.get_latest_materialization_event(tested) is not None, (
        f"the sensor's tick reported no materialization of {tested.to_user_string()}, which Coalesce built"
    )
    (failing_check,) = [
        k.name for k in graph.asset_check_keys if k.asset_key == tested and k.name.endswith("_not_null")
    ]
    health = instance.get_latest_materialization_event(RUN_HEALTH)
    assert health is not None and health.asset_materialization is not None
    figures = {
        name: _as_printed(value.value)
        for name, value in health.asset_materialization.metadata.items()
        if name.startswith(("success_rate_30d", "runs_30d", "failures_30d"))
    }
    return Expected(
        # What the code location defines; the warehouse tables source nodes read are only their
        # dependencies, which the lineage shows and the catalog does not.
        asset_names=sorted(
            " / ".join(key.path)
            for key in graph.get_all_asset_keys()
            if not graph.get(key).metadata.get(SYSTEM_METADATA_KEY_AUTO_CREATED_STUB_ASSET)
        ),
        failed_node=by_node[production, failed_result["nodeID"]],
        failed_node_error=error,
        failed_run_id=finished["Production"],
        tested_node=tested,
        failing_test_check=failing_check,
        health_figures=figures,
    )


def _as_printed(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.fixture
def _defs_state_storage_restored() -> Iterator[None]:
    """Closing a `with DagsterInstance.get()` block (the demo's load does) leaves that instance's defs
    state storage in Dagster's context variable (1.13: `__exit__` does not unwind it), and a later
    definitions load in this process would meet a closed instance: put the previous one back."""
    from dagster._core.storage.defs_state.base import DefsStateStorage, set_defs_state_storage

    with set_defs_state_storage(DefsStateStorage.get()):
        yield


@pytest.mark.long(seconds=50)
@pytest.mark.usefixtures("_defs_state_storage_restored")
def test_the_ui_shows_coalesce_health_in_a_real_browser(simulator, tmp_path, monkeypatch):
    require_browser()
    home = _instance_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in demo.simulated_account(simulator, tmp_path / "coalesce_nodes.json").items():
        monkeypatch.setenv(name, value)

    assert demo.materialize_all() is None  # the demo's load: metadata tables and health views
    finished = _finish_coalesce_runs(simulator)
    # The webserver loads the code location (with the node assets of the snapshot the load wrote)
    # while the daemon's tick runs here.
    with webserver(home, tmp_path / "webserver.log") as started, dg.DagsterInstance.get() as instance:
        _tick_sensor_as_the_daemon(instance, tmp_path)
        sensor_runs = [r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == SENSOR_NAME]
        assert [run.status for run in sensor_runs] == [dg.DagsterRunStatus.SUCCESS]
        expected = _expected(simulator, finished, instance)
        url = started()
        SCREENSHOTS.mkdir(exist_ok=True)
        with browser_page() as page:
            _the_catalog_lists_every_asset(page, url, expected)
            _the_asset_graph_shows_the_groups_and_a_node_lineage(page, url, expected)
            _a_failed_node_shows_coalesce_error(page, url, expected)
            _a_failed_coalesce_test_shows(page, url, expected)
            _a_metadata_table_shows_its_checks_and_columns(page, url)
            _a_health_view_shows_its_figures(page, url, expected)


@contextmanager
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(PAGE_MILLISECONDS)
            # As if the first visit's invitation to Dagster's community (a dialog over every page,
            # intercepting clicks) had been dismissed in this browser.
            page.add_init_script("window.localStorage.setItem('communityNux', '1')")
            yield page
        finally:
            browser.close()


def _open(page: Any, url: str) -> None:
    page.goto(url)


def _shows(page: Any, text: str, what: str, exact: bool = False) -> Any:
    """The first element showing `text`, once visible (bounded), or a failure naming `what`."""
    return _visible(page, page.get_by_text(text, exact=exact).first, what)


def _visible(page: Any, locator: Any, what: str) -> Any:
    try:
        locator.wait_for(state="visible", timeout=PAGE_MILLISECONDS)
    except Exception as error:
        shot = SCREENSHOTS / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        raise AssertionError(
            f"waited {PAGE_MILLISECONDS / 1000:g} s for {what}: nothing visible matches {locator} "
            f"on {page.url} (screenshot {shot})"
        ) from error
    return locator


def _gone(page: Any, locator: Any, what: str) -> None:
    """Wait (bounded) until nothing matches `locator`, or fail naming `what`."""
    try:
        locator.wait_for(state="detached", timeout=PAGE_MILLISECONDS)
    except Exception as error:
        raise AssertionError(f"waited {PAGE_MILLISECONDS / 1000:g} s for {what} on {page.url}") from error


def _materialize_button(page: Any) -> Any:
    return page.get_by_role("button", name="Materialize").first


def _screenshot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def _asset_url(url: str, key: dg.AssetKey, view: str | None = None, check: str | None = None) -> str:
    """The UI's own address of an asset's page (a view of it, a check's details)."""
    query = urllib.parse.urlencode({k: v for k, v in (("view", view), ("checkDetail", check)) if v})
    return f"{url}/assets/{'/'.join(key.path)}" + (f"?{query}" if query else "")


def _the_catalog_lists_every_asset(page: Any, url: str, expected: Expected) -> None:
    # Tall enough that the catalog's virtualised table renders every row at once.
    page.set_viewport_size({**VIEWPORT, "height": 60 * len(expected.asset_names) + 1000})
    try:
        _open(page, f"{url}/assets")
        _shows(page, expected.asset_names[-1], "the catalog's last asset", exact=True)
        listed = set(page.inner_text("body").splitlines())
        _screenshot(page, "catalog")
    finally:
        page.set_viewport_size(VIEWPORT)
    missing = [name for name in expected.asset_names if name not in listed]
    assert not missing, f"the catalog does not list {len(missing)} assets: {missing[:10]}"


def _the_asset_graph_shows_the_groups_and_a_node_lineage(page: Any, url: str, expected: Expected) -> None:
    """The global asset graph shows the load's group, the health views and a group per node
    environment; the Development group's graph shows its nodes' lineage. That screenshot is the
    README's picture (`.screenshots/asset_graph.png`, copied to docs/images/asset-graph.png)."""
    page.set_viewport_size(GRAPH_VIEWPORT)
    try:
        _open(page, f"{url}/asset-groups")
        for group in ("coalesce_health", "coalesce_development", "coalesce_production", "coalesce_qa"):
            _shows(page, group, f"the group {group} in the global asset graph", exact=True)
        _screenshot(page, "asset_groups")
        _open(page, f"{url}/locations/__repository__@{LOCATION_NAME}/asset-groups/coalesce_development")
        node = expected.tested_node.path[-1]
        _shows(page, node, f"the Development node {node} in its group's graph", exact=True)
        _gone(page, page.get_by_text("Loading...").first, "the graph's nodes to finish loading their events")
        _screenshot(page, "asset_graph")
    finally:
        page.set_viewport_size(VIEWPORT)


def _a_failed_node_shows_coalesce_error(page: Any, url: str, expected: Expected) -> None:
    _open(page, _asset_url(url, expected.failed_node, "checks", RUN_CHECK_NAME))
    _shows(page, "This is a non-blocking asset check.", "the coalesce_run check's details")
    _shows(page, "Failed", "the failed coalesce_run check", exact=True)
    _shows(page, expected.failed_node_error[:60], "Coalesce's error text on the failed check")
    _shows(page, f"Coalesce run {expected.failed_run_id}", "the failed run's number")
    # Production is observed only: Dagster offers no Materialize for its nodes.
    page.wait_for_load_state("networkidle")
    assert _materialize_button(page).is_disabled(), "an observed Production node offers Materialize"
    _screenshot(page, "failed_node_check")


def _a_failed_coalesce_test_shows(page: Any, url: str, expected: Expected) -> None:
    _open(page, _asset_url(url, expected.tested_node, "checks", expected.failing_test_check))
    _shows(page, "Failed", "the failed Coalesce test check", exact=True)
    _shows(page, "Test 'Not Null' failed", "Coalesce's test failure on the check")
    # Development is orchestrated: its nodes can be built from Dagster.
    from playwright.sync_api import expect

    try:
        _materialize_button(page).wait_for(state="visible", timeout=PAGE_MILLISECONDS)
        expect(_materialize_button(page)).to_be_enabled(timeout=PAGE_MILLISECONDS)
    except AssertionError as error:
        raise AssertionError(f"Materialize never became enabled on a Development node: {error}") from None
    _screenshot(page, "failed_test_check")


def _a_metadata_table_shows_its_checks_and_columns(page: Any, url: str) -> None:
    run_results = dg.AssetKey(["coalesce", "run_results"])
    _open(page, _asset_url(url, run_results))
    _shows(page, "Columns", "the Columns section", exact=True)
    for column in ("run_id", "node_id", "run_state"):
        description = column_description("run_results", column)
        assert description
        # As the UI renders its Markdown: `code` loses its backticks.
        _shows(page, description.replace("`", ""), f"the description of run_results.{column}")
    _screenshot(page, "run_results_overview")
    for check in (UNIQUE_CHECK, "no_orphans_in_runs"):
        _open(page, _asset_url(url, run_results, "checks", check))
        _shows(page, "This is a blocking asset check.", f"the details of run_results' check {check}")
        _shows(page, "Passed", f"run_results' check {check} passed", exact=True)
    _screenshot(page, "run_results_checks")


def _a_health_view_shows_its_figures(page: Any, url: str, expected: Expected) -> None:
    _open(page, _asset_url(url, RUN_HEALTH))
    assert expected.health_figures
    for name, value in expected.health_figures.items():
        _shows(page, name, f"the figure {name}", exact=True)
        row = page.get_by_role("row").filter(has=page.get_by_text(name, exact=True)).first
        assert value in row.inner_text(), f"{name}: {row.inner_text()!r} does not show {value}"
    _shows(page, "worst_jobs_30d", "the table of the worst saved jobs", exact=True)
    _screenshot(page, "run_health_daily")
    # The Metadata section's Plots tab: each numeric figure across the view's materializations.
    _shows(page, "Plots", "the Plots tab of the Metadata section", exact=True).click()
    _shows(page, "success_rate_30d/Production", "the plot of Production's success rate", exact=True)
    _visible(page, page.locator("canvas").first, "a drawn plot")
    _screenshot(page, "run_health_daily_plots")


def test_without_chromium_the_browser_test_skips_saying_why(monkeypatch, tmp_path):
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs Chromium and playwright: no Chromium at"):
        require_browser(tmp_path / "chromium")


def test_without_chromium_the_browser_test_fails_when_ci_requires_it(monkeypatch, tmp_path):
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="browser test is required"):
        require_browser(tmp_path / "chromium")
