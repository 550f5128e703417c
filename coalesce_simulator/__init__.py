"""A stdlib-only simulator of the Coalesce (coalesce.io) REST API.

Behaviour follows ``docs/coalesce-api.md``. In tests::

    with CoalesceSimulator(SimulatorConfig(seed=1)) as sim:
        sim.faults.rate_limit_burst = 2            # next two requests answer 429
        run_id = sim.state.start_run("1")          # or POST /scheduler/startRun
        sim.state.set_run_status(run_id, "running")
        ...                                        # client under test talks to sim.base_url

As a demo: ``python -m coalesce_simulator --demo-run-interval 10``.
"""

from .config import DEFAULT_TOKEN, SimulatorConfig
from .data import SimulatorState
from .faults import Faults, real_account_quirks
from .render import ECHOED_SECRET_VALUES
from .requestlog import RequestRecord
from .server import CoalesceSimulator

__all__ = [
    "DEFAULT_TOKEN",
    "ECHOED_SECRET_VALUES",
    "CoalesceSimulator",
    "Faults",
    "RequestRecord",
    "SimulatorConfig",
    "SimulatorState",
    "real_account_quirks",
]
