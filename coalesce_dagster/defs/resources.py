"""Dagster resources: the dlt runner and the Coalesce connection settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource
from dlt.extract.source import DltSource
from pydantic import Field

from ..coalesce.client import CoalesceClient
from ..coalesce.credentials import WarehouseCredentials, resolve_warehouse_credentials
from ..coalesce.nodes.snapshot import NodeCollector
from ..coalesce.run_control import CoalesceRunControl
from ..coalesce.source import coalesce_source
from ..configuration import ConfigurationError, resolve_base_url


class CoalesceConfigurationError(dg.Failure):
    """Coalesce settings are missing or unusable; the message says how to fix them."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


class WarehouseCredentialsConfig(dg.Config):
    """Warehouse credentials Coalesce runs with (Snowflake KeyPair, Basic or OAuth). Every field is
    optional and falls back to `[sources.coalesce_source.credentials]`; give secrets as `dg.EnvVar`,
    which Dagster never shows."""

    auth_type: str | None = Field(default=None, description="KeyPair, Basic or OAuth.")
    username: str | None = None
    password: str | None = Field(default=None, description="Basic: the password or a Snowflake PAT.")
    private_key: str | None = Field(default=None, description="KeyPair: the PEM private key.")
    private_key_passphrase: str | None = None
    warehouse: str | None = None
    role: str | None = None


class CoalesceResource(dg.ConfigurableResource):
    """Where Coalesce is and how to reach it.

    Leave the fields unset to use dlt configuration (`[sources.coalesce_source]` in `.dlt/`, or
    `SOURCES__COALESCE_SOURCE__*` variables), resolved when a run or a sensor tick starts. To keep
    the token in a Dagster-managed variable instead, pass `access_token=dg.EnvVar("MY_VAR")`: never
    a plain string, which Dagster would show on the resource page. Loads and the sensor resolve the
    connection the same way (`configuration/connection.py`).
    """

    base_url: str | None = Field(
        default=None,
        description="Coalesce app URL or region alias; default: dlt config, else the US host.",
    )
    access_token: str | None = Field(
        default=None, description="Coalesce API token; default: dlt secrets. Use dg.EnvVar."
    )
    page_size: int | None = Field(
        default=None, description="Items per page for Coalesce list endpoints; default: dlt config."
    )
    org_id: str | None = Field(
        default=None,
        description="Coalesce organisation id, sent with cancelRun when set (some accounts want it).",
    )
    warehouse_credentials: WarehouseCredentialsConfig | None = Field(
        default=None,
        description="Warehouse credentials for runs started from Dagster; default: "
        "[sources.coalesce_source.credentials] in dlt secrets. Give secrets as dg.EnvVar.",
    )

    def build_source(
        self, run_ids: Sequence[int] | None = None, node_collector: NodeCollector | None = None
    ) -> DltSource:
        """The dlt source for one run; resolves config and secrets now, not at import."""
        try:
            return coalesce_source(
                base_url=self.base_url,
                access_token=self.access_token,
                page_size=self.page_size,
                run_ids=run_ids,
                node_collector=node_collector,
            )
        except ConfigurationError as error:
            raise CoalesceConfigurationError(str(error)) from None

    def resolved_base_url(self) -> str:
        """The canonical host this resource reaches (no token needed, no request made)."""
        try:
            return resolve_base_url(self.base_url)
        except ConfigurationError as error:
            raise CoalesceConfigurationError(str(error)) from None

    def client(self) -> CoalesceClient:
        """A client for the sensor's own calls, with settings resolved now (not at import)."""
        try:
            return CoalesceClient.from_config(self.base_url, self.access_token)
        except ConfigurationError as error:
            raise CoalesceConfigurationError(str(error)) from None

    def run_control(self) -> CoalesceRunControl:
        """Starts, follows and cancels runs for the configured account (resolved now)."""
        try:
            return CoalesceRunControl.from_config(self.base_url, self.access_token)
        except ConfigurationError as error:
            raise CoalesceConfigurationError(str(error)) from None

    def credentials(self) -> WarehouseCredentials | None:
        """The warehouse credentials for startRun and rerun; None: the environment must use OAuth."""
        explicit = self.warehouse_credentials.model_dump() if self.warehouse_credentials else None
        try:
            return resolve_warehouse_credentials(explicit)
        except ConfigurationError as error:
            raise CoalesceConfigurationError(str(error)) from None


# One object, so the definitions of the node assets (which carry it, to load on their own) and the
# code location's merge: Dagster merges resources under one key only when they are the same object.
DEFAULT_COALESCE_RESOURCE = CoalesceResource()


def resource_defs() -> dict[str, Any]:
    return {"dagster_dlt": DagsterDltResource(), "coalesce": DEFAULT_COALESCE_RESOURCE}
