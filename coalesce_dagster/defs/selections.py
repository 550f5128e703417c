"""Asset selections shared by jobs, schedules and the sensor.

Selections are built from the graph (a parent and everything downstream of it, the rest of the
group), so a resource added later is picked up by some schedule instead of being silently left out.
"""

import dagster as dg

from ..configuration import names
from .translator import asset_key

# The health views are refreshed by their own automation sensor after loads (defs/health/views.py),
# never inside a load's run: the sensor's loads stay one step.
HEALTH_VIEWS = dg.AssetSelection.groups("coalesce_health")
RUN_FAMILY = dg.AssetSelection.assets(asset_key("runs")).downstream() - HEALTH_VIEWS
ENVIRONMENT_FAMILY = dg.AssetSelection.assets(asset_key("environments")).downstream() - HEALTH_VIEWS
ORGANISATION = dg.AssetSelection.groups(names.GROUP_NAME) - RUN_FAMILY - ENVIRONMENT_FAMILY
