"""coalesce-dagster's components, as dg's registry lists them (the `dagster_dg_cli.registry_modules`
entry point in pyproject.toml): `dg list components` shows them in any project whose environment has
this package installed, and `dg scaffold defs coalesce_dagster.components.<Name> <path>` writes their
`defs.yaml` (docs/components.md).
"""

from .defs.component import CoalesceMetadataComponent
from .defs.nodes.component import CoalesceNodesComponent

__all__ = ["CoalesceMetadataComponent", "CoalesceNodesComponent"]
