"""The asset checks of a node asset: Coalesce's run of the node, and Coalesce's own tests.

Every node asset has `coalesce_run` (did Coalesce's last run build it without error). Each test
Coalesce applies to the node (`appliedNodeTests`) or to one of its columns (`appliedColumnTests`)
is one more check, `coalesce_test_<test>` or `coalesce_test_<column>_<test>`, as dagster-dbt makes
each dbt test a check. A failing test fails its check with Coalesce's error text, with severity
WARN when the test lets the run go on (`continueOnFailure`), else ERROR; a test the run results say
nothing about gets no result at all (never a guessed pass). Both the run-status sensor (Coalesce's
own runs) and runs Dagster starts report through `coalesce_test_results`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster._core.definitions.metadata.metadata_set import NamespacedMetadataSet

from ...coalesce.nodes import CoalesceNode, NodeTest
from ...coalesce.run_report import NodeOutcome, outcome_of_test
from .translator import RUN_CHECK_NAME

TEST_CHECK_PREFIX = "coalesce_test_"


class CoalesceTestMetadataSet(NamespacedMetadataSet):
    """The Coalesce test behind a check, read back by the sensor to report its outcome."""

    test_name: str | None = None
    test_column: str | None = None
    continue_on_failure: bool | None = None
    run_order: str | None = None

    @classmethod
    def namespace(cls) -> str:
        return "coalesce"

    def as_test(self) -> NodeTest | None:
        if not self.test_name:
            return None
        return NodeTest(
            name=self.test_name,
            column=self.test_column or "",
            continue_on_failure=bool(self.continue_on_failure),
            run_order=self.run_order or "",
        )


def node_test_checks(node: CoalesceNode) -> dict[str, NodeTest]:
    """Check name -> test, for every test of the node (names made unique in Coalesce's order)."""
    checks: dict[str, NodeTest] = {}
    for test in node.all_tests:
        base = TEST_CHECK_PREFIX + "_".join(_name_part(part) for part in (test.column, test.name) if part)
        name, suffix = base, 2
        while name in checks:
            name, suffix = f"{base}_{suffix}", suffix + 1
        checks[name] = test
    return checks


def node_check_specs(key: dg.AssetKey, node: CoalesceNode) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(
            RUN_CHECK_NAME,
            asset=key,
            description="Whether Coalesce's last run of this node built it without error.",
        )
    ]
    for name, test in node_test_checks(node).items():
        what = f"column {test.column}: {test.name}" if test.column else test.name
        specs.append(
            dg.AssetCheckSpec(
                name,
                asset=key,
                description=f"Coalesce test {what}" + (f": {test.description}" if test.description else "."),
                # A test that stops Coalesce's run on failure also holds back what reads the node.
                blocking=not test.continue_on_failure,
                metadata=dict(
                    CoalesceTestMetadataSet(
                        test_name=test.name,
                        test_column=test.column or None,
                        continue_on_failure=test.continue_on_failure,
                        run_order=test.run_order or None,
                    )
                ),
            )
        )
    return specs


@dataclass(frozen=True)
class CoalesceTestResult:
    """One Coalesce test's outcome, ready to be reported as a check result or evaluation."""

    check_name: str
    passed: bool
    severity: dg.AssetCheckSeverity
    metadata: dict[str, dg.MetadataValue]
    description: str | None

    def as_result(self, key: dg.AssetKey) -> dg.AssetCheckResult:
        """For a step that evaluated the check (a run Dagster started)."""
        return dg.AssetCheckResult(asset_key=key, **self._fields())

    def as_evaluation(self, key: dg.AssetKey) -> dg.AssetCheckEvaluation:
        """For a sensor that reports it (a run Coalesce ran on its own)."""
        return dg.AssetCheckEvaluation(asset_key=key, **self._fields())

    def _fields(self) -> dict[str, Any]:
        return {
            "check_name": self.check_name,
            "passed": self.passed,
            "severity": self.severity,
            "metadata": self.metadata,
            "description": self.description,
        }


def coalesce_test_results(
    run_id: int, outcome: NodeOutcome, checks: Mapping[str, NodeTest]
) -> Iterator[CoalesceTestResult]:
    """The results of the node's tests that this run result reports (none for the others)."""
    if outcome.is_running:
        return
    for check_name, test in checks.items():
        verdict = outcome_of_test(outcome, test)
        if verdict is None:
            continue
        metadata: dict[str, dg.MetadataValue] = {
            "coalesce/run_id": dg.MetadataValue.int(run_id),
            "coalesce/test_queries": dg.MetadataValue.json(list(verdict.queries)),
        }
        description = None
        if not verdict.passed:
            error = (verdict.error or "no error text given").splitlines()[0][:300]
            metadata["coalesce/error"] = dg.MetadataValue.text(verdict.error or "")
            description = f"Coalesce run {run_id}: test {test.name!r} failed: {error}"
        yield CoalesceTestResult(
            check_name=check_name,
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.WARN if test.continue_on_failure else dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=description,
        )


def _name_part(text: str) -> str:
    """A check name part: Dagster allows letters, digits and `_` only."""
    return re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_") or "test"
