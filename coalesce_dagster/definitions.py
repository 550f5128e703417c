"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each,
assembled here with the settings Dagster needs at load time (read leniently: a bad value is logged
and its default used)."""

import dagster as dg

from .defs.assets import coalesce_assets
from .defs.resources import resource_defs
from .defs.schedules import JOBS, build_schedules, schedule_settings
from .defs.sensors import build_run_status_sensor, sensor_definition_settings

defs = dg.Definitions(
    assets=[coalesce_assets],
    resources=resource_defs(),
    jobs=JOBS,
    schedules=build_schedules(schedule_settings()),
    sensors=[build_run_status_sensor(**sensor_definition_settings())],
)
