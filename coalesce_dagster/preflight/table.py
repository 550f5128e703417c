"""The check's result as a table a person reads in a terminal: one line per check."""

from __future__ import annotations

import textwrap

from .checks import CheckResult

WIDTH = 110
_NAME_WIDTH = 14


def render_table(result: CheckResult) -> str:
    indent = " " * (6 + _NAME_WIDTH)
    rows = []
    for line in result.lines:
        text = "; ".join(line.detail) or "-"
        head = f"{line.verdict:<4}  {line.check:<{_NAME_WIDTH}}"
        rows.append(textwrap.fill(text, WIDTH, initial_indent=head, subsequent_indent=indent))
    counts = {
        verdict: sum(line.verdict == verdict for line in result.lines) for verdict in ("PASS", "WARN", "FAIL")
    }
    verdict = (
        "A full load would fail: fix the FAIL lines first."
        if result.failed
        else "A full load would succeed."
        + (" The WARN lines say what it would skip or slow down." if counts["WARN"] else "")
    )
    summary = f"{counts['PASS']} PASS, {counts['WARN']} WARN, {counts['FAIL']} FAIL in {result.seconds:.1f} s. {verdict}"
    return "\n".join([*rows, "", summary])
