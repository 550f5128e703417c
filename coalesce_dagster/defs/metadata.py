"""The metadata load as definitions of its own: the dlt assets with their checks, the health views,
their resources, jobs, schedules and sensors, read from configuration now.
`coalesce_dagster.definitions` adds the node assets; a code location assembled in Python
(examples/node_automation.py) starts from this, and so does `CoalesceMetadataComponent` (`component.py`)
in another dg project."""

import dagster as dg

from ..configuration import ScheduleSettings, SensorSettings, Status, read_section
from .assets import coalesce_assets
from .health.freshness_job import build_freshness_schedule, freshness_checks_job
from .health.views import coalesce_health_views, health_automation_sensor
from .resources import resource_defs
from .schedules import JOBS, build_schedules
from .sensors import build_run_status_sensor


def metadata_definitions(
    *, schedules: Status | None = None, sensor: Status | None = None, in_process_executor: bool = True
) -> dg.Definitions:
    """Everything of the code location but the node assets.

    schedules, sensor: their default status, over `[coalesce_dagster.schedules]` and
    `[coalesce_dagster.sensor]` `default_status` (None: as configured). in_process_executor: False
    leaves the executor to the project these definitions join (it may have one of its own).
    """
    sensor_settings = read_section(SensorSettings, strict=False, given={"default_status": sensor})
    schedule_settings = read_section(ScheduleSettings, strict=False, given={"default_status": schedules})
    return dg.Definitions(
        # Steps run in the run's own process: a load is one step (the health views a second),
        # and steps that write the destination run one at a time anyway (the pool). The default
        # multiprocess executor would start a process per step that loads the definitions again:
        # seconds per run before a byte is asked of Coalesce.
        executor=dg.in_process_executor if in_process_executor else None,
        assets=[coalesce_assets, coalesce_health_views],
        resources=resource_defs(),
        jobs=[*JOBS, freshness_checks_job],
        schedules=[
            *build_schedules(schedule_settings),
            build_freshness_schedule(schedule_settings.default_status),
        ],
        sensors=[
            health_automation_sensor,
            build_run_status_sensor(
                minimum_interval_seconds=sensor_settings.minimum_interval_seconds,
                default_status=sensor_settings.default_status,
            ),
        ],
    )
