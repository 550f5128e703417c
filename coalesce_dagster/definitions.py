"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each,
assembled here with the settings Dagster needs at load time (read leniently: a bad value is logged
and its default used, so a typo never stops the code location loading), plus the YAML-configured
components of `dg_defs/` (the node assets, built from their stored snapshot: no call to Coalesce)."""

import dagster as dg

from . import settings
from .configuration import ScheduleSettings, SensorSettings, read_section
from .defs.assets import coalesce_assets
from .defs.health.freshness_job import build_freshness_schedule, freshness_checks_job
from .defs.health.views import coalesce_health_views, health_automation_sensor
from .defs.resources import resource_defs
from .defs.schedules import JOBS, build_schedules
from .defs.sensors import build_run_status_sensor


def build_definitions() -> dg.Definitions:
    """Everything of the code location, read from configuration and the node snapshot now."""
    sensor_settings = read_section(SensorSettings, strict=False)
    schedule_settings = read_section(ScheduleSettings, strict=False)
    return dg.Definitions.merge(
        dg.Definitions(
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
        ),
        dg.load_from_defs_folder(path_within_project=settings.PROJECT_ROOT),
    )


defs = build_definitions()
