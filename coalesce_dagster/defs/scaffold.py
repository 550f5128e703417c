"""What `dg scaffold defs <component> <path>` writes for the two components: a `defs.yaml` that loads
as written, its options explained in comments (Dagster's default scaffolder writes bare YAML).

Nothing here imports the components (they import this module to declare their scaffolder).
"""

from __future__ import annotations

from typing import Any, Literal

import dagster as dg
import yaml
from pydantic import BaseModel, Field

from ..configuration import env_var

# What a project must supply for either component to reach Coalesce (never to load): dlt config.
_CONNECTION = f"""\
# Coalesce is reached with dlt configuration, read when a run, a sensor tick or a state refresh
# starts (never when these definitions load): {env_var("sources.coalesce_source", "base_url")} (your
# Coalesce URL or region) and {env_var("sources.coalesce_source", "access_token")}, or the same keys
# under [sources.coalesce_source] in .dlt/config.toml and .dlt/secrets.toml where dg runs."""


def write_defs_yaml(request: dg.ScaffoldRequest[Any], comment: str, attributes: dict[str, Any]) -> None:
    """`defs.yaml` with `comment` above it; another format (Python) or an append as Dagster does it."""
    if request.scaffold_format != "yaml" or request.append:
        dg.scaffold_component(request, attributes)
        return
    document = yaml.safe_dump(
        {"type": request.type_name, "attributes": attributes}, sort_keys=False, default_flow_style=False
    )
    (request.target_path / "defs.yaml").write_text(f"{comment.rstrip()}\n{_CONNECTION}\n{document}")


class NodesScaffoldParams(BaseModel):
    environments: list[str] | None = Field(
        default=None, description="Coalesce environments (ids or names) whose nodes become assets."
    )
    orchestrate: list[str] | None = Field(
        default=None, description="Those of them Dagster may build by starting Coalesce runs."
    )


class CoalesceNodesScaffolder(dg.Scaffolder[NodesScaffoldParams]):
    """`dg scaffold defs ...CoalesceNodesComponent <path> --environments Production`."""

    @classmethod
    def get_scaffold_params(cls) -> type[NodesScaffoldParams]:
        return NodesScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[NodesScaffoldParams]) -> None:
        comment = """\
# Coalesce's nodes as assets, with lineage (coalesce-dagster: docs/components.md).
# The assets come from a snapshot of the nodes, written by `dg utils refresh-defs-state` (and by
# each daily environments sync of CoalesceMetadataComponent): loading never calls Coalesce.
#   environments: ids or names; left out: [coalesce_dagster.nodes] environments in dlt config.
#   orchestrate: those Dagster may build by starting Coalesce runs; left out: [coalesce_dagster.nodes]
#     orchestrate in dlt config, else none; [] (an empty list): none, all observed only."""
        # Only what was given: a key left out defers to dlt config, and an empty list would not.
        attributes = {
            name: list(values)
            for name, values in (
                ("environments", request.params.environments),
                ("orchestrate", request.params.orchestrate),
            )
            if values
        }
        write_defs_yaml(request, comment, attributes)


class MetadataScaffoldParams(BaseModel):
    schedules: Literal["running", "stopped"] | None = Field(
        default=None, description="The daily syncs' default status (default: running)."
    )
    sensor: Literal["running", "stopped"] | None = Field(
        default=None, description="The run-status sensor's default status (default: stopped)."
    )


class CoalesceMetadataScaffolder(dg.Scaffolder[MetadataScaffoldParams]):
    """`dg scaffold defs ...CoalesceMetadataComponent <path> [--schedules stopped] [--sensor running]`."""

    @classmethod
    def get_scaffold_params(cls) -> type[MetadataScaffoldParams]:
        return MetadataScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[MetadataScaffoldParams]) -> None:
        comment = """\
# Coalesce's metadata (environments, jobs, runs, nodes, users...) loaded by dlt into your destination,
# with its health checks, jobs, daily schedules and run-status sensor (coalesce-dagster:
# docs/components.md). Where it loads: [coalesce_dagster] destination and dataset_name, and the
# destination's credentials, in dlt config (by default DuckDB: set DESTINATION__DUCKDB__CREDENTIALS).
#   schedules: the daily syncs' default status, running or stopped (unset: as configured, running).
#   sensor: the run-status sensor's, running or stopped (unset: as configured, stopped).
#   in_process_executor: false if your project sets an executor of its own."""
        attributes: dict[str, Any] = {
            name: value
            for name, value in (("schedules", request.params.schedules), ("sensor", request.params.sensor))
            if value is not None
        }
        write_defs_yaml(request, comment, attributes)
