"""The node assets as a Dagster state-backed component (like dagster-fivetran's and dbt Cloud's).

Its state is the node snapshot (`state.py`): written by `dg utils refresh-defs-state` (which
calls `write_state_to_path`, the only place that asks Coalesce for nodes) and by each daily
environments sync; read by `build_defs_from_state` whenever the definitions load, which therefore
needs no network and no credentials. With no snapshot yet there are no node assets, and a message
says how to make one; an old snapshot still loads.

Configured in `coalesce_dagster/dg_defs/coalesce_nodes/defs.yaml`; in another dg project, written by
`dg scaffold defs` (`../scaffold.py`, docs/components.md). Subclass it and override `get_translator`
to change keys, groups or metadata (docs/node-assets.md).
"""

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import dagster as dg
from dagster.components import DefsStateConfig, DefsStateConfigArgs, ResolvedDefsStateConfig
from dagster_shared.serdes.objects.models.defs_state_info import DefsStateManagementType

from ...coalesce.nodes.scope import scope_snapshot
from ...coalesce.nodes.snapshot import fetch_node_snapshot
from ...configuration import resolve_source_settings
from ..scaffold import CoalesceNodesScaffolder
from .assets import build_node_definitions
from .state import (
    NODES_STATE_KEY,
    configured_base_url,
    configured_environments,
    configured_orchestrate,
    configured_snapshot_path,
    dagster_state_path,
    local_state_path,
    read_snapshot,
    store_snapshot,
    warehouse_kind,
)
from .translator import DagsterCoalesceTranslator

logger = logging.getLogger(__name__)


def _default_state_config() -> DefsStateConfigArgs:
    # Never refresh on `dagster dev` load: definitions must load with no network (issue: no API
    # call at definition load). Refresh explicitly, or let the daily environments sync do it.
    return DefsStateConfigArgs(management_type=DefsStateManagementType.LOCAL_FILESYSTEM, refresh_if_dev=False)


@dg.scaffold_with(CoalesceNodesScaffolder)
@dataclass
class CoalesceNodesComponent(dg.StateBackedComponent, dg.Resolvable):
    """Every node of the chosen Coalesce environments as an asset, with lineage.

    environments: ids or names; default `[coalesce_dagster.nodes] environments` in `.dlt/config.toml`.
    orchestrate: those of them Dagster may build by starting Coalesce runs (ids or names); left out,
    `[coalesce_dagster.nodes] orchestrate`, else none; `[]`: none, whatever dlt config says (every
    environment observed only).
    """

    environments: list[str] | None = None
    orchestrate: list[str] | None = None
    defs_state: ResolvedDefsStateConfig = field(default_factory=_default_state_config)

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        return dg.ComponentTypeSpec(
            description="Every node of the chosen Coalesce environments as an asset, with lineage.",
            tags=["coalesce"],
            produces=["asset", "asset_check", "resource"],
        )

    @property
    def defs_state_config(self) -> DefsStateConfig:
        # Never refreshed while the definitions load, whatever `defs_state` says: a refresh asks
        # Coalesce, and loading must not (Dagster's own default refreshes under `dagster dev`).
        given = DefsStateConfig.from_args(self.defs_state, default_key=NODES_STATE_KEY)
        if given.management_type == DefsStateManagementType.LEGACY_CODE_SERVER_SNAPSHOTS:
            raise ValueError(
                "CoalesceNodesComponent: defs_state management_type LEGACY_CODE_SERVER_SNAPSHOTS would "
                "ask Coalesce every time a code server loads the definitions; use LOCAL_FILESYSTEM (the "
                "default) or VERSIONED_STATE_STORAGE, refreshed by `dg utils refresh-defs-state` or the "
                "daily environments sync."
            )
        return DefsStateConfig(key=given.key, management_type=given.management_type, refresh_if_dev=False)

    def chosen_environments(self) -> list[str]:
        return list(self.environments) if self.environments else configured_environments()

    def chosen_orchestrate(self) -> list[str]:
        # An empty list is a choice (nothing is built from Dagster), not a missing setting.
        return list(self.orchestrate) if self.orchestrate is not None else configured_orchestrate()

    def get_translator(self) -> DagsterCoalesceTranslator:
        return DagsterCoalesceTranslator(warehouse_kind=warehouse_kind())

    def write_state_to_path(self, state_path: Path) -> None:
        snapshot = fetch_node_snapshot(resolve_source_settings(), self.chosen_environments())
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state_path.write_text(snapshot.to_json())
        if configured_snapshot_path() is not None:
            store_snapshot(snapshot)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        chosen = configured_snapshot_path()
        if chosen is not None:
            return self.build_defs_from_state(context, chosen if chosen.exists() else None)
        config = self.defs_state_config
        if (
            config.management_type == DefsStateManagementType.LOCAL_FILESYSTEM
            and not config.refresh_if_dev
            and not dagster_state_path(context.project_root).exists()
        ):
            # No snapshot stored: what Dagster's own `build_defs` does below, without asking for the
            # state path, which creates Dagster's empty state folder in the project (`state.py`).
            return self.build_defs_from_state(context, None)
        return super().build_defs(context)  # Dagster's defs state (LOCAL_FILESYSTEM by default)

    def build_defs_from_state(
        self, context: dg.ComponentLoadContext, state_path: Path | None
    ) -> dg.Definitions:
        return load_node_definitions(
            self.get_translator(),
            state_path=state_path,
            environments=self.chosen_environments(),
            orchestrate=self.chosen_orchestrate(),
        )


def load_node_definitions(
    translator: DagsterCoalesceTranslator | None = None,
    *,
    state_path: Path | None = None,
    environments: list[str] | None = None,
    orchestrate: list[str] | None = None,
) -> dg.Definitions:
    """The node assets from the stored snapshot, as the component builds them, for a code location
    assembled in Python (another translator, say). Defaults: the snapshot the project stores
    (`local_state_path`), `[coalesce_dagster.nodes] environments` and `orchestrate`."""
    snapshot = read_snapshot(state_path or local_state_path())
    if snapshot is None:
        return dg.Definitions()
    scope = scope_snapshot(
        snapshot,
        base_url=configured_base_url(),
        environments=configured_environments() if environments is None else environments,
        orchestrate=configured_orchestrate() if orchestrate is None else orchestrate,
    )
    for note in scope.notes:
        logger.warning("%s", note)
    return build_node_definitions(
        replace(snapshot, environments=scope.environments),
        translator or DagsterCoalesceTranslator(warehouse_kind=warehouse_kind()),
        orchestrated=scope.orchestrated,
    )
