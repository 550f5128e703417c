"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each,
assembled here with the settings Dagster needs at load time (read leniently: a bad value is logged
and its default used, so a typo never stops the code location loading), plus the YAML-configured
components of `dg_defs/` (the node assets, built from their stored snapshot: no call to Coalesce)."""

import dagster as dg

from .configuration import names
from .defs.metadata import metadata_definitions


def build_definitions() -> dg.Definitions:
    """Everything of the code location, read from configuration and the node snapshot now."""
    return dg.Definitions.merge(
        metadata_definitions(), dg.load_from_defs_folder(path_within_project=names.PROJECT_ROOT)
    )


defs = build_definitions()
