"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each."""

import dagster as dg

from .defs.assets import coalesce_assets
from .defs.resources import resource_defs
from .defs.schedules import JOBS, SCHEDULES
from .defs.sensors import SENSORS

defs = dg.Definitions(
    assets=[coalesce_assets],
    resources=resource_defs(),
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
)
