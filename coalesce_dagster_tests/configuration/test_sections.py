"""The typed sections (`configuration/sections.py`): every section resolved the same way, a bad value
named with its key and environment variable; strict refuses every bad key at once, lenient falls
back to each key's default with a warning. Fast: no simulator, no load."""

from __future__ import annotations

import logging
import os
from dataclasses import fields

import pytest

from coalesce_dagster.configuration import (
    SECTIONS,
    ConfigurationError,
    ConnectionSettings,
    DestinationSettings,
    FreshnessRule,
    HealthSettings,
    NodeSettings,
    ProjectSettings,
    ScheduleSettings,
    SensorSettings,
    configuration_problems,
    load_settings,
    read_section,
)


@pytest.fixture(autouse=True)
def _no_project_settings_in_the_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("COALESCE_DAGSTER__", "SOURCES__COALESCE_SOURCE__")):
            monkeypatch.delenv(name)


def test_defaults_when_nothing_is_set():
    # The committed .dlt/config.toml spells out the defaults: the same settings either way.
    assert load_settings(strict=True) == ProjectSettings(
        ConnectionSettings(),
        DestinationSettings(),
        ScheduleSettings(),
        SensorSettings(),
        NodeSettings(),
        HealthSettings(),
    )
    assert configuration_problems() == []
    assert SensorSettings() == SensorSettings(
        minimum_interval_seconds=30,
        lookback_hours=6,
        time_budget_seconds=40,
        max_runs_per_request=50,
        default_status="stopped",
    )


def test_values_are_typed(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__LOOKBACK_HOURS", "1.5")
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST", "7")
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS", " Running ")
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", "eu")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_TIMEOUT", "90")
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__NODES_FULL_REREAD_HOURS", "0")
    settings = load_settings(strict=True)
    assert (settings.sensor.lookback_hours, settings.sensor.max_runs_per_request) == (1.5, 7)
    assert settings.sensor.default_status == "running"
    assert settings.schedules.timezone == "Europe/Berlin"
    assert settings.connection.base_url == "https://app.eu.coalescesoftware.io"
    assert settings.connection.nodes_timeout == 90.0
    assert settings.connection.nodes_full_reread_hours == 0.0  # 0 is a value, not "unset"


