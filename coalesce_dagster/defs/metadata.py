"""The metadata load as definitions of its own: the dlt assets, their resources, jobs, schedules and
the run-status sensor, read from configuration now. `coalesce_dagster.definitions` adds the node
assets; a code location assembled in Python (examples/node_automation.py) starts from this."""

import dagster as dg

from ..configuration import ScheduleSettings, SensorSettings, read_section
from .assets import coalesce_assets
from .resources import resource_defs
from .schedules import JOBS, build_schedules
from .sensors import build_run_status_sensor


def metadata_definitions() -> dg.Definitions:
    """Everything of the code location but the node assets."""
    sensor_settings = read_section(SensorSettings, strict=False)
    return dg.Definitions(
        assets=[coalesce_assets],
        resources=resource_defs(),
        jobs=JOBS,
        schedules=build_schedules(read_section(ScheduleSettings, strict=False)),
        sensors=[
            build_run_status_sensor(
                minimum_interval_seconds=sensor_settings.minimum_interval_seconds,
                default_status=sensor_settings.default_status,
            )
        ],
    )
