"""`coalesce-dagster check` against the simulator: every line PASS on the documented API, each
variant of the API notes and each real-account quirk named, and the load that follows succeeding
exactly where the check said a full load would (PASS or WARN) and failing where it said FAIL.

The check and the load read the same settings (the environment variables set here), against the
same simulator, over real HTTP, into a real DuckDB file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import pytest

from coalesce_dagster.coalesce.source import coalesce_source
from coalesce_dagster.pipeline import run_load
from coalesce_dagster.preflight.cli import main
from coalesce_dagster.preflight.node_test_results import NO_OUTCOMES, OUTCOMES_SEEN
from coalesce_dagster_tests.expectations import assert_matches_simulator
from coalesce_dagster_tests.helpers import DATASET, read_line
from coalesce_simulator import SimulatorConfig, real_account_quirks

CHECKS = (
    "connection",
    "settings",
    "environments",
    "environment",
    "nodes",
    "node details",
    "jobs",
    "runs",
    "run results",
    "run status",
    "projects",
    "users",
    "startRun",
)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # Small, so that the load after each check takes a second or two.
    return SimulatorConfig(
        environments=2, nodes_per_environment=6, runs=8, results_per_run=3, users=3, projects=2
    )


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warehouse credentials, as a user who builds nodes from Dagster configures them."""
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__USERNAME", "CHECKER")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__CREDENTIALS__PASSWORD", "check-password")


class Checked:
    def __init__(self, code: int, table: str, report: dict[str, Any]) -> None:
        self.code, self.table, self.report = code, table, report

    def line(self, check: str) -> str:
        """The table's line (with its wrapped continuation) for `check`."""
        lines = self.table.splitlines()
        for index, text in enumerate(lines):
            if text[6:].split("  ")[0].strip() == check:
                rest = []
                for more in lines[index + 1 :]:
                    if not more.startswith(" " * 6):
                        break
                    rest.append(more.strip())
                return " ".join([text, *rest])
        raise AssertionError(f"no line for {check!r} in:\n{self.table}")

    def verdicts(self) -> dict[str, str]:
        return {entry["check"]: entry["verdict"] for entry in self.report["checks"]}

    def variants(self, check: str) -> list[str]:
        return next(entry["variants"] for entry in self.report["checks"] if entry["check"] == check)


