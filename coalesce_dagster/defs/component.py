"""The metadata load as a Dagster component, for another dg project (docs/components.md).

It builds what this project's code location builds for the load (`metadata.py`): the dlt assets with
their checks, the health views, resources, jobs, schedules and sensors. Settings come from dlt config
as in the code location; the YAML sets only what belongs to the project it joins. Loading it reads
configuration and calls nothing.
"""

from __future__ import annotations

import dagster as dg

from ..configuration import Status
from .metadata import metadata_definitions
from .scaffold import CoalesceMetadataScaffolder


@dg.scaffold_with(CoalesceMetadataScaffolder)
class CoalesceMetadataComponent(dg.Component, dg.Resolvable, dg.Model):
    """Coalesce's metadata loaded by dlt, with health checks, daily schedules and a run-status sensor.

    schedules: the daily syncs' default status; unset: `[coalesce_dagster.schedules] default_status`.
    sensor: the run-status sensor's; unset: `[coalesce_dagster.sensor] default_status`.
    in_process_executor: runs in one process, as the code location does; false when the project
    has an executor of its own (Dagster allows one).
    """

    schedules: Status | None = None
    sensor: Status | None = None
    in_process_executor: bool = True

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        return dg.ComponentTypeSpec(
            description="Coalesce's metadata loaded by dlt, with health checks, schedules and a sensor.",
            tags=["coalesce", "dlt"],
            produces=["asset", "asset_check", "job", "schedule", "sensor", "resource"],
        )

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return metadata_definitions(
            schedules=self.schedules, sensor=self.sensor, in_process_executor=self.in_process_executor
        )
