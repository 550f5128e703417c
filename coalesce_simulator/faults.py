"""Fault injection knobs.

Tests flip these between calls (``sim.faults.rate_limit_burst = 2``), so the object is a plain
mutable dataclass. Assignments are validated on the spot: a typo in a knob name or an
impossible value should fail the test that made it, not silently disable the fault.
Burst counters are consumed through :meth:`Faults.take`, which decrements under a lock so
that concurrent requests never both claim the last unit of a burst.

Besides transient faults, some knobs reproduce what clients running against *real* Coalesce
accounts show where it differs from the documentation (doc §10). Each is off by default, so the
simulator serves the documented behaviour unless a test asks otherwise; :func:`real_account_quirks`
(or :meth:`Faults.real_account`) switches on those doc §10 reports as observed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

# Knobs whose value is one of a fixed set of strings.
_CHOICES: dict[str, tuple[str, ...]] = {
    "next_style": ("string", "number"),
    "end_style": ("absent", "null", "empty"),
    # "items": an undocumented wrapper; "results_late": {"results": [...]} behind other keys long
    # enough to push "results" past the first 200 bytes (defeats clients that sniff a body's start).
    "results_envelope": ("data", "results", "bare", "items", "results_late"),
    "run_link_style": ("counter", "uuid"),
    "failed_run_state": ("error", "failed"),
}

# Annotation base name -> accepted Python types (bool is rejected for numbers separately).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "dict": (dict,),
}


@dataclass
class Faults:
    """All faults are off by default. See the module docstring for the concurrency contract."""

    latency_ms: float = 0.0  # sleep before answering every request
    rate_limit_burst: int = 0  # next N requests: 429 + Retry-After
    retry_after_seconds: int = 1
    # A rate limit on concurrency, as APIs that count requests per account enforce it: a request
    # that arrives while this many others are being answered gets 429 + Retry-After at once
    # (0: no limit). Control-plane requests do not count.
    max_in_flight: int = 0
    retry_after_header: bool = True  # False: 429 answers carry no Retry-After (Coalesce documents none)
    server_error_burst: int = 0  # next N requests: 503
    # After this many successful requests every further request answers 503 (an outage in the
    # middle of a load) until set back to None. Re-assigning restarts the count.
    fail_after_requests: int | None = None
    hang_burst: int = 0  # next N requests sleep hang_seconds first
    hang_seconds: float = 0.0
    reset_burst: int = 0  # next N requests: connection closed without an answer
    garbage_burst: int = 0  # next N successful responses: 200 with a non-JSON body
    truncated_burst: int = 0  # next N successful responses: JSON cut in half
    fault_path_prefix: str | None = None  # bursts/outage only hit paths with this prefix
    next_style: str = "string"  # "string" (opaque base64url) | "number"
    end_style: str = "absent"  # last page: "absent" | "null" | "empty" next
    total_null: bool = False
    total_absent: bool = False  # lists carry no `total` at all (optional, doc §4.3)
    inclusive_cursor: bool = False  # page after a cursor repeats the item it names
    run_ids_as_strings: bool = False
    # Run objects send each optional field they lack as null instead of leaving it out, and detail
    # runs carry a top-level "environmentID": null beside runDetails' (one nullable model for both).
    optional_fields_as_null: bool = False
    # /api/v1/runs serves runs oldest first whatever orderByDirection asks (and echoes "asc"), as
    # a deployment that ignored the parameter would: the documented default is desc (doc §4.1).
    runs_oldest_first: bool = False
    results_envelope: str = "data"  # "data" | "results" | "bare" | "items" | "results_late"
    runs_v62_paging: bool = False  # /api/v1/runs without next/total (v6.2 style)
    extra_fields: bool = False  # every object gains "simulatorExtra" (schema drift)
    status_override: dict[str, int] | None = None  # path prefix -> forced HTTP status
    # path prefix -> JSON body answered with 200 instead of the real one (a body of the wrong shape)
    body_override: dict[str, Any] | None = None

    # Behaviours of real accounts that differ from the documentation (doc §10).
    # Every paged list answers 400 "limit must be between 1 and N" to a limit outside 1..N
    # (real accounts: 1..500) instead of the documented 0..1000.
    max_page_size: int | None = None
    # GET /api/v1/environments/{id}/nodes?detail=true with a limit above this threshold waits
    # detail_page_hang_seconds before answering (real detail pages get slower as they grow).
    # The wait holds no lock and ends when the simulator stops.
    detail_page_hang_above: int | None = None
    detail_page_hang_seconds: float = 0.0
    # Only detail pages that continue from a cursor wait: a list that turns slow part-way through.
    detail_page_hang_with_cursor_only: bool = False
    # /scheduler/runStatus runLink: "counter" <base>/runs/<run id> as documented, or "uuid"
    # <base>/runs/<UUID stable per seed and run>, as the real UI's run URLs carry a UUID.
    run_link_style: str = "counter"
    # runState of the failing node in run results: "error" (doc §3.4) or "failed", which
    # clients of real accounts also see (doc §10.4).
    failed_run_state: str = "error"
    # Fields the v6.2 spec leaves out, which a client must then find elsewhere: /scheduler/runStatus
    # without runStatus (optional there), GET /api/v1/environments/{id} without id (not declared).
    run_status_without_status: bool = False
    environment_detail_without_id: bool = False
    # /scheduler/runStatus says this ("initializing" or "rendering", doc §5) for a run still waiting
    # to run: statuses only the scheduler reports, early in a run's life.
    scheduler_early_status: str | None = None
    # /scheduler/runStatus answers 404 this many times for each run startRun created, before it
    # knows the run (clients of real accounts wait 10 s before their first poll, doc §10).
    started_run_status_404s: int = 0
    # Error answers carry no body at all, only their status: v6.2 gives 401 no body schema (doc
    # §2.2), and a gateway in front of Coalesce may answer others the same way.
    bare_errors: bool = False
    # Run objects (every /api/v1/runs view) carry userCredentials with secret values
    # (render.ECHOED_SECRET_VALUES), as a misbehaving API might: lets tests prove a client strips
    # them before storing anything. Coalesce documents no secrets in run objects (doc §3.3).
    echo_credentials: bool = False
    # GET /api/v1/environments/{id}/jobs answers 404 as an unknown endpoint would: a deployment
    # without the jobs list, whose path doc §10.9 only infers (/jobs/{jobID} still answers).
    jobs_list_missing: bool = False
    # Node tests and column references beyond the generated state (node_tests.py, doc §11): column
    # tests on tested nodes; column references by table and column name; one query result per test
    # in run results (named "Test: <test> [<column>]"), failing for the test named failing_test.
    column_tests: bool = False
    column_refs_by_name: bool = False
    test_results: bool = False
    failing_test: str | None = None

    # Internal bookkeeping, not knobs.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)
    _outage_admitted: int = field(default=0, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            _validate(name, value)
            if name == "fail_after_requests":
                # A fresh outage threshold counts from the moment it is set.
                object.__setattr__(self, "_outage_admitted", 0)
        object.__setattr__(self, name, value)

    # -- public helpers ---------------------------------------------------------------------

    @classmethod
    def real_account(cls) -> Faults:
        """Faults as a real account behaves (:func:`real_account_quirks`), everything else off."""
        faults = cls()
        faults.update(real_account_quirks())
        return faults

    def reset(self) -> None:
        """Put every knob back to its default (and forget outage progress)."""
        for f in _knob_fields():
            setattr(self, f.name, f.default_factory() if f.default is MISSING else f.default)

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several knobs at once; validates all of them before changing any."""
        for name, value in values.items():
            _validate(name, value)
        for name, value in values.items():
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in _knob_fields()}

    # -- used by the server -----------------------------------------------------------------

    def take(self, burst_name: str) -> bool:
        """Consume one unit of a burst counter; True if this request is hit by the fault."""
        with self._lock:
            remaining = getattr(self, burst_name)
            if remaining > 0:
                object.__setattr__(self, burst_name, remaining - 1)
                return True
            return False

    def applies_to(self, path: str) -> bool:
        prefix = self.fault_path_prefix
        return prefix is None or path.startswith(prefix)

    def override_for(self, path: str) -> int | None:
        """HTTP status forced for ``path`` by ``status_override`` (longest prefix wins)."""
        overrides = self.status_override
        if not overrides:
            return None
        matches = [prefix for prefix in overrides if path.startswith(prefix)]
        return overrides[max(matches, key=len)] if matches else None

    def retry_after(self) -> tuple[tuple[str, str], ...]:
        """Headers of a 429 answer: Retry-After, unless ``retry_after_header`` is off."""
        return (("Retry-After", str(self.retry_after_seconds)),) if self.retry_after_header else ()

    def body_for(self, path: str) -> Any:
        """The JSON body forced for ``path`` by ``body_override`` (longest prefix wins), or None."""
        overrides = self.body_override
        if not overrides:
            return None
        matches = [prefix for prefix in overrides if path.startswith(prefix)]
        return overrides[max(matches, key=len)] if matches else None

    def admit_under_outage(self) -> tuple[bool, bool]:
        """Pass the outage gate: (admitted, counted).

        ``counted`` means a "successful request" slot was reserved; the caller gives it back
        with :meth:`release_outage_slot` if the request does not succeed after all.
        """
        with self._lock:
            limit = self.fail_after_requests
            if limit is None:
                return True, False
            if self._outage_admitted >= limit:
                return False, False
            object.__setattr__(self, "_outage_admitted", self._outage_admitted + 1)
            return True, True

    def release_outage_slot(self) -> None:
        """Give back a slot whose request did not succeed (only successes count)."""
        with self._lock:
            if self.fail_after_requests is not None and self._outage_admitted > 0:
                object.__setattr__(self, "_outage_admitted", self._outage_admitted - 1)


