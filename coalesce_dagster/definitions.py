"""The Dagster code location: assets, resources, jobs, schedules and sensors, one module each,
assembled here with the settings Dagster needs at load time (read leniently: a bad value is logged
and its default used, so a typo never stops the code location loading), plus the YAML-configured
components of `dg_defs/` (the node assets, built from their stored snapshot: no call to Coalesce)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .runtime import collections_paused

if TYPE_CHECKING:
    import dagster as dg


def build_definitions() -> dg.Definitions:
    """Everything of the code location, read from configuration and the node snapshot now."""
    # Imported here rather than at the top, so that `import coalesce_dagster.definitions` imports
    # Dagster and dlt inside the pause below.
    import dagster as dg

    from .configuration import names
    from .defs.metadata import metadata_definitions

    return dg.Definitions.merge(
        metadata_definitions(), dg.load_from_defs_folder(path_within_project=names.PROJECT_ROOT)
    )


# Loading the definitions makes about 190,000 objects that live as long as the process (Dagster, dlt,
# the definitions): Python's collector would walk them again each time they grew by a quarter while
# they are made, and at every full collection afterwards (each sensor tick and run of a code server).
# Paused while they are made, frozen once made (docs/benchmark.md, "Definitions load").
with collections_paused():
    defs = build_definitions()
