"""The Dagster code location: assets, resources (and, as they land, schedules and sensors)."""

import dagster as dg

from .defs.assets import coalesce_assets
from .defs.resources import resource_defs

defs = dg.Definitions(assets=[coalesce_assets], resources=resource_defs())
