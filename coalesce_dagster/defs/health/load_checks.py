"""The checks the load op evaluates itself, right after it loads (or alone, in a checks-only run)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import dlt

from ...configuration import HealthSettings, read_section
from .coalesce_freshness import (
    coalesce_check_keys,
    coalesce_check_specs,
    evaluate_coalesce_checks,
    run_histories,
)
from .table_checks import evaluate_table_checks, table_check_specs


def load_check_specs() -> list[dg.AssetCheckSpec]:
    return [*table_check_specs(), *coalesce_check_specs()]


def health_settings_for(context: dg.AssetExecutionContext) -> HealthSettings | None:
    """`[coalesce_dagster.health]`, read strictly (a bad value stops the run before any request),
    when this run evaluates a Coalesce check."""
    if set(context.selected_asset_check_keys) & set(coalesce_check_keys()):
        return read_section(HealthSettings)
    return None


def evaluate_load_checks(
    context: dg.AssetExecutionContext, pipeline: dlt.Pipeline, options: HealthSettings | None
) -> Iterator[dg.AssetCheckResult]:
    """Every check this run selected, against the destination as the load left it."""
    selected = set(context.selected_asset_check_keys)
    if not selected:
        return
    with pipeline.sql_client() as client:
        results = list(evaluate_table_checks(client, selected))
        if options is not None:
            histories = run_histories(client)
            results += evaluate_coalesce_checks(histories, options, selected, datetime.now(UTC))
    yield from results
