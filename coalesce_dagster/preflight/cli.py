"""`coalesce-dagster`: the project's command line. `coalesce-dagster check [--report FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coalesce-dagster", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="check the configured Coalesce account the way a load would read it; writes nothing",
        description=(
            "One request per Coalesce endpoint the load reads, with the configured token and base URL: "
            "a table of PASS / WARN / FAIL lines, exit 0 only when a full load would succeed. "
            "Nothing is written and nothing is started in Coalesce."
        ),
    )
    check.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="also write the shapes seen (field names, JSON types, statuses, page sizes; no values) "
        "as JSON, to attach to an issue",
    )
    args = parser.parse_args(argv)
    return check_command(args.report)


def check_command(report: Path | None = None) -> int:
    """Run the check, print the table (and write the report); the exit status."""
    # Imported here: `coalesce-dagster --help` should not wait for dlt to import.
    from .checks import run_check
    from .report import build_report
    from .table import render_table

    result = run_check()
    print(render_table(result), flush=True)
    if report is not None:
        report.write_text(json.dumps(build_report(result), indent=2) + "\n")
        print(
            f"Shape report (field names and types, no values) written to {report}: attach it to an issue "
            "when a line above is not PASS."
        )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
