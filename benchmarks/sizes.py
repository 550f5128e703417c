"""The simulated organisations the benchmark runs against."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Size:
    environments: int
    nodes_per_environment: int
    runs: int
    results_per_run: int
    users: int
    projects: int
    latency_ms: float  # default per-request latency of the simulator
    seed: int = 0

    def simulator_args(self, latency_ms: float) -> list[str]:
        """Arguments for `python -m coalesce_simulator`."""
        return [
            "--environments", str(self.environments),
            "--nodes-per-environment", str(self.nodes_per_environment),
            "--runs", str(self.runs),
            "--results-per-run", str(self.results_per_run),
            "--users", str(self.users),
            "--projects", str(self.projects),
            "--seed", str(self.seed),
            "--latency-ms", str(latency_ms),
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


SIZES = {
    # Seconds end to end: the smoke test runs this one.
    "small": Size(environments=3, nodes_per_environment=50, runs=200, results_per_run=5, users=5, projects=2,
                  latency_ms=2),
    # A fifth of large, for iterating on performance in a few minutes.
    "medium": Size(environments=5, nodes_per_environment=2000, runs=4_000, results_per_run=50, users=20,
                   projects=3, latency_ms=20),
    # The independent harness's organisation (issue 22): 5 x 400 nodes, 1,500 runs x 20 results, 50 ms
    # per request, as a slow real account answers.
    "harness": Size(environments=5, nodes_per_environment=400, runs=1_500, results_per_run=20, users=20,
                    projects=3, latency_ms=50),
    # A large organisation: 40,000 nodes and 1,000,000 run results.
    "large": Size(environments=20, nodes_per_environment=2000, runs=20_000, results_per_run=50, users=50,
                  projects=5, latency_ms=20),
}  # fmt: skip
