"""The README's guarantees name the tests that prove them; every name must be a test that exists, so
renaming or deleting one cannot leave a guarantee pointing at nothing, and none may be a test of the
simulator alone."""

from __future__ import annotations

import re
from pathlib import Path

TESTS_ROOT = Path(__file__).resolve().parent
README = TESTS_ROOT.parent / "README.md"
# `defs/test_crash.py::test_x`, `coalesce/test_config.py`, or `::test_y` (same file as the last one).
REFERENCE = re.compile(r"`((?:\w+/)*test_\w+\.py)?(?:::(test_\w+))?`")


def named_tests(text: str) -> list[tuple[str, str | None]]:
    references, current = [], None
    for match in REFERENCE.finditer(text):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = (path or "").removeprefix("coalesce_dagster_tests/") or current
        assert current is not None, f"{match.group(0)} names no file"
        references.append((current, name))
    return references


def test_every_test_the_readme_names_exists():
    references = named_tests(README.read_text())
    assert len(references) > 40  # the failure table, the sensor's guarantees and the paragraphs after them
    missing = []
    for path, name in references:
        source = TESTS_ROOT / path
        if not source.is_file() or (name and not re.search(rf"^def {name}\(", source.read_text(), re.MULTILINE)):
            missing.append(f"{path}::{name}" if name else path)
    assert not missing, f"README names tests that do not exist: {missing}"


def test_no_guarantee_rests_on_a_simulator_test():
    """The simulator's own tests pin its fidelity to the API; what the project promises is proven
    by loading through the product."""
    start = README.read_text().index("| sensor guarantee |")
    on_the_simulator = [path for path, _ in named_tests(README.read_text()[start:]) if path.startswith("simulator/")]
    assert not on_the_simulator
