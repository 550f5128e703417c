"""Coalesce deployment hosts and base-URL normalisation.

Coalesce runs one app host per region (see docs/coalesce-api.md §1). Users copy whatever URL they
log in with, so we accept a region alias, a bare host, a full URL, and URLs that already end in
`/api` or `/api/v1`, and reduce all of them to the host root the API paths are appended to.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_BASE_URL = "https://app.coalescesoftware.io"

# Region alias -> app host. Aliases are what the Coalesce docs call the deployment's region.
REGION_HOSTS: dict[str, str] = {
    "us": "app.coalescesoftware.io",
    "eu": "app.eu.coalescesoftware.io",
    "australia-southeast1": "app.australia-southeast1.gcp.coalescesoftware.io",
    "northamerica-northeast1": "app.northamerica-northeast1.gcp.coalescesoftware.io",
    "us-east-1": "app.us-east-1.aws.coalescesoftware.io",
    "us-east-1-privatelink": "app.us-east-1.aws.privatelink.coalescesoftware.io",
    "us-west-2": "app.us-west-2.aws.coalescesoftware.io",
    "us-west-2-privatelink": "app.us-west-2.aws.privatelink.coalescesoftware.io",
    "centralus": "app.centralus.azure.coalescesoftware.io",
    "westus2": "app.westus2.azure.coalescesoftware.io",
    "eastus2": "app.eastus2.azure.coalescesoftware.io",
    "eu-west-2": "app.eu-west-2.aws.coalescesoftware.io",
    "europe-west1": "app.europe-west1.gcp.coalescesoftware.io",
}

_API_SUFFIXES = ("/api/v1", "/api")


class InvalidBaseUrlError(ValueError):
    """The configured Coalesce base URL cannot be used."""


def canonical_base_url(value: str | None) -> str:
    """Return the scheme + host (+ port) root that `/api/v1/...` and `/scheduler/...` hang off.

    >>> canonical_base_url("eu")
    'https://app.eu.coalescesoftware.io'
    >>> canonical_base_url("https://acme.app.coalescesoftware.io/api/v1/")
    'https://acme.app.coalescesoftware.io'
    """
    raw = (value or "").strip()
    if not raw:
        return DEFAULT_BASE_URL
    alias = REGION_HOSTS.get(raw.lower())
    if alias:
        return f"https://{alias}"
    if "://" not in raw:
        if "." not in raw and ":" not in raw and raw.lower() != "localhost":
            # Neither an alias nor a host name: a mistyped alias such as "eu-nowhere". Saying so
            # now beats retrying a DNS lookup of it.
            raise InvalidBaseUrlError(
                f"{value!r} is not a known Coalesce region alias. Use one of "
                f"{', '.join(sorted(REGION_HOSTS))}, or the URL you log in to Coalesce with."
            )
        raw = f"https://{raw}"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidBaseUrlError(
            f"Coalesce base_url {value!r} is not a URL. Use the URL you log in to Coalesce with, "
            f"e.g. {DEFAULT_BASE_URL}, or a region alias: {', '.join(sorted(REGION_HOSTS))}."
        )
    path = parts.path.rstrip("/")
    for suffix in _API_SUFFIXES:
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))
