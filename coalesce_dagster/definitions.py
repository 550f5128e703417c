"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each,
assembled here with the settings Dagster needs at load time (read leniently: a bad value is logged
and its default used, so a typo never stops the code location loading)."""

import dagster as dg

from .configuration import ScheduleSettings, SensorSettings, read_section
from .defs.assets import coalesce_assets
from .defs.resources import resource_defs
from .defs.schedules import JOBS, build_schedules
from .defs.sensors import build_run_status_sensor

schedule_settings = read_section(ScheduleSettings, strict=False)
sensor_settings = read_section(SensorSettings, strict=False)

defs = dg.Definitions(
    assets=[coalesce_assets],
    resources=resource_defs(),
    jobs=JOBS,
    schedules=build_schedules(schedule_settings),
    sensors=[
        build_run_status_sensor(
            minimum_interval_seconds=sensor_settings.minimum_interval_seconds,
            default_status=sensor_settings.default_status,
        )
    ],
)
