"""Where the node snapshot lives, and the `[coalesce_dagster.nodes]` settings.

The snapshot is the node assets' "defs state" in Dagster's sense: by default a local file under
`coalesce_dagster/dg_defs/.local_defs_state/` (Dagster's LOCAL_FILESYSTEM management, git-ignored),
written by `dg utils refresh-defs-state` and by every daily environments sync, read when the
definitions load (which create nothing there when there is none). A deployment whose code servers do not share a disk sets the component's
`defs_state.management_type` to VERSIONED_STATE_STORAGE; the daily sync then also uploads each new
snapshot to the instance's defs state storage.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from pathlib import Path

import dagster as dg
from dagster.components.utils.project_paths import (
    _LOCAL_DEFS_STATE_DIR,
    get_defs_module_path_for_project,
    get_local_state_path,
)
from dagster_shared.serdes.objects.models.defs_state_info import LOCAL_STATE_VERSION

from ...coalesce.nodes import NodeSnapshot
from ...configuration import ConfigurationError, NodeSettings, names, read_section, resolve_base_url

logger = logging.getLogger(__name__)

NODES_STATE_KEY = "CoalesceNodes"


def configured_environments() -> list[str]:
    """`[coalesce_dagster.nodes] environments`: ids or names (a bad value is logged; none then)."""
    return list(read_section(NodeSettings, strict=False).environments)


def configured_orchestrate() -> list[str]:
    """`[coalesce_dagster.nodes] orchestrate`: the environments Dagster may build (ids or names)."""
    return list(read_section(NodeSettings, strict=False).orchestrate)


def configured_base_url() -> str | None:
    """The canonical host of the configured Coalesce account (no token read, no request made);
    None when the configured value is unusable (the reason is logged)."""
    try:
        return resolve_base_url()
    except ConfigurationError as error:
        logger.error("No node assets: %s", error)
        return None


def warehouse_kind() -> str:
    """`[coalesce_dagster.nodes] warehouse`: the kind shown on node assets (snowflake, databricks, ...)."""
    return read_section(NodeSettings, strict=False).warehouse


def configured_snapshot_path() -> Path | None:
    """`[coalesce_dagster.nodes] snapshot_path`: a file of your choosing instead of Dagster's state
    folder (like dagster-fivetran's `snapshot_path`); tests use it to keep their snapshots apart."""
    chosen = read_section(NodeSettings, strict=False, keys=["snapshot_path"]).snapshot_path
    return Path(chosen).expanduser() if chosen else None


def local_state_path(project_root: Path = names.USER_PROJECT_ROOT) -> Path:
    """Where the snapshot is read and written: `snapshot_path` if set, else the LOCAL_FILESYSTEM
    state file `dg utils refresh-defs-state` writes for the node assets. Asking creates nothing."""
    return configured_snapshot_path() or dagster_state_path(project_root)


def dagster_state_path(project_root: Path = names.USER_PROJECT_ROOT) -> Path:
    """Dagster's LOCAL_FILESYSTEM state file of the node assets (`get_local_state_path`), without
    creating its folder: Dagster's function creates `<defs folder>/.local_defs_state/<key>/` (and a
    `.gitignore` in it) whenever it is asked, and a definitions load asks even when there is no
    snapshot, which would leave an empty folder in the project at every load (issue 22). The folder is
    created when a snapshot is stored (`store_snapshot`, `dg utils refresh-defs-state`)."""
    key = re.sub(r"[^A-Za-z0-9._-]", "__", NODES_STATE_KEY)  # as Dagster names the key's folder
    return get_defs_module_path_for_project(project_root) / _LOCAL_DEFS_STATE_DIR / key / "state"


def read_snapshot(path: Path | None) -> NodeSnapshot | None:
    """The snapshot at `path`; None (with the reason logged) when there is none or it is unreadable."""
    if path is None or not path.exists():
        logger.warning(
            "No Coalesce node snapshot yet, so no node assets. Run `dg utils refresh-defs-state` or the "
            "coalesce_environments_job (docs/node-assets.md)."
        )
        return None
    try:
        return NodeSnapshot.from_json(path.read_text())
    except ValueError as error:
        logger.error("Coalesce node snapshot %s not used: %s. Refresh it (docs/node-assets.md).", path, error)
        return None


def stored_snapshot_of(base_url: str) -> NodeSnapshot | None:
    """The stored snapshot if it was made for the account at `base_url`; None otherwise, quietly
    (a load that refreshes the snapshot then reads every environment it needs)."""
    path = local_state_path()
    try:
        snapshot = NodeSnapshot.from_json(path.read_text()) if path.exists() else None
    except ValueError:
        return None
    return snapshot if snapshot is not None and snapshot.base_url == base_url else None


def store_snapshot(snapshot: NodeSnapshot, instance: dg.DagsterInstance | None = None) -> Path:
    """Replace the stored snapshot (atomically: a definitions load never reads half a file)."""
    chosen = configured_snapshot_path()
    if chosen is None:  # Dagster's state folder, created as Dagster creates it (with its .gitignore)
        path = get_local_state_path(NODES_STATE_KEY, names.USER_PROJECT_ROOT)
    else:
        path = chosen
        path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as file:
        file.write(snapshot.to_json())
    Path(file.name).replace(path)
    storage = instance.defs_state_storage if instance is not None else None
    if storage is not None and chosen is None:
        latest = storage.get_latest_version(NODES_STATE_KEY)
        if latest is not None and latest != LOCAL_STATE_VERSION:
            # The component keeps its state in the instance's storage: upload a new version there.
            storage.upload_state_from_path(NODES_STATE_KEY, version=str(uuid.uuid4()), path=path)
        else:
            storage.set_latest_version(NODES_STATE_KEY, LOCAL_STATE_VERSION)
    return path
