"""Fast tests of reading a Coalesce test's outcome from a node's run result (API notes §11.3,
INFERRED: the query results whose name carries the test's name). No outcome is never a pass."""

from __future__ import annotations

from coalesce_dagster.coalesce.nodes import NodeTest
from coalesce_dagster.coalesce.run_report import node_outcome, outcome_of_test

ROW_COUNT = NodeTest("Row count > 0", continue_on_failure=False, run_order="After")
UNIQUE_ID = NodeTest("Unique", column="CUSTOMER_ID")


def result(*queries: dict, state: str = "complete", running: bool = False) -> dict:
    return {
        "nodeID": "n1",
        "name": "DIM",
        "runState": state,
        "isRunning": running,
        "queryResults": list(queries),
    }


BUILD = {"name": "Insert Into DIM", "success": True, "status": "Success", "isRunning": False, "sql": "x"}


def test_a_passing_test_query_is_a_pass():
    query = {"name": "Test: Row count > 0", "success": True, "status": "Success", "isRunning": False}
    verdict = outcome_of_test(node_outcome(result(BUILD, query)), ROW_COUNT)
    assert verdict is not None and verdict.passed and verdict.error is None
    assert verdict.queries == ("Test: Row count > 0",)


def test_a_failing_test_query_is_a_failure_with_coalesce_error_text():
    query = {
        "name": "Test: row count > 0",  # names match ignoring case
        "success": False,
        "status": "Error",
        "isRunning": False,
        "error": {"errorString": "Test failed: 0 rows", "errorDetail": "SELECT COUNT(*) ..."},
    }
    verdict = outcome_of_test(node_outcome(result(BUILD, query, state="error")), ROW_COUNT)
    assert verdict is not None and not verdict.passed
    assert verdict.error == "Test failed: 0 rows\nSELECT COUNT(*) ..."


def test_a_test_no_query_names_has_no_outcome():
    assert outcome_of_test(node_outcome(result(BUILD)), ROW_COUNT) is None
    assert outcome_of_test(node_outcome(result()), ROW_COUNT) is None  # skipped: no queries at all


def test_a_test_still_running_has_no_outcome():
    query = {"name": "Test: Row count > 0", "success": False, "status": "Running", "isRunning": True}
    assert outcome_of_test(node_outcome(result(BUILD, query, running=True)), ROW_COUNT) is None


def test_a_name_inside_another_word_is_not_the_test():
    unique_key = NodeTest("Unique", column="ID")
    query = {"name": "Test: UniqueNess of IDENTIFIER", "success": False, "isRunning": False}
    assert outcome_of_test(node_outcome(result(BUILD, query)), unique_key) is None


def test_a_column_test_needs_its_column_named_too():
    other_column = {"name": "Test: Unique ORDER_ID", "success": False, "isRunning": False}
    own = {"name": "Test: Unique CUSTOMER_ID", "success": True, "isRunning": False}
    assert outcome_of_test(node_outcome(result(BUILD, other_column)), UNIQUE_ID) is None
    verdict = outcome_of_test(node_outcome(result(BUILD, other_column, own)), UNIQUE_ID)
    assert verdict is not None and verdict.passed and verdict.queries == ("Test: Unique CUSTOMER_ID",)


def test_a_failure_is_read_from_success_status_or_error():
    for failing in (
        {"success": False},
        {"status": "Failed"},
        {"success": True, "error": {"errorString": "boom"}},
    ):
        query = {"name": "Test: Row count > 0", "isRunning": False, **failing}
        verdict = outcome_of_test(node_outcome(result(query)), ROW_COUNT)
        assert verdict is not None and not verdict.passed, failing


def test_a_failed_test_that_lets_the_run_go_on_is_a_warning_and_one_that_stops_it_an_error():
    import dagster as dg

    from coalesce_dagster.defs.nodes.checks import coalesce_test_results

    failing = {"name": "Test: Row count > 0", "success": False, "isRunning": False, "error": "0 rows"}
    checks = {
        "coalesce_test_warn": NodeTest("Row count > 0", continue_on_failure=True),
        "coalesce_test_stop": NodeTest("Row count > 0", continue_on_failure=False),
        "coalesce_test_silent": NodeTest("Never reported"),
    }
    results = {r.check_name: r for r in coalesce_test_results(7, node_outcome(result(failing)), checks)}
    assert set(results) == {"coalesce_test_warn", "coalesce_test_stop"}
    assert results["coalesce_test_warn"].severity == dg.AssetCheckSeverity.WARN
    assert results["coalesce_test_stop"].severity == dg.AssetCheckSeverity.ERROR
    assert results["coalesce_test_warn"].description == "Coalesce run 7: test 'Row count > 0' failed: 0 rows"
