"""Whether Coalesce's node tests come with outcomes in run results (API notes §11.3, INFERRED).

Node assets carry a Dagster check per Coalesce test (`defs/nodes/checks.py`), and the sensor reports a
check's result only when a run result's query results name the test (`run_report.outcome_of_test`):
no field of the API names a test result. So the check compares the sampled node detail page's tests
with the sampled run's results, through those same functions, and says which the account shows:
checks with results, or checks that exist but never report. A load succeeds either way (WARN at
most); what is named goes into the report as a fixed phrase, never a test or node name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..coalesce.nodes import NodeTest, parse_node
from ..coalesce.run_report import node_outcomes, outcome_of_test
from .record import Line

OUTCOMES_SEEN = "test outcomes in run results: query results name the nodes' tests"
NO_OUTCOMES = "no test outcomes in run results: Coalesce tests show as Dagster checks without results"
NOT_RUN = "test outcomes not seen: the sampled run ran none of the sampled nodes with tests"


def tested_nodes(page: Sequence[Any]) -> dict[str, tuple[NodeTest, ...]]:
    """Node id -> its enabled tests (node tests, then column tests), for the nodes that have any."""
    nodes = [parse_node(raw) for raw in page if isinstance(raw, Mapping)]
    return {node.id: node.all_tests for node in nodes if node.id and node.all_tests}


def name_test_outcomes(line: Line, tests: Mapping[str, tuple[NodeTest, ...]], items: Sequence[Any]) -> None:
    """Name whether the run's results report the tests of the nodes it ran (built or failed)."""
    if not tests:
        line.note("the sampled nodes carry no tests (appliedNodeTests, appliedColumnTests)")
        return
    ran = [o for o in node_outcomes(items) if o.node_id in tests and (o.completed or o.failed)]
    expected = [(outcome, test) for outcome in ran for test in tests[outcome.node_id]]
    if not expected:
        line.variant(NOT_RUN)
        return
    reported = sum(1 for outcome, test in expected if outcome_of_test(outcome, test) is not None)
    if reported:
        line.variant(OUTCOMES_SEEN)
        line.note(f"{reported} of {len(expected)} tests of the nodes this run ran have an outcome")
        return
    line.variant(NO_OUTCOMES, "WARN")
    line.note(
        f"none of the {len(expected)} tests of the nodes this run ran is named by a query result "
        "(doc §11.3): their checks will exist in Dagster but never report. Attach --report to an "
        "issue so the naming can be learnt."
    )
