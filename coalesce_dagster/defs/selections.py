"""Asset selections shared by jobs, schedules and the sensor.

Selections are built from the graph (a parent and everything downstream of it, the rest of the
group), so a resource added later is picked up by some schedule instead of being silently left out.
"""

import dagster as dg

from .. import settings
from .translator import asset_key

RUN_FAMILY = dg.AssetSelection.assets(asset_key("runs")).downstream()
# What reads both families (the health views) is refreshed with the runs.
ENVIRONMENT_FAMILY = dg.AssetSelection.assets(asset_key("environments")).downstream() - RUN_FAMILY
ORGANISATION = dg.AssetSelection.groups(settings.GROUP_NAME) - RUN_FAMILY - ENVIRONMENT_FAMILY