def test_a_blank_value_means_the_default(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__LOOKBACK_HOURS", "  ")
    assert read_section(SensorSettings).lookback_hours == 6


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        (
            "SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE",
            "600",
            "[sources.coalesce_source] runs_page_size = '600' is out of range: Coalesce takes page sizes "
            "from 1 to 500 (SOURCES__COALESCE_SOURCE__RUNS_PAGE_SIZE; default 500).",
        ),
        (
            "SOURCES__COALESCE_SOURCE__BASE_URL",
            "eu-nowhere",
            "[sources.coalesce_source] base_url = 'eu-nowhere' cannot be used: 'eu-nowhere' is not a "
            "known Coalesce region alias.",
        ),
        (
            "COALESCE_DAGSTER__DUCKDB_MEMORY_LIMIT",
            "lots",
            "[coalesce_dagster] duckdb_memory_limit = 'lots' is not a size such as '128MB' or '1GB' "
            "(COALESCE_DAGSTER__DUCKDB_MEMORY_LIMIT; default '96MB').",
        ),
        (
            "COALESCE_DAGSTER__DESTINATION",
            "duckdbb",
            "[coalesce_dagster] destination = 'duckdbb' is not a dlt destination this installation can "
            "load into",
        ),
        (
            "COALESCE_DAGSTER__SCHEDULES__RUNS_CRON",
            "every morning",
            "[coalesce_dagster.schedules] runs_cron = 'every morning' is not a cron expression such as "
            "'0 5 * * *' (COALESCE_DAGSTER__SCHEDULES__RUNS_CRON; default '30 5 * * *').",
        ),
        (
            "COALESCE_DAGSTER__SENSOR__LOOKBACK_HOURS",
            "-1",
            "[coalesce_dagster.sensor] lookback_hours = '-1' must be a number of at least 0 "
            "(COALESCE_DAGSTER__SENSOR__LOOKBACK_HOURS; default 6).",
        ),
        (
            "SOURCES__COALESCE_SOURCE__NODES_FULL_REREAD_HOURS",
            "weekly",
            "[sources.coalesce_source] nodes_full_reread_hours = 'weekly' must be a number of at least 0 "
            "(SOURCES__COALESCE_SOURCE__NODES_FULL_REREAD_HOURS; default 168).",
        ),
        (
            "COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS",
            "on",
            "[coalesce_dagster.sensor] default_status = 'on' must be 'running' or 'stopped' "
            "(COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS; default 'stopped').",
        ),
    ],
)
def test_a_bad_value_in_each_section_names_its_key_and_variable(monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(strict=True)
    assert len(refused.value.problems) == 1
    assert refused.value.problems[0].startswith(expected)
    assert configuration_problems() == refused.value.problems


def test_strict_lists_every_bad_key_at_once(monkeypatch):
    bad = {
        "SOURCES__COALESCE_SOURCE__PAGE_SIZE": "two-fifty",
        "COALESCE_DAGSTER__DUCKDB_MEMORY_LIMIT": "lots",
        "COALESCE_DAGSTER__SCHEDULES__TIMEZONE": "Mars/Olympus_Mons",
        "COALESCE_DAGSTER__SENSOR__MAX_RUNS_PER_REQUEST": "0",
        "COALESCE_DAGSTER__SENSOR__MINIMUM_INTERVAL_SECONDS": "1.5",
    }
    for variable, value in bad.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_settings(strict=True)
    assert len(refused.value.problems) == len(bad)
    for variable in bad:
        assert f"({variable};" in str(refused.value)


def test_lenient_uses_each_bad_keys_default_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__RUNS_CRON", "every morning")
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__TIMEZONE", "Europe/Berlin")  # good: kept
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__MINIMUM_INTERVAL_SECONDS", "soon")
    with caplog.at_level(logging.WARNING):
        settings = load_settings(strict=False)
    assert settings.schedules == ScheduleSettings(timezone="Europe/Berlin")
    assert settings.sensor == SensorSettings()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("runs_cron = 'every morning'" in w and w.endswith("Using '30 5 * * *'.") for w in warnings)
    assert any("minimum_interval_seconds = 'soon'" in w and w.endswith("Using 30.") for w in warnings)


def test_only_the_section_asked_for_is_read(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__RUNS_CRON", "every morning")
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__TIME_BUDGET_SECONDS", "0")
    with pytest.raises(ConfigurationError, match=r"time_budget_seconds = '0'") as refused:
        read_section(SensorSettings)
    assert "runs_cron" not in str(refused.value)


def test_without_the_connection_the_base_url_is_not_checked(monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__BASE_URL", "eu-nowhere")
    assert configuration_problems(connection=False) == []
    assert len(configuration_problems()) == 1


def test_an_explicit_value_wins_and_is_checked_the_same_way(monkeypatch):
    monkeypatch.setenv("SOURCES__COALESCE_SOURCE__PAGE_SIZE", "100")
    assert read_section(ConnectionSettings, given={"page_size": 20, "base_url": None}).page_size == 20
    with pytest.raises(
        ConfigurationError, match=r"\[sources.coalesce_source\] page_size = 501 is out of range"
    ):
        read_section(ConnectionSettings, given={"page_size": 501})


def test_the_token_is_no_part_of_the_settings():
    assert all("token" not in key.name for section in SECTIONS for key in fields(section))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('["2", "Production"]', ("2", "Production")), ("2, Production", ("2", "Production")), ("", ())],
)
def test_node_environments_from_a_json_list_or_commas(monkeypatch, raw, expected):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", raw)
    assert read_section(NodeSettings).environments == expected


def test_a_bad_node_setting_names_its_key(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", '["2", ')
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__WAREHOUSE", "snow flake")
    with pytest.raises(ConfigurationError) as raised:
        read_section(NodeSettings)
    assert [problem.split(" = ")[0] for problem in raised.value.problems] == [
        "[coalesce_dagster.nodes] environments",
        "[coalesce_dagster.nodes] warehouse",
    ]
    assert "COALESCE_DAGSTER__NODES__WAREHOUSE" in raised.value.problems[1]


def test_freshness_rules_from_a_json_list(monkeypatch):
    monkeypatch.setenv(
        "COALESCE_DAGSTER__HEALTH__FRESHNESS",
        '[{"environment": "Production", "hours": 26}, '
        '{"environment": "2", "job": "Daily", "hours": "1.5", "severity": "WARN", "failures_in_a_row": 1}]',
    )
    assert read_section(HealthSettings).freshness == (
        FreshnessRule("Production", 26.0),
        FreshnessRule("2", 1.5, job="Daily", severity="warn", failures_in_a_row=1),
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Production", "is not a list such as"),
        (
            '[{"environment": "Production"}]',
            "has rule 1 without an environment and a positive number of hours",
        ),
        (
            '[{"environment": "P", "hours": 1, "severity": "fatal"}]',
            "has rule 1 whose value must be 'warn' or",
        ),
        ('[{"environment": "P", "hours": 1, "cron": "x"}]', "has rule 1 with unknown keys ['cron']"),
    ],
)
def test_a_bad_freshness_rule_names_its_key_and_what_is_wrong(monkeypatch, value, expected):
    monkeypatch.setenv("COALESCE_DAGSTER__HEALTH__FRESHNESS", value)
    with pytest.raises(ConfigurationError) as refused:
        read_section(HealthSettings)
    assert refused.value.problems[0].startswith(f"[coalesce_dagster.health] freshness = {value!r} {expected}")
    assert "(COALESCE_DAGSTER__HEALTH__FRESHNESS; default ())" in refused.value.problems[0]
