"""Warehouse credentials for startRun/rerun: what is sent, where it is read from, and that no secret
shows in a repr or an error (docs/coalesce-api.md §10.7)."""

from __future__ import annotations

import pytest

from coalesce_dagster.coalesce.credentials import (
    KEYS,
    CredentialsError,
    WarehouseCredentials,
    resolve_warehouse_credentials,
)

PEM = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nTUlJQ2FrZWtleQ==\nc2Vjb25kbGluZQ==\n-----END ENCRYPTED PRIVATE KEY-----"
SECRETS = ("pa55-word", "TUlJQ2FrZWtleQ==", "phrase-x")


@pytest.fixture(autouse=True)
def _no_configured_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in KEYS:
        monkeypatch.delenv(f"SOURCES__COALESCE_SOURCE__CREDENTIALS__{key.upper()}", raising=False)


def _set(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(f"SOURCES__COALESCE_SOURCE__CREDENTIALS__{key.upper()}", value)


def test_bodies_have_exactly_the_keys_real_clients_send() -> None:
    key_pair = WarehouseCredentials.key_pair("LOADER", PEM, "phrase-x", warehouse="WH", role="R")
    assert key_pair.to_body() == {
        "snowflakeAuthType": "KeyPair",
        "snowflakeUsername": "LOADER",
        "snowflakeKeyPairKey": PEM,
        "snowflakeKeyPairPass": "phrase-x",
        "snowflakeWarehouse": "WH",
        "snowflakeRole": "R",
    }
    assert WarehouseCredentials.key_pair("LOADER", PEM).to_body() == {
        "snowflakeAuthType": "KeyPair",
        "snowflakeUsername": "LOADER",
        "snowflakeKeyPairKey": PEM,
    }
    assert WarehouseCredentials.basic("LOADER", "pa55-word", role="R").to_body() == {
        "snowflakeAuthType": "Basic",
        "snowflakeUsername": "LOADER",
        "snowflakePassword": "pa55-word",
        "snowflakeRole": "R",
    }
    assert WarehouseCredentials.oauth().to_body() == {"snowflakeAuthType": "OAuth"}


def test_repr_and_str_never_show_a_secret() -> None:
    for credentials in (
        WarehouseCredentials.key_pair("LOADER", PEM, "phrase-x", warehouse="WH"),
        WarehouseCredentials.basic("LOADER", "pa55-word"),
    ):
        for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
            assert "LOADER" in text and not any(secret in text for secret in SECRETS)
    assert "password=<set>" in repr(WarehouseCredentials.basic("LOADER", "pa55-word"))


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (
            lambda: WarehouseCredentials("KeyPair", username="U", private_key_passphrase="phrase-x"),
            "private_key",
        ),
        (lambda: WarehouseCredentials("KeyPair", private_key=PEM), "username"),
        (lambda: WarehouseCredentials("Basic", username="U"), "password"),
        (lambda: WarehouseCredentials("Basic", username="  ", password="pa55-word"), "username"),
        (lambda: WarehouseCredentials.key_pair("U", "TUlJQ2FrZWtleQ== not a pem"), "not a PEM private key"),
    ],
)
def test_validation_names_the_field_never_the_value(make, named: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        make()
    message = str(refused.value)
    assert named in message and "SOURCES__COALESCE_SOURCE__CREDENTIALS__" in message
    assert not any(secret in message for secret in SECRETS)


def test_an_escaped_pem_gets_real_newlines(monkeypatch: pytest.MonkeyPatch) -> None:
    escaped = PEM.replace("\n", "\\n")  # as a TOML basic string or an environment variable may carry it
    assert "\n" not in escaped
    assert WarehouseCredentials.key_pair("U", escaped).private_key == PEM
    assert WarehouseCredentials.key_pair("U", PEM.replace("\n", "\r\n") + "\n").private_key == PEM
    _set(monkeypatch, username="U", private_key=escaped)
    resolved = resolve_warehouse_credentials()
    assert resolved is not None and resolved.auth_type == "KeyPair" and resolved.private_key == PEM


def test_nothing_configured_means_no_credentials() -> None:
    assert resolve_warehouse_credentials() is None
    assert resolve_warehouse_credentials({"warehouse": None, "password": "  "}) is None


def test_resolution_explicit_first_then_dlt_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, username="FROM_ENV", password="pa55-word", warehouse="ENV_WH")
    from_env = resolve_warehouse_credentials()
    assert from_env == WarehouseCredentials.basic("FROM_ENV", "pa55-word", warehouse="ENV_WH")
    assert from_env is not None and from_env.password == "pa55-word"
    explicit = resolve_warehouse_credentials({"username": "EXPLICIT", "role": "R", "warehouse": None})
    assert explicit is not None
    assert (explicit.username, explicit.password, explicit.warehouse, explicit.role) == (
        "EXPLICIT",
        "pa55-word",
        "ENV_WH",
        "R",
    )
    oauth = resolve_warehouse_credentials({"auth_type": "oauth"})
    assert oauth is not None and oauth.to_body() == {"snowflakeAuthType": "OAuth"}


def test_bare_variables_of_other_tools_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PASSWORD", "CREDENTIALS__PASSWORD", "SOURCES__CREDENTIALS__PASSWORD", "USERNAME"):
        monkeypatch.setenv(name, "pa55-word")
    assert resolve_warehouse_credentials() is None


def test_incomplete_or_unknown_configuration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CredentialsError, match="Unknown warehouse credential keys passwd"):
        resolve_warehouse_credentials({"passwd": "pa55-word"})
    with pytest.raises(CredentialsError, match="auth_type"):
        resolve_warehouse_credentials({"auth_type": "Kerberos"})
    _set(monkeypatch, username="U")
    with pytest.raises(CredentialsError) as refused:
        resolve_warehouse_credentials()
    assert "password" in str(refused.value) and "private_key" in str(refused.value)
    _set(monkeypatch, auth_type="KeyPair", password="pa55-word")
    with pytest.raises(CredentialsError) as refused:
        resolve_warehouse_credentials()
    assert "private_key" in str(refused.value) and "pa55-word" not in str(refused.value)
