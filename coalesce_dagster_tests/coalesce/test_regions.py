import pytest

from coalesce_dagster.coalesce.regions import (
    DEFAULT_BASE_URL,
    REGION_HOSTS,
    InvalidBaseUrlError,
    canonical_base_url,
)


@pytest.mark.parametrize(
    "configured, expected",
    [
        (None, DEFAULT_BASE_URL),
        ("", DEFAULT_BASE_URL),
        ("us", "https://app.coalescesoftware.io"),
        ("EU", "https://app.eu.coalescesoftware.io"),
        ("us-east-1", "https://app.us-east-1.aws.coalescesoftware.io"),
        ("app.eu.coalescesoftware.io", "https://app.eu.coalescesoftware.io"),
        ("https://app.coalescesoftware.io/", "https://app.coalescesoftware.io"),
        ("https://app.coalescesoftware.io/api/v1", "https://app.coalescesoftware.io"),
        ("https://app.coalescesoftware.io/api/v1/", "https://app.coalescesoftware.io"),
        ("https://app.coalescesoftware.io/api", "https://app.coalescesoftware.io"),
        ("https://abcompany.app.eu.coalescesoftware.io", "https://abcompany.app.eu.coalescesoftware.io"),
        (
            "  https://app.australia-southeast1.gcp.coalescesoftware.io/API/V1  ",
            "https://app.australia-southeast1.gcp.coalescesoftware.io",
        ),
        ("http://127.0.0.1:8765/api/v1", "http://127.0.0.1:8765"),
    ],
)
def test_canonical_base_url(configured, expected):
    assert canonical_base_url(configured) == expected


def test_every_region_alias_is_an_https_coalesce_host():
    for alias, host in REGION_HOSTS.items():
        assert canonical_base_url(alias) == f"https://{host}"
        assert host.startswith("app.") and host.endswith(".coalescesoftware.io"), alias


@pytest.mark.parametrize("bad", ["ftp://app.coalescesoftware.io", "https://", "https:///api/v1"])
def test_unusable_base_url_names_the_regions(bad):
    with pytest.raises(InvalidBaseUrlError, match="region alias"):
        canonical_base_url(bad)


@pytest.mark.parametrize("typo", ["eu-nowhere", "europe", "us_east_1"])
def test_an_unknown_region_alias_is_named_at_once_with_the_valid_ones(typo):
    with pytest.raises(InvalidBaseUrlError) as raised:
        canonical_base_url(typo)
    message = str(raised.value)
    assert f"{typo!r} is not a known Coalesce region alias" in message
    assert all(alias in message for alias in REGION_HOSTS)
