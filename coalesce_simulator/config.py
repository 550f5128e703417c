"""Static configuration of a simulated Coalesce organisation.

Kept apart from the state so that the CLI, the tests and the state generator can share it
without importing the HTTP machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bearer token the simulator accepts unless configured otherwise.
DEFAULT_TOKEN = "sim-token"


@dataclass
class SimulatorConfig:
    """How much data to generate and how to authenticate.

    Every generated value derives from ``seed``, so two simulators with equal configs serve
    byte-identical data (except ``runLink``, which embeds the server's own URL unless
    ``public_base_url`` pins it).
    """

    environments: int = 3
    nodes_per_environment: int = 25
    runs: int = 40  # historical runs, spread over environments
    results_per_run: int = 8  # capped at the environment's node count
    users: int = 5
    projects: int = 2
    # Saved jobs per project (an environment's jobs are its project's): the first two are "Full
    # refresh" and "Marts only", any more "Job <n>" with both selectors set.
    jobs_per_project: int = 2
    seed: int = 0
    token: str = DEFAULT_TOKEN
    # How many of the newest historical runs are still in flight: the newest one is
    # waitingToRun, the others running. Capped at ``runs``.
    in_flight_runs: int = 2
    # Base used for ``runLink``; ``None`` means the server's own URL.
    public_base_url: str | None = None

    def __post_init__(self) -> None:
        counts = {
            "environments": self.environments,
            "nodes_per_environment": self.nodes_per_environment,
            "runs": self.runs,
            "results_per_run": self.results_per_run,
            "users": self.users,
            "projects": self.projects,
            "jobs_per_project": self.jobs_per_project,
            "in_flight_runs": self.in_flight_runs,
        }
        for name, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"SimulatorConfig.{name} must be a non-negative int, got {value!r}")
        # Every Coalesce environment belongs to a project, so environments need somewhere to live.
        if self.environments > 0 and self.projects == 0:
            raise ValueError("SimulatorConfig.projects must be >= 1 when environments > 0")
        if not self.token:
            raise ValueError("SimulatorConfig.token must not be empty")
        if self.public_base_url is not None:
            self.public_base_url = self.public_base_url.rstrip("/")
