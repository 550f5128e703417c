"""Is Coalesce itself healthy? Two checks on `coalesce/runs`, from the loaded run tables:

- `coalesce_freshness`: each rule of `[coalesce_dagster.health] freshness` ("a successful run of
  Production, or of its saved job Daily, in the last N hours") holds, and its runs have not failed
  `failures_in_a_row` times in a row. Fails with the worst failing rule's severity (WARN or ERROR),
  and names each rule's verdict.
- `coalesce_failures_in_a_row`: no environment or saved job has failed its last
  `failures_in_a_row` runs (every environment and job, with no rule to write).

Both are evaluated by every load of `runs` (the sensor's included) and, because time passes without
a load, by the hourly checks-only job too. Alerts key on them (docs/health.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ...configuration import FreshnessRule, HealthSettings
from ..translator import asset_key
from .sql import FAILED, SUCCEEDED, existing_columns, existing_tables, literal, rows

FRESHNESS_CHECK = "coalesce_freshness"
FAILURES_CHECK = "coalesce_failures_in_a_row"
RUNS = asset_key("runs")
# The tables the checks read besides `runs`: names of environments and saved jobs.
NAME_TABLES = ("environments", "jobs")


def coalesce_check_specs() -> list[dg.AssetCheckSpec]:
    deps = [asset_key(table) for table in NAME_TABLES]
    return [
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=RUNS,
            additional_deps=deps,
            description="Each rule of [coalesce_dagster.health] freshness: a successful Coalesce run of "
            "that environment (or saved job) within its hours, and not failed its last runs in a row.",
        ),
        dg.AssetCheckSpec(
            FAILURES_CHECK,
            asset=RUNS,
            additional_deps=deps,
            description="No Coalesce environment or saved job failed its latest runs "
            "[coalesce_dagster.health] failures_in_a_row times in a row.",
        ),
    ]


def coalesce_check_keys() -> list[dg.AssetCheckKey]:
    return [spec.key for spec in coalesce_check_specs()]


@dataclass(frozen=True)
class RunHistory:
    """One environment's, or one saved job's, finished runs as the checks see them."""

    environment_id: str
    environment_name: str
    job_id: str | None
    job_name: str | None
    last_success_at: datetime | None
    failures_in_a_row: int
    runs: int

    @property
    def label(self) -> str:
        where = self.environment_name or self.environment_id
        return f"{where} / {self.job_name or self.job_id}" if self.job_id else where


def run_histories(client: Any) -> list[RunHistory]:
    """Per environment, and per environment and saved job, in one pass over `runs`."""
    present = existing_tables(client)
    if "runs" not in present:
        return []
    runs = client.make_qualified_table_name("runs")
    columns = existing_columns(client, "runs")
    job = (
        "CAST(run_details__job_id AS VARCHAR)"
        if "run_details__job_id" in columns
        else "CAST(NULL AS VARCHAR)"
    )
    ended = "coalesce(run_end_time, run_start_time)" if "run_end_time" in columns else "run_start_time"
    grouped = rows(
        client,
        f"""
        WITH finished AS (
            SELECT environment_id, {job} AS job_id, run_status, run_start_time, {ended} AS ended_at
            FROM {runs} WHERE run_status IN ({literal(SUCCEEDED)}, {literal(FAILED)})
        ), per_group AS (
            SELECT environment_id, CAST(NULL AS VARCHAR) AS job_id, run_status, run_start_time, ended_at
            FROM finished
            UNION ALL
            SELECT environment_id, job_id, run_status, run_start_time, ended_at FROM finished
            WHERE job_id IS NOT NULL
        ), last_success AS (
            SELECT environment_id, job_id, count(*) AS runs,
                   max(ended_at) FILTER (WHERE run_status = {literal(SUCCEEDED)}) AS success_at,
                   max(run_start_time) FILTER (WHERE run_status = {literal(SUCCEEDED)}) AS success_started
            FROM per_group GROUP BY environment_id, job_id
        )
        SELECT s.environment_id, s.job_id, s.success_at, s.runs,
               (SELECT count(*) FROM per_group g WHERE g.environment_id = s.environment_id
                  AND g.job_id IS NOT DISTINCT FROM s.job_id AND g.run_status = {literal(FAILED)}
                  AND (s.success_started IS NULL OR g.run_start_time > s.success_started))
        FROM last_success s ORDER BY s.environment_id, s.job_id NULLS FIRST
        """,
    )
    environment_names = _names(client, present, "environments", "id", "name")
    job_names = _names(client, present, "jobs", "environment_id || '/' || id", "name")
    return [
        RunHistory(
            environment_id=str(environment_id),
            environment_name=environment_names.get(str(environment_id), ""),
            job_id=None if job_id is None else str(job_id),
            job_name=None if job_id is None else job_names.get(f"{environment_id}/{job_id}"),
            last_success_at=_utc(success_at),
            failures_in_a_row=int(in_a_row),
            runs=int(count),
        )
        for environment_id, job_id, success_at, count, in_a_row in grouped
    ]


def _names(client: Any, present: set[str], table: str, key: str, name: str) -> dict[str, str]:
    if table not in present:
        return {}
    found = rows(client, f"SELECT {key}, {name} FROM {client.make_qualified_table_name(table)}")
    return {str(k): str(v) for k, v in found if v is not None}


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def evaluate_coalesce_checks(
    histories: list[RunHistory], options: HealthSettings, selected: set[dg.AssetCheckKey], now: datetime
) -> Iterator[dg.AssetCheckResult]:
    if dg.AssetCheckKey(RUNS, FRESHNESS_CHECK) in selected:
        yield freshness_result(histories, options, now)
    if dg.AssetCheckKey(RUNS, FAILURES_CHECK) in selected:
        yield failures_result(histories, options)


@dataclass(frozen=True)
class Verdict:
    rule: FreshnessRule
    history: RunHistory | None
    hours_since_success: float | None
    problem: str | None


def judge(
    rule: FreshnessRule, histories: list[RunHistory], options: HealthSettings, now: datetime
) -> Verdict:
    history = _matching(rule, histories)
    if history is None:
        what = (
            f"saved job {rule.job!r} of environment {rule.environment!r}"
            if rule.job
            else f"environment {rule.environment!r}"
        )
        return Verdict(rule, None, None, f"no finished run of {what} is loaded (id or name)")
    hours = (
        None if history.last_success_at is None else (now - history.last_success_at).total_seconds() / 3600
    )
    limit = rule.failures_in_a_row or options.failures_in_a_row
    problem = None
    if hours is None:
        problem = "no successful run loaded"
    elif hours > rule.hours:
        problem = f"last success {hours:.1f} h ago, over {rule.hours:g} h"
    if history.failures_in_a_row >= limit:
        streak = f"failed {history.failures_in_a_row} times in a row (limit {limit})"
        problem = f"{problem}; {streak}" if problem else streak
    return Verdict(rule, history, hours, problem)


def _matching(rule: FreshnessRule, histories: list[RunHistory]) -> RunHistory | None:
    def same(value: str | None, wanted: str) -> bool:
        return value is not None and value.strip().lower() == wanted.strip().lower()

    for history in histories:
        if not (
            history.environment_id == rule.environment or same(history.environment_name, rule.environment)
        ):
            continue
        if rule.job is None and history.job_id is None:
            return history
        if rule.job is not None and history.job_id is not None:
            if history.job_id == rule.job or same(history.job_name, rule.job):
                return history
    return None


def freshness_result(
    histories: list[RunHistory], options: HealthSettings, now: datetime
) -> dg.AssetCheckResult:
    if not options.freshness:
        return dg.AssetCheckResult(
            asset_key=RUNS,
            check_name=FRESHNESS_CHECK,
            passed=True,
            description="No freshness rules: set [coalesce_dagster.health] freshness (docs/health.md).",
        )
    verdicts = [judge(rule, histories, options, now) for rule in options.freshness]
    failing = [verdict for verdict in verdicts if verdict.problem]
    severity = (
        dg.AssetCheckSeverity.ERROR
        if any(verdict.rule.severity == "error" for verdict in failing)
        else dg.AssetCheckSeverity.WARN
    )
    lines = [
        "| rule | within | last success | hours ago | failed in a row | verdict |",
        "|---|---|---|---|---|---|",
    ]
    metadata: dict[str, Any] = {}
    for verdict in verdicts:
        history = verdict.history
        success = (
            history.last_success_at.strftime("%Y-%m-%d %H:%M UTC")
            if history and history.last_success_at
            else "never"
        )
        hours = "-" if verdict.hours_since_success is None else f"{verdict.hours_since_success:.1f}"
        streak = history.failures_in_a_row if history else "-"
        outcome = f"{verdict.rule.severity.upper()}: {verdict.problem}" if verdict.problem else "OK"
        lines.append(
            f"| {verdict.rule.label} | {verdict.rule.hours:g} h | {success} | {hours} | {streak} | {outcome} |"
        )
        if verdict.hours_since_success is not None:
            metadata[f"hours_since_success/{verdict.rule.label}"] = dg.MetadataValue.float(
                round(verdict.hours_since_success, 2)
            )
    metadata = {"verdicts": dg.MetadataValue.md("\n".join(lines)), "failing_rules": len(failing), **metadata}
    description = (
        f"All {len(verdicts)} rules hold."
        if not failing
        else "; ".join(f"{verdict.rule.label}: {verdict.problem}" for verdict in failing)
    )
    return dg.AssetCheckResult(
        asset_key=RUNS,
        check_name=FRESHNESS_CHECK,
        passed=not failing,
        severity=severity,
        description=description,
        metadata=metadata,
    )


def failures_result(histories: list[RunHistory], options: HealthSettings) -> dg.AssetCheckResult:
    limit = options.failures_in_a_row
    failing = [history for history in histories if history.failures_in_a_row >= limit]
    lines = ["| environment / job | failed in a row | last success |", "|---|---|---|"]
    for history in sorted(histories, key=lambda h: -h.failures_in_a_row)[:25]:
        success = (
            history.last_success_at.strftime("%Y-%m-%d %H:%M UTC") if history.last_success_at else "never"
        )
        lines.append(f"| {history.label} | {history.failures_in_a_row} | {success} |")
    description = (
        f"No environment or saved job failed {limit} times in a row."
        if not failing
        else "; ".join(
            f"{history.label}: {history.failures_in_a_row} failures in a row" for history in failing
        )
    )
    return dg.AssetCheckResult(
        asset_key=RUNS,
        check_name=FAILURES_CHECK,
        passed=not failing,
        severity=dg.AssetCheckSeverity[options.failures_in_a_row_severity.upper()],
        description=description,
        metadata={
            "failing": len(failing),
            "longest_failure_streak": max((history.failures_in_a_row for history in histories), default=0),
            "streaks": dg.MetadataValue.md("\n".join(lines)),
        },
    )
