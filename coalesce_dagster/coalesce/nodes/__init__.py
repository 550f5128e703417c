"""Coalesce's nodes, without Dagster: what the node assets are built from.

- `model`: nodes as typed records (`CoalesceNode`, its columns and tests), node lineage, and the
  `NodeSnapshot` the node assets are built from (JSON, versioned). Re-exported here.
- `column_lineage`: which node columns each column is computed from.
- `scope`: which environments of a snapshot are kept, for the account and environments configured now.
- `snapshot`: reading nodes from Coalesce (`fetch_node_snapshot`, and the `NodeCollector` of the
  environments sync). Imported on its own, as is `rereads`: the two modules here that make requests.
- `rereads`: which environments' nodes a sync reads again (a deploy since the last read, or the
  periodic full re-read).
"""

from .model import (
    READABLE_SNAPSHOT_VERSIONS,
    SNAPSHOT_VERSION,
    SOURCE_NODE_TYPE,
    CoalesceNode,
    ColumnRef,
    EnvironmentNodes,
    Lineage,
    NodeColumn,
    NodeRef,
    NodeSnapshot,
    NodeTest,
    SnapshotError,
    parse_node,
    resolve_lineage,
    select_environments,
)

__all__ = [
    "READABLE_SNAPSHOT_VERSIONS",
    "SNAPSHOT_VERSION",
    "SOURCE_NODE_TYPE",
    "CoalesceNode",
    "ColumnRef",
    "EnvironmentNodes",
    "Lineage",
    "NodeColumn",
    "NodeRef",
    "NodeSnapshot",
    "NodeTest",
    "SnapshotError",
    "parse_node",
    "resolve_lineage",
    "select_environments",
]
