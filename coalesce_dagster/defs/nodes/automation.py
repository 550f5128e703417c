"""Declarative automation for Coalesce's nodes: build them when the tables they read update.

Dagster's `AutomationCondition.eager()` looks at an asset's direct dependencies. A Coalesce node that
reads raw data depends on a *source node* asset (`coalesce_source/...`), which Dagster never builds:
the ingestion asset that loads the raw table sits one step further up. `upstream_tables_updated()`
looks through source nodes to that table, so "load the raw table with dlt or Fivetran, then build
the Coalesce nodes that read it, then the BI assets that read those" needs no glue code.

Unlike `eager()`, a node is never built merely because Dagster has not seen it built yet (the
table exists in the warehouse all the same): turning automation on starts no Coalesce run by
itself. Use it from a translator (`DagsterCoalesceTranslator.get_automation_condition`), in an
environment Dagster orchestrates; the nodes one tick requests in one environment become one
Coalesce run (one step of the environment's multi-asset).
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition


def upstream_tables_updated() -> dg.AutomationCondition:
    """True once a node or table the node reads was updated (or will be, this tick), until the
    node is requested; held back while the node or what it reads is being built."""
    updated = (AC.newly_updated() & ~AC.executed_with_root_target()) | AC.will_be_requested()
    # For a source node dependency: the table behind it (its own dependency) was updated.
    behind_source = AC.any_deps_match(AC.newly_updated())
    return (
        AC.in_latest_time_window()
        & AC.any_deps_match(updated | behind_source).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("coalesce_upstream_tables_updated")
