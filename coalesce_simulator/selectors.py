"""Coalesce node selectors, e.g. ``{ location: SAMPLE name: CUSTOMER } OR { location: SAMPLE name: ORDERS }``.

Only the documented keys are understood: ``location``, ``name`` and ``subgraph``. Values may
be quoted and may use shell-style wildcards (``STG_*``); that last part is a simulator
convenience. The simulator has no subgraphs, so a ``subgraph`` term never matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

_TERM = re.compile(r"\{([^{}]*)\}")
_PAIR = re.compile(r"\s*([A-Za-z]+)\s*:\s*(\"[^\"]*\"|'[^']*'|[^\s{}\"']+)\s*")
_OR = re.compile(r"\s*OR\s*", re.IGNORECASE)
_KEYS = {"location", "name", "subgraph"}

Term = dict[str, str]


def parse_selector(text: str | None) -> list[Term]:
    """Parse a selector into OR-ed terms. Empty/None -> no terms. Raises ValueError."""
    if text is None or not text.strip():
        return []
    terms: list[Term] = []
    position = 0
    for match in _TERM.finditer(text):
        gap = text[position : match.start()]
        # Terms must be separated by OR; nothing else may sit between them.
        if (terms and not _OR.fullmatch(gap)) or (not terms and gap.strip()):
            raise ValueError(f"invalid selector near {gap.strip()!r}")
        terms.append(_parse_term(match.group(1)))
        position = match.end()
    if not terms or text[position:].strip():
        raise ValueError(f"invalid selector {text!r}")
    return terms


def _parse_term(body: str) -> Term:
    term: Term = {}
    position = 0
    while position < len(body):
        match = _PAIR.match(body, position)
        if match is None:
            if body[position:].strip():
                raise ValueError(f"invalid selector term {{{body}}}")
            break
        key, value = match.group(1), match.group(2).strip("\"'")
        if key not in _KEYS:
            raise ValueError(f"unknown selector key {key!r}")
        term[key] = value
        position = match.end()
    if not term:
        raise ValueError("empty selector term {}")
    return term


def _term_matches(term: Term, node: Mapping[str, Any]) -> bool:
    if "subgraph" in term:
        return False
    return all(
        fnmatchcase(str(node.get(field, "")), term[key])
        for key, field in (("location", "locationName"), ("name", "name"))
        if key in term
    )


def select_nodes(
    nodes: Iterable[Mapping[str, Any]], include: str | None, exclude: str | None
) -> list[Mapping[str, Any]]:
    """Nodes picked by ``include`` (all when empty) minus those matched by ``exclude``."""
    include_terms: Sequence[Term] = parse_selector(include)
    exclude_terms: Sequence[Term] = parse_selector(exclude)
    chosen = []
    for node in nodes:
        if include_terms and not any(_term_matches(t, node) for t in include_terms):
            continue
        if any(_term_matches(t, node) for t in exclude_terms):
            continue
        chosen.append(node)
    return chosen
