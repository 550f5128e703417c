"""`coalesce-dagster check`: the first contact with a Coalesce account, as a measurement.

One request per list endpoint through the load's own client layer (`coalesce/`), a table of
PASS / WARN / FAIL lines with the sentence the load would give, and on request a JSON report of
the shapes seen, never a value (`shapes.py`). Nothing is written but that report.
"""
