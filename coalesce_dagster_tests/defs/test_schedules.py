"""Schedules: each runs its asset selection daily at the README's default time; together they cover
the group; times, timezone and status come from config."""

import dagster as dg
import pytest

from coalesce_dagster.configuration import ScheduleSettings, read_section
from coalesce_dagster.definitions import defs
from coalesce_dagster.defs.schedules import build_schedules

EXPECTED = {
    "coalesce_daily_environments": {
        "coalesce/environments",
        "coalesce/environment",
        "coalesce/environment_nodes",
        "coalesce/jobs",
    },
    "coalesce_daily_organisation": {"coalesce/projects", "coalesce/users"},
    "coalesce_daily_runs": {
        "coalesce/runs",
        "coalesce/run_results",
        "coalesce/run_status",
    },
}
DEFAULT_CRONS = {
    "coalesce_daily_environments": "0 5 * * *",
    "coalesce_daily_organisation": "15 5 * * *",
    "coalesce_daily_runs": "30 5 * * *",
}


def _selected_keys(schedule: dg.ScheduleDefinition) -> set[str]:
    job = defs.resolve_job_def(schedule.job_name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_schedule_runs_its_selection_daily_at_the_default_time(name):
    schedule = defs.resolve_schedule_def(name)
    assert (schedule.cron_schedule, schedule.execution_timezone) == (DEFAULT_CRONS[name], "UTC")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert _selected_keys(schedule) == EXPECTED[name]


def test_the_coalesce_checks_run_alone_every_hour():
    schedule = defs.resolve_schedule_def("coalesce_hourly_freshness_checks")
    assert (
        schedule.cron_schedule == "0 * * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    )
    assert schedule.job_name == "coalesce_freshness_checks_job"


def test_schedules_together_cover_every_asset_once():
    # The health views are not loaded: their automation sensor refreshes them after the loads.
    every_asset = {
        key.to_user_string()
        for key in defs.get_repository_def().asset_graph.get_all_asset_keys()
        if key.path[1] != "health"
    }
    covered = [key for name in EXPECTED for key in _selected_keys(defs.resolve_schedule_def(name))]
    assert sorted(covered) == sorted(every_asset)


def test_cron_and_timezone_come_from_config(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__RUNS_CRON", "*/30 * * * *")
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__DEFAULT_STATUS", "stopped")
    runs = next(s for s in build_schedules(read_section(ScheduleSettings)) if s.name == "coalesce_daily_runs")
    assert runs.cron_schedule == "*/30 * * * *"
    assert runs.execution_timezone == "Europe/Berlin"
    assert runs.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_bad_schedule_setting_falls_back_to_its_default(monkeypatch, caplog):
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__TIMEZONE", "Mars/Olympus_Mons")
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__ENVIRONMENTS_CRON", "daily")
    options = read_section(ScheduleSettings, strict=False)
    assert options == ScheduleSettings(timezone="UTC", environments_cron="0 5 * * *")
    assert "timezone = 'Mars/Olympus_Mons' is not an IANA time zone" in caplog.text
    assert "environments_cron = 'daily' is not a cron expression" in caplog.text


def test_the_sensor_ships_stopped_and_targets_the_run_family():
    sensor = defs.resolve_sensor_def("coalesce_run_status_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    job = defs.resolve_job_def(sensor.job_name)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == EXPECTED[
        "coalesce_daily_runs"
    ]
