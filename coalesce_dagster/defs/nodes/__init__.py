"""Coalesce's nodes as Dagster assets: the node concern of the code location.

What it offers (all re-exported here):

- `CoalesceNodesComponent`: the state-backed component (`component.py`) configured in
  `dg_defs/coalesce_nodes/defs.yaml`; `load_node_definitions` builds the same assets in Python.
- `DagsterCoalesceTranslator`, `CoalesceNodeProps`: map a node to an `AssetSpec` (`translator.py`);
  subclass it to change keys, groups, metadata, automation or freshness.
- `upstream_tables_updated`: an automation condition that looks through source nodes to the tables
  they read (`automation.py`).
- `CoalesceNodeRunConfig`: the run config of a build Dagster starts in Coalesce (`runs.py`).

Inside: `state.py` (where the snapshot lives, `[coalesce_dagster.nodes]`), `assets.py` (observed vs
orchestrated environments), `checks.py` (`coalesce_run` and Coalesce's tests as asset checks),
`events.py` (Coalesce's own runs reported by the run-status sensor), `runs.py` (a Coalesce run
started and followed from Dagster). The Coalesce side, without Dagster, is `coalesce/nodes/`.
"""

from .automation import upstream_tables_updated
from .component import CoalesceNodesComponent, load_node_definitions
from .runs import CoalesceNodeRunConfig
from .translator import CoalesceNodeProps, DagsterCoalesceTranslator

__all__ = [
    "CoalesceNodeProps",
    "CoalesceNodeRunConfig",
    "CoalesceNodesComponent",
    "DagsterCoalesceTranslator",
    "load_node_definitions",
    "upstream_tables_updated",
]