def real_account_quirks() -> dict[str, Any]:
    """Knob values for what clients of real accounts report (doc §10), for :meth:`Faults.update`.

    Only behaviours doc §10 states as seen: the 1..500 page size (§10.1), run links carrying a
    UUID (§10.3) and ``runState: "failed"`` (§10.4). Slowness, envelopes and missing fields are
    inferred or one-off, so tests opt into them one by one.
    """
    return {"max_page_size": 500, "run_link_style": "uuid", "failed_run_state": "failed"}


def _knob_fields() -> list[Any]:
    return [f for f in fields(Faults) if f.init]


def _validate(name: str, given: object) -> None:
    value: Any = given  # checked below, one knob at a time
    spec = _SPECS.get(name)
    if spec is None:
        raise AttributeError(f"Faults has no knob named {name!r}")
    accepted, nullable = spec
    if value is None:
        if not nullable:
            raise ValueError(f"Faults.{name} may not be None")
        return
    if isinstance(given, bool) and bool not in accepted:
        raise ValueError(f"Faults.{name} expects {accepted[0].__name__}, got a bool")
    if not isinstance(given, accepted):
        raise ValueError(f"Faults.{name} expects {accepted[0].__name__}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise ValueError(f"Faults.{name} must not be negative, got {value!r}")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValueError(f"Faults.{name} must be one of {_CHOICES[name]}, got {value!r}")
    if name == "max_page_size" and value < 1:
        raise ValueError(f"Faults.max_page_size must be at least 1, got {value!r}")
    if name == "body_override" and not all(isinstance(prefix, str) for prefix in value):
        raise ValueError("Faults.body_override must map path prefixes to JSON bodies")
    if name == "status_override":
        for prefix, status in value.items():
            if not isinstance(prefix, str) or isinstance(status, bool) or not isinstance(status, int):
                raise ValueError("Faults.status_override must map path prefixes to int statuses")
            if not 100 <= status <= 599:
                raise ValueError(f"Faults.status_override status out of range: {status}")


def _build_specs() -> dict[str, tuple[tuple[type, ...], bool]]:
    # Annotations are strings (PEP 563); "int | None" -> ((int,), nullable=True).
    specs: dict[str, tuple[tuple[type, ...], bool]] = {}
    for f in _knob_fields():
        annotation = str(f.type)
        base = annotation.split("|")[0].split("[")[0].strip()
        specs[f.name] = (_TYPES[base], "None" in annotation)
    return specs


_SPECS = _build_specs()
