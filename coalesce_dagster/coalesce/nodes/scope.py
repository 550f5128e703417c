"""Which environments of a stored node snapshot become node assets now, and which Dagster may build.

A snapshot outlives the configuration it was made for: the project can be pointed at another
Coalesce account, or an environment dropped from `[coalesce_dagster.nodes] environments`, after it
was written. So the snapshot is never trusted on its own:

* only environments configured *now* are kept, matched by id or name as the configuration names
  them; a snapshot environment no longer configured is left out (no refresh needed);
* a snapshot made for another account (its canonical base URL differs from the configured one)
  yields nothing: its environment ids mean other environments, or none, in this account;
* a snapshot written before snapshots recorded their account (version 1) belongs to an unknown
  account: its configured environments are shown, observed only, never built from Dagster;
* Dagster may start Coalesce runs only in environments named in `orchestrate` (observe-only is the
  default): starting work in Coalesce is always an explicit choice.

Each reason to leave something out is one sentence in `notes`, saying how to refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .model import EnvironmentNodes, NodeSnapshot, select_environments

REFRESH_HELP = (
    "Refresh the snapshot with `dg utils refresh-defs-state` or the coalesce_environments_job "
    "(docs/node-assets.md)."
)


@dataclass(frozen=True)
class NodeScope:
    """The snapshot's environments to show, and the ids of those Dagster may build."""

    environments: tuple[EnvironmentNodes, ...] = ()
    orchestrated: frozenset[str] = frozenset()
    notes: list[str] = field(default_factory=list)

    def is_orchestrated(self, environment: EnvironmentNodes) -> bool:
        return environment.id in self.orchestrated


def scope_snapshot(
    snapshot: NodeSnapshot,
    *,
    base_url: str | None,
    environments: Sequence[str],
    orchestrate: Sequence[str] = (),
) -> NodeScope:
    """The part of `snapshot` that the configuration (account `base_url`, `environments`,
    `orchestrate`, each by id or name) asks for now. `base_url` None: the configured one is unusable."""
    notes: list[str] = []
    held = ", ".join(repr(env.name) for env in snapshot.environments) or "no environment"
    if not snapshot.environments:
        return NodeScope(notes=notes)
    if not environments:
        notes.append(
            f"No Coalesce environment is configured for node assets ([coalesce_dagster.nodes] "
            f"environments), so the stored snapshot's {snapshot.node_count} nodes of {held} are left out."
        )
        return NodeScope(notes=notes)
    known_account = snapshot.base_url is not None
    if known_account and snapshot.base_url != base_url:
        notes.append(
            f"The node snapshot was made for the Coalesce account at {snapshot.base_url}, but the project "
            f"is configured for {base_url or 'an unusable base_url'}: its {snapshot.node_count} nodes of "
            f"{held} are left out. {REFRESH_HELP}"
        )
        return NodeScope(notes=notes)
    listed = [{"id": env.id, "name": env.name} for env in snapshot.environments]
    chosen, unmatched = select_environments(listed, environments)
    chosen_ids = [env_id for env_id, _ in chosen]
    kept = tuple(env for env in snapshot.environments if env.id in chosen_ids)
    dropped = [env for env in snapshot.environments if env.id not in chosen_ids]
    if dropped:
        names = ", ".join(f"{env.name!r} ({env.id})" for env in dropped)
        notes.append(
            f"Node snapshot environment(s) {names} are no longer in [coalesce_dagster.nodes] "
            "environments; their node assets are left out."
        )
    if unmatched:
        notes.append(
            f"[coalesce_dagster.nodes] environments {', '.join(map(repr, unmatched))} are not in the "
            f"node snapshot (it holds {held}), so they have no node assets yet. {REFRESH_HELP}"
        )
    orchestrated: set[str] = set()
    if orchestrate:
        wanted, not_shown = select_environments([{"id": e.id, "name": e.name} for e in kept], orchestrate)
        if not_shown:
            notes.append(
                f"[coalesce_dagster.nodes] orchestrate names {', '.join(map(repr, not_shown))}, which is "
                "not among the node environments shown; Dagster builds nothing there."
            )
        if known_account:
            orchestrated = {env_id for env_id, _ in wanted}
        elif wanted:
            notes.append(
                "The node snapshot does not record which Coalesce account it was made for (it predates "
                "that record), so its nodes are observed only and Dagster starts no Coalesce run for "
                f"them. {REFRESH_HELP}"
            )
    return NodeScope(environments=kept, orchestrated=frozenset(orchestrated), notes=notes)
