"""Dagster resources: the dlt runner and the Coalesce connection settings."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from pydantic import Field

from ..coalesce.client import CoalesceClient
from ..coalesce.regions import normalize_base_url
from ..coalesce.source import coalesce_source

TOKEN_HELP = (
    "No Coalesce access token is configured. Generate one in Coalesce (Deploy tab -> "
    "'Generate Access Token') and set it as `access_token` under [sources.coalesce_source] in "
    ".dlt/secrets.toml, or in the environment variable SOURCES__COALESCE_SOURCE__ACCESS_TOKEN. "
    "To try the project without an account, run the demo, which starts the bundled simulator."
)


class CoalesceConfigurationError(dg.Failure):
    """Coalesce settings are missing or unusable; the message says how to fix them."""

    def __init__(self, message: str) -> None:
        super().__init__(description=message, allow_retries=False)


class CoalesceResource(dg.ConfigurableResource):
    """Where Coalesce is and how to reach it.

    Leave the fields unset to use dlt configuration (`[sources.coalesce_source]` in `.dlt/`, or
    `SOURCES__COALESCE_SOURCE__*` variables), resolved when a run starts. To keep the token in a
    Dagster-managed variable instead, pass `access_token=dg.EnvVar("MY_VAR")`: never a plain string,
    which Dagster would show on the resource page.
    """

    base_url: Optional[str] = Field(
        default=None,
        description="Coalesce app URL or region alias; default: dlt config, else the US host.",
    )
    access_token: Optional[str] = Field(
        default=None, description="Coalesce API token; default: dlt secrets. Use dg.EnvVar."
    )
    page_size: Optional[int] = Field(
        default=None, description="Items per page for Coalesce list endpoints; default: dlt config."
    )

    def build_source(self, run_ids: Optional[Sequence[int]] = None) -> Any:
        """The dlt source for one run; resolves config and secrets now, not at import."""
        kwargs: dict[str, Any] = {"run_ids": run_ids}
        if self.page_size:
            kwargs["page_size"] = self.page_size
        if self.base_url:
            kwargs["base_url"] = normalize_base_url(self.base_url)
        if self.access_token:
            kwargs["access_token"] = self.access_token
        try:
            return coalesce_source(**kwargs)
        except ConfigFieldMissingException as missing:
            if "access_token" in missing.fields:
                raise CoalesceConfigurationError(TOKEN_HELP) from None
            raise


    def client(self) -> CoalesceClient:
        """A client for the sensor's own calls, with settings resolved now (not at import)."""
        base_url = self.base_url or dlt.config.get("sources.coalesce_source.base_url")
        token = self.access_token or dlt.secrets.get("sources.coalesce_source.access_token")
        if not token:
            raise CoalesceConfigurationError(TOKEN_HELP)
        return CoalesceClient(normalize_base_url(base_url), str(token))


def resource_defs() -> dict[str, Any]:
    return {"dagster_dlt": DagsterDltResource(), "coalesce": CoalesceResource()}