def check(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Checked:
    report = tmp_path / "report.json"
    code = main(["check", "--report", str(report)])
    return Checked(code, capsys.readouterr().out, json.loads(report.read_text()))


def load_succeeds(sim) -> bool:
    try:
        run_load(coalesce_source())
    except Exception:
        return False
    return True


def test_every_line_passes_against_the_documented_api_and_the_load_follows(
    simulator, credentials, capsys, tmp_path, warehouse
):
    checked = check(capsys, tmp_path)
    assert checked.code == 0, checked.table
    assert list(checked.verdicts()) == list(CHECKS)
    assert set(checked.verdicts().values()) == {"PASS"}, checked.table
    heads = [text[:4] for text in checked.table.splitlines() if text and not text.startswith(" ")]
    assert heads[: len(CHECKS)] == ["PASS"] * len(CHECKS)
    assert "13 PASS, 0 WARN, 0 FAIL" in checked.table
    # 2 environments of 6 nodes, pages of 50: one page each, `[extract] workers` (.dlt/config.toml)
    assert "a full sync at this pace: about 2 node pages (2 environments of about 6 nodes) x" in (
        checked.line("node details")
    )
    assert f"/ {int(dlt.config['extract.workers'])} workers" in checked.line("node details")
    assert simulator.config.token not in checked.table
    # One request per endpoint, and nothing started in Coalesce.
    first = sorted(simulator.state.environments, key=int)[0]
    paths = [r.path for r in simulator.requests]
    assert paths[:5] == [
        "/api/v1/environments",
        f"/api/v1/environments/{first}",
        f"/api/v1/environments/{first}/nodes",
        f"/api/v1/environments/{first}/nodes",
        f"/api/v1/environments/{first}/jobs",
    ]
    assert paths[5] == "/api/v1/runs" and paths[6].endswith("/results") and paths[7] == "/scheduler/runStatus"
    assert paths[8:] == ["/api/v1/projects", "/api/v1/users"]
    assert not [r for r in simulator.requests if r.method != "GET"]

    assert load_succeeds(simulator)
    assert_matches_simulator(warehouse, simulator)


def test_startrun_needs_credentials_or_an_oauth_environment(simulator, capsys, tmp_path):
    checked = check(capsys, tmp_path)
    assert checked.verdicts()["startRun"] == "WARN"
    assert checked.code == 0  # the metadata load does not start runs
    assert "[sources.coalesce_source.credentials]" in checked.line("startRun")

    first = sorted(simulator.state.environments, key=int)[0]
    simulator.state.set_environment_oauth(first, True)
    checked = check(capsys, tmp_path)
    assert checked.verdicts()["startRun"] == "PASS"
    assert "uses OAuth" in checked.line("startRun")


# (knobs, settings, the check's line, its verdict, the variant it names; the load follows the verdict)
VARIANTS = {
    "real-account preset": (real_account_quirks(), {}, "run status", "PASS", "runLink carries a UUID"),
    "failed node as runState failed": (
        {"failed_run_state": "failed"},
        {},
        "run results",
        "PASS",
        "failed nodes as runState failed",
    ),
    "page size refused": (
        {"max_page_size": 100},
        {"PAGE_SIZE": "250"},
        "environments",
        "WARN",
        "page size refused (400), halved until accepted",
    ),
    "next as a number": ({"next_style": "number"}, {"PAGE_SIZE": "1"}, "users", "PASS", "next as a number"),
    "end as next null": ({"end_style": "null"}, {}, "users", "PASS", "end of paging as next: null"),
    "end as empty next": ({"end_style": "empty"}, {}, "users", "PASS", "end of paging as an empty next"),
    "inclusive cursor": (
        {"inclusive_cursor": True},
        {"PAGE_SIZE": "1"},
        "environments",
        "PASS",
        "inclusive cursor",
    ),
    "total null": ({"total_null": True}, {}, "environments", "PASS", "total: null"),
    # 2 environments read 2 at a time: a full first page with neither key is the last (doc §4.3).
    "no total": (
        {"total_absent": True},
        {"PAGE_SIZE": "2"},
        "environments",
        "PASS",
        "a full page taken as the last",
    ),
    "v6.2 runs paging": (
        {"runs_v62_paging": True},
        {"RUNS_PAGE_SIZE": "3"},
        "runs",
        "PASS",
        "no next and no total: v6.2 paging",
    ),
    "run ids as strings": ({"run_ids_as_strings": True}, {}, "runs", "PASS", "run ids as text"),
    "optional run fields as null": ({"optional_fields_as_null": True}, {}, "runs", "PASS", None),
    "results wrapper": ({"results_envelope": "results"}, {}, "run results", "PASS", "results as {results"),
    "results wrapper late": (
        {"results_envelope": "results_late"},
        {},
        "run results",
        "PASS",
        "results as {results",
    ),
    "results as a bare list": ({"results_envelope": "bare"}, {}, "run results", "PASS", "as a bare list"),
    "results in an unknown wrapper": ({"results_envelope": "items"}, {}, "run results", "FAIL", None),
    "column references by id": ({}, {}, "node details", "PASS", "column references by node and column id"),
    "column references by name": (
        {"column_refs_by_name": True},
        {},
        "node details",
        "PASS",
        "column references by table and column name",
    ),
    "jobs list missing": ({"jobs_list_missing": True}, {}, "jobs", "WARN", "no jobs list at this path"),
    "users at the other path": (
        {"status_override": {"/api/v1/users": 404}},
        {},
        "users",
        "PASS",
        "users at /api/v1/organization/users",
    ),
    "run status without runStatus": (
        {"run_status_without_status": True},
        {},
        "run status",
        "PASS",
        "no runStatus",
    ),
    "environment detail without id": (
        {"environment_detail_without_id": True},
        {},
        "environment",
        "PASS",
        "no id in the environment detail",
    ),
    "new fields": (
        {"extra_fields": True},
        {},
        "runs",
        "WARN",
        "fields the notes do not describe: simulatorExtra",
    ),
    "runs echo credentials": ({"echo_credentials": True}, {}, "runs", "WARN", "credential secrets"),
    "429 without Retry-After": (
        {"rate_limit_burst": 1, "retry_after_header": False, "fault_path_prefix": "/api/v1/runs"},
        {},
        "runs",
        "PASS",
        "rate-limited (429), retried",
    ),
    "5xx": (
        {"server_error_burst": 1, "fault_path_prefix": "/api/v1/users"},
        {},
        "users",
        "PASS",
        "failing (5xx), retried",
    ),
    "forbidden projects": ({"status_override": {"/api/v1/projects": 403}}, {}, "projects", "FAIL", None),
    "a list without data": (
        {"body_override": {"/api/v1/projects": {"items": []}}},
        {},
        "projects",
        "FAIL",
        None,
    ),
    "slow node detail pages": (
        {"detail_page_hang_above": 3, "detail_page_hang_seconds": 30.0},
        {"NODES_PAGE_SIZE": "6", "NODES_TIMEOUT": "0.5"},
        "node details",
        "WARN",
        "node detail page timed out, asked again smaller",
    ),
    "slow node detail pages (in time)": (
        {"detail_page_hang_above": 3, "detail_page_hang_seconds": 0.8},
        {"NODES_PAGE_SIZE": "6", "NODES_TIMEOUT": "2"},
        "node details",
        "WARN",
        "slow node detail pages",
    ),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_the_check_names_each_variant_and_the_load_does_what_it_said(
    name, simulator, credentials, capsys, tmp_path, monkeypatch, warehouse
):
    knobs, settings, line, verdict, variant = VARIANTS[name]
    for key, value in settings.items():
        monkeypatch.setenv(f"SOURCES__COALESCE_SOURCE__{key}", value)
    simulator.faults.update(knobs)

    checked = check(capsys, tmp_path)
    assert checked.verdicts()[line] == verdict, checked.table
    if variant is not None:
        assert any(variant in named for named in checked.variants(line)), checked.table
        assert variant in checked.line(line)
    others = {check: v for check, v in checked.verdicts().items() if check != line}
    assert "FAIL" not in others.values(), checked.table
    assert checked.code == (1 if verdict == "FAIL" else 0)

    simulator.faults.update(knobs)  # bursts were used up by the check: the load meets them too
    assert load_succeeds(simulator) is (verdict != "FAIL")


def test_a_slow_node_page_suggests_a_page_size_the_timeout_allows(
    simulator, credentials, capsys, tmp_path, monkeypatch
):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_PAGE_SIZE", "6")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_TIMEOUT", "0.5")
    simulator.faults.update({"detail_page_hang_above": 3, "detail_page_hang_seconds": 30.0})
    checked = check(capsys, tmp_path)
    assert "a page of 6 did not answer within 0.5 s; pages of 3 did: set nodes_page_size = 3" in (
        checked.line("node details")
    )


def test_the_real_account_preset_names_what_differs_from_the_command_line(tmp_path):
    """The simulator's `--real-account` preset and `coalesce-dagster check`, each as a user starts
    them: the check names the quirks the preset switches on, and passes."""
    bin_dir = Path(sys.executable).parent
    simulator = subprocess.Popen(
        [str(bin_dir / "coalesce-simulator"), "--port", "0", "--real-account", "--token", "real-ish"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        listening = read_line(simulator.stdout, timeout=60)
        base_url = listening.split(" listening on ")[1].split(" ")[0]
        env = {
            **os.environ,
            "SOURCES__COALESCE_SOURCE__BASE_URL": base_url,
            "SOURCES__COALESCE_SOURCE__ACCESS_TOKEN": "real-ish",
            "SOURCES__COALESCE_SOURCE__CREDENTIALS__AUTH_TYPE": "OAuth",
        }
        done = subprocess.run(
            [str(bin_dir / "coalesce-dagster"), "check"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        simulator.terminate()
        simulator.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    table = " ".join(done.stdout.split())  # lines wrap at 110 characters
    assert "runLink carries a UUID" in table
    assert "failed nodes as runState failed" in table
    # The preset serves no test outcomes (doc §11.3 infers where they would be): the one WARN.
    assert "WARN run results" in table and NO_OUTCOMES in table
    assert "12 PASS, 1 WARN, 0 FAIL" in table
    assert "real-ish" not in done.stdout + done.stderr


def test_a_fail_line_quotes_the_sentence_the_load_ends_with(simulator, credentials, capsys, tmp_path):
    simulator.faults.status_override = {"/api/v1/projects": 403}
    checked = check(capsys, tmp_path)
    assert "The access token's user may not read /api/v1/projects (403)." in checked.line("projects")
    assert "A full load would fail" in checked.table


def test_a_wrong_token_fails_every_request_with_where_to_get_one(simulator, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN", "not-the-token")
    checked = check(capsys, tmp_path)
    assert checked.code == 1
    assert checked.verdicts()["environments"] == "FAIL"
    assert "rejected the access token (401)" in checked.line("environments")
    assert "not-the-token" not in checked.table and "not-the-token" not in json.dumps(checked.report)
    assert not load_succeeds(simulator)


def test_no_token_fails_before_any_request(simulator, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("SOURCES__COALESCE_SOURCE__ACCESS_TOKEN")
    checked = check(capsys, tmp_path)
    assert checked.code == 1
    assert list(checked.verdicts().items()) == [("connection", "PASS"), ("settings", "FAIL")]
    assert "Generate Access Token" in checked.line("settings")
    assert simulator.request_count() == 0


@pytest.mark.parametrize("simulator_config", [SimulatorConfig(environments=0, runs=0)])
def test_an_account_with_nothing_yet_warns_what_it_could_not_read(
    simulator, simulator_config, credentials, capsys, tmp_path, warehouse
):
    checked = check(capsys, tmp_path)
    assert checked.code == 0, checked.table
    verdicts = checked.verdicts()
    assert [check for check, verdict in verdicts.items() if verdict == "WARN"] == [
        "environments",
        "environment",
        "nodes",
        "node details",
        "jobs",
        "run results",
        "run status",
    ]
    assert "no environment to read" in checked.line("jobs")
    assert "no run to read" in checked.line("run status")
    assert load_succeeds(simulator)


@pytest.mark.parametrize(
    ("runs_page_size", "verdict"), [("3", "WARN"), ("1", "WARN")], ids=["pages-of-3", "one-run-a-page"]
)
def test_runs_served_oldest_first_are_named_and_a_later_sync_does_what_the_check_said(
    runs_page_size, verdict, simulator, credentials, capsys, tmp_path, monkeypatch, warehouse
):
    """A server that ignores `orderByDirection`: each sync reads the whole list (WARN: correct,
    slower), with pages of one run too (the load judges the order across pages: a one-run page
    once stopped a sync at the oldest run it knew, loading no new run)."""
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE", runs_page_size)
    simulator.faults.runs_oldest_first = True
    checked = check(capsys, tmp_path)
    assert checked.verdicts()["runs"] == verdict, checked.table
    assert any("runs not newest first" in named for named in checked.variants("runs")), checked.table
    assert "FAIL" not in {v for c, v in checked.verdicts().items() if c != "runs"}, checked.table
    assert checked.code == (1 if verdict == "FAIL" else 0)

    assert load_succeeds(simulator)  # the first sync reads every run whatever the order
    new_runs = simulator.state.add_runs(2)
    assert load_succeeds(simulator)
    loaded = {run_id for (run_id,) in warehouse.rows(f"SELECT id FROM {DATASET}.runs")}
    assert set(simulator.state.runs) - set(new_runs) <= loaded
    assert set(new_runs) <= loaded if verdict == "WARN" else not set(new_runs) & loaded


@pytest.mark.parametrize(
    "simulator_config",
    [
        SimulatorConfig(
            environments=1, nodes_per_environment=20, runs=0, in_flight_runs=0, users=2, projects=1
        )
    ],
)
@pytest.mark.parametrize("served", [True, False], ids=["outcomes-served", "no-outcomes"])
def test_the_check_says_whether_run_results_carry_test_outcomes(
    served, simulator, simulator_config, credentials, capsys, tmp_path, warehouse
):
    """Nodes with node and column tests, and one finished run of all of them: with the
    `test_results` switch each test has a query result naming it (checks with results), without it
    none (checks that never report: a WARN, never a FAIL). The report names which, without a value."""
    (environment,) = simulator.state.environments
    tested = [n for n in simulator.state.nodes[environment].values() if n["metadata"]["appliedNodeTests"]]
    assert tested, "the generated environment should have nodes with tests"
    simulator.faults.update({"column_tests": True, "test_results": served})
    run_id = simulator.state.start_run(environment)
    simulator.state.set_run_status(run_id, "running")
    simulator.state.set_run_status(run_id, "completed")

    checked = check(capsys, tmp_path)
    assert checked.verdicts()["run results"] == ("PASS" if served else "WARN"), checked.table
    named = OUTCOMES_SEEN if served else NO_OUTCOMES
    assert named in checked.variants("run results") and named in " ".join(checked.line("run results").split())
    assert checked.code == 0, checked.table
    # 3 tests per tested node (its node test, "Unique" and "Not Null" on its first column)
    expected = f"{3 * len(tested)} of {3 * len(tested)} tests" if served else f"none of the {3 * len(tested)}"
    assert expected in " ".join(checked.line("run results").split())
    report = json.dumps(checked.report)
    assert all(node["metadata"]["appliedNodeTests"][0]["name"] not in report for node in tested)
    assert load_succeeds(simulator)
