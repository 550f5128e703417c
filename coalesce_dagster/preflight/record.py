"""What the check saw: every answer Coalesce gave (kept in memory for the shape report), and one
line per check for the table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import orjson
from requests import Response

from ..coalesce.errors import explain

Verdict = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class Exchange:
    """One answer (one attempt of a request), labelled with the endpoint's path template."""

    endpoint: str  # e.g. "GET /api/v1/environments/{environmentID}": never an id
    status: int
    limit: int | None  # the page size asked for, if any
    seconds: float
    body: Any = field(repr=False)  # parsed JSON (None when not JSON): for shapes, never printed
    is_json: bool = True


class Recorder:
    """A `http.ResponseObserver`: keeps every answer under the endpoint being checked."""

    def __init__(self) -> None:
        self.endpoint = "?"
        self.exchanges: list[Exchange] = []

    def __call__(self, response: Response, seconds: float) -> None:
        limit = parse_qs(urlsplit(response.url).query).get("limit", [""])[0]
        try:
            body, is_json = orjson.loads(response.content or b"null"), True
        except orjson.JSONDecodeError:
            body, is_json = None, False
        self.exchanges.append(
            Exchange(
                self.endpoint,
                response.status_code,
                int(limit) if limit.isdigit() else None,
                seconds,
                body,
                is_json,
            )
        )

    def last_ok(self, endpoint: str) -> Exchange | None:
        """The last 200 answer of `endpoint` (after any refused page sizes or retries)."""
        answers = [e for e in self.exchanges if e.endpoint == endpoint and e.status == 200]
        return answers[-1] if answers else None


@dataclass
class Line:
    """One line of the table. `variants` go into the report, so they name shapes and behaviours
    only (field names, envelope kinds), never a value; `detail` is for the terminal."""

    check: str
    verdict: Verdict = "PASS"
    detail: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, text: str) -> None:
        self.detail.append(text)

    def variant(self, name: str, verdict: Verdict = "PASS") -> None:
        """A variant of the API seen here, named in the table and the report."""
        self.variants.append(name)
        if verdict == "WARN":
            self.warn(name)
        else:
            self.note(name)

    def warn(self, text: str) -> None:
        if self.verdict == "PASS":
            self.verdict = "WARN"
        self.detail.append(text)

    def fail(self, text: str) -> None:
        self.verdict = "FAIL"
        self.detail.append(text)


@dataclass
class CheckResult:
    lines: list[Line] = field(default_factory=list)
    recorder: Recorder = field(default_factory=Recorder)
    region: str = "unknown"  # a region alias, "sso:<alias>" or "other host": never the host itself
    settings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(line.verdict == "FAIL" for line in self.lines)

    @contextmanager
    def line(self, name: str, endpoint: str | None = None, *, failure: str = "FAIL") -> Iterator[Line]:
        """A line of the table; an exception in the block becomes its FAIL (or WARN, for checks of
        things the load does not need) with the load's own sentence for it."""
        line = Line(name)
        self.lines.append(line)
        if endpoint is not None:
            self.recorder.endpoint = endpoint
        started = time.monotonic()
        try:
            yield line
        except Exception as error:  # every failure is a line of the table, never a traceback
            sentence = explain(error) or str(error)
            if failure == "FAIL":
                line.fail(sentence)
            else:
                line.warn(sentence)
        finally:
            line.seconds = time.monotonic() - started
