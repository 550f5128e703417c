"""The shape report carries no value: every string and number of every body the simulator served
during the check is searched for in it (ids, names, emails, SQL, tokens, run links, counts); and
`coalesce-dagster check` writes nothing but that report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from coalesce_dagster.preflight.report import NUMERIC_KEYS
from coalesce_simulator import real_account_quirks

# Envelope fields that echo the request (the page size, the order asked for), not the account's data.
ECHOED = frozenset({"limit", "orderBy", "orderByDirection", "startingFrom"})
# The field name the simulator's `extra_fields` adds to every object, maps keyed by data included.
NEW_FIELD = "simulatorExtra"
# Objects whose keys are the account's names (docs/coalesce-api.md §3.1, §3.2, §12.4): their keys are values.
DATA_KEYED = frozenset(
    {"currentMappings", "runTimeParameters", "aliases", "parameters", "config", "appliedColumnTests"}
)
SHORTEST_SEARCHED_INSIDE = 8  # shorter served strings ("RAW", "1") are compared whole, not found inside


def served_bodies(sim) -> list[Any]:
    """Every body the simulator answered during the check, asked again (its data is deterministic)."""
    headers = {"Authorization": f"Bearer {sim.config.token}"}
    bodies = []
    for request in sim.requests:
        if request.method != "GET" or request.path.startswith("/_simulator"):
            continue
        response = requests.get(
            sim.base_url + request.path, params=request.query, headers=headers, timeout=30
        )
        try:
            bodies.append(response.json())
        except ValueError:
            continue
    return bodies


def served_values(value: Any, keys_are_data: bool = False) -> Iterator[Any]:
    """Every string and number in a body, and the keys of objects keyed by data (§3.1, §3.2)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ECHOED:
                continue
            if keys_are_data and key != NEW_FIELD:
                yield key
            yield from served_values(item, key in DATA_KEYED)
    elif isinstance(value, list):
        for item in value:
            yield from served_values(item)
    elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
        yield value


def report_scalars(value: Any, parent: str = "") -> Iterator[tuple[str, Any]]:
    """(key it sits under, value) for every key and scalar of the report."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield parent, key
            yield from report_scalars(item, key if parent not in NUMERIC_KEYS else parent)
    elif isinstance(value, list):
        for item in value:
            yield from report_scalars(item, parent)
    elif value is not None and not isinstance(value, bool):
        yield parent, value


@pytest.mark.parametrize("quirks", ["documented", "real account, new fields, echoed secrets, column tests"])
def test_the_report_holds_no_value_the_simulator_served(simulator, quirks, tmp_path):
    if quirks != "documented":
        simulator.faults.update(
            {
                **real_account_quirks(),
                "extra_fields": True,
                "echo_credentials": True,
                "column_tests": True,  # appliedColumnTests: keyed by test name
                "test_results": True,
            }
        )
    report_path = tmp_path / "report.json"
    from coalesce_dagster.preflight.cli import main

    main(["check", "--report", str(report_path)])
    text = report_path.read_text()
    report = json.loads(text)

    values = {v for body in served_bodies(simulator) for v in served_values(body)}
    values.add(simulator.config.token)
    strings = {v for v in values if isinstance(v, str)}
    numbers = {v for v in values if not isinstance(v, str)}
    assert len(strings) > 100 and len(numbers) > 10  # the search has something to find

    scalars = list(report_scalars(report))
    report_strings = {v for _, v in scalars if isinstance(v, str)}
    assert not strings & report_strings, sorted(strings & report_strings)
    leaked = [s for s in strings if len(s) >= SHORTEST_SEARCHED_INSIDE and s in text]
    assert not leaked
    # Numbers appear only as statuses, page sizes, seconds and settings: describing requests.
    stray = [(key, v) for key, v in scalars if not isinstance(v, str) and key not in NUMERIC_KEYS]
    assert not stray
    statuses = [v for key, v in scalars if key == "status" and isinstance(v, int)]
    assert statuses and all(100 <= status <= 599 for status in statuses)
    assert numbers  # served numbers were searched for; none may sit outside those keys
    assert simulator.config.token not in text


def test_the_console_script_writes_nothing_but_its_report(simulator, tmp_path):
    """`coalesce-dagster check` as a user runs it, from an empty folder with an empty home."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    script = Path(sys.executable).with_name("coalesce-dagster")
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [str(script), "check", "--report", "shape.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN  startRun" in done.stdout  # no warehouse credentials here; the load is not affected
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "home",
        "work",
        "work/shape.json",
    ]
    assert not [r for r in simulator.requests if r.method != "GET"]
