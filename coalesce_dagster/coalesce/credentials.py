"""Warehouse credentials for starting Coalesce runs (docs/coalesce-api.md §7.1, §10.7).

`POST /scheduler/startRun` and `/scheduler/rerun` carry the Snowflake credentials the run uses in
`userCredentials`, unless the environment uses Snowflake OAuth. Real clients send one of:

    KeyPair  snowflakeUsername, snowflakeKeyPairKey (PEM), [snowflakeKeyPairPass],
             [snowflakeWarehouse], [snowflakeRole]
    Basic    snowflakeUsername, snowflakePassword (a Snowflake PAT works here too),
             [snowflakeWarehouse], [snowflakeRole]
    OAuth    nothing else

They are resolved, key by key, from explicit values (e.g. Dagster `EnvVar`s on a resource), then
`[sources.coalesce_source.credentials]` in `.dlt/secrets.toml` or its environment variables
`SOURCES__COALESCE_SOURCE__CREDENTIALS__<KEY>`. Secrets are read through `dlt.secrets` only; the
non-secret keys may also sit in `.dlt/config.toml`. Nothing configured means no `userCredentials`:
the environment may use OAuth, and Coalesce decides.

No secret value appears in a repr, a log line or an error message: errors name the key, never
its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import dlt

from ..configuration import ConfigurationError, env_var

AuthType = Literal["KeyPair", "Basic", "OAuth"]
AUTH_TYPES: tuple[AuthType, ...] = ("KeyPair", "Basic", "OAuth")

SECTION = "sources.coalesce_source.credentials"
KEYS = ("auth_type", "username", "password", "private_key", "private_key_passphrase", "warehouse", "role")
SECRET_KEYS = frozenset({"password", "private_key", "private_key_passphrase"})

_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+ )?PRIVATE KEY-----\n.+\n-----END ([A-Z0-9 ]+ )?PRIVATE KEY-----", re.DOTALL
)


class CredentialsError(ConfigurationError):
    """Warehouse credentials that cannot be used. The message names keys, never values."""


def _where(key: str) -> str:
    return f"[{SECTION}] {key} ({env_var(SECTION, key)})"


def _normalise_pem(key: str) -> str:
    """A PEM block with real newlines: dlt may hand over a TOML-escaped one (literal `\\n`)."""
    text = key.strip().replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n")
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


@dataclass(frozen=True, repr=False)
class WarehouseCredentials:
    """The `userCredentials` of a startRun or rerun body, checked when made.

    Build one with `key_pair`, `basic` or `oauth` (or the constructor). `repr` and `str` show
    the auth type, username, warehouse and role, and only whether each secret is set.
    """

    auth_type: AuthType
    username: str | None = None
    password: str | None = field(default=None, compare=False)
    private_key: str | None = field(default=None, compare=False)
    private_key_passphrase: str | None = field(default=None, compare=False)
    warehouse: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        for name in KEYS[1:]:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise CredentialsError(f"Warehouse credentials: {_where(name)} must be text.")
            if value is not None and not value.strip():
                object.__setattr__(self, name, None)  # blank means not given
        if self.private_key is not None:
            object.__setattr__(self, "private_key", _normalise_pem(self.private_key))
        problems = self._problems()
        if problems:
            raise CredentialsError(*problems)

    def _problems(self) -> list[str]:
        if self.auth_type not in AUTH_TYPES:
            return [
                f"Warehouse credentials: {_where('auth_type')} must be one of {', '.join(AUTH_TYPES)}, "
                f"got {self.auth_type!r}."
            ]
        needed: tuple[str, ...] = {
            "KeyPair": ("username", "private_key"),
            "Basic": ("username", "password"),
        }.get(self.auth_type, ())
        problems = [
            f"Warehouse credentials of type {self.auth_type} need {_where(name)}; it is not set."
            for name in needed
            if getattr(self, name) is None
        ]
        if (
            self.auth_type == "KeyPair"
            and self.private_key is not None
            and not _PEM.fullmatch(self.private_key)
        ):
            problems.append(
                f"Warehouse credentials: {_where('private_key')} is not a PEM private key: it must be a "
                "block from '-----BEGIN ... PRIVATE KEY-----' to '-----END ... PRIVATE KEY-----' (newlines "
                "may be written as \\n)."
            )
        return problems

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def key_pair(
        cls,
        username: str,
        private_key: str,
        passphrase: str | None = None,
        *,
        warehouse: str | None = None,
        role: str | None = None,
    ) -> WarehouseCredentials:
        return cls(
            "KeyPair",
            username=username,
            private_key=private_key,
            private_key_passphrase=passphrase,
            warehouse=warehouse,
            role=role,
        )

    @classmethod
    def basic(
        cls, username: str, password: str, *, warehouse: str | None = None, role: str | None = None
    ) -> WarehouseCredentials:
        """Username and password; a Snowflake programmatic access token works as the password."""
        return cls("Basic", username=username, password=password, warehouse=warehouse, role=role)

    @classmethod
    def oauth(cls) -> WarehouseCredentials:
        return cls("OAuth")

    # -- what is sent ---------------------------------------------------------------------------

    def to_body(self) -> dict[str, str]:
        """The `userCredentials` object, with exactly the keys real clients send (§10.7)."""
        body: dict[str, str] = {"snowflakeAuthType": self.auth_type}
        if self.auth_type == "OAuth":
            return body
        assert self.username is not None  # checked in __post_init__
        body["snowflakeUsername"] = self.username
        if self.auth_type == "KeyPair":
            assert self.private_key is not None
            body["snowflakeKeyPairKey"] = self.private_key
            if self.private_key_passphrase is not None:
                body["snowflakeKeyPairPass"] = self.private_key_passphrase
        else:
            assert self.password is not None
            body["snowflakePassword"] = self.password
        if self.warehouse is not None:
            body["snowflakeWarehouse"] = self.warehouse
        if self.role is not None:
            body["snowflakeRole"] = self.role
        return body

    def secret_values(self) -> tuple[str, ...]:
        """The secret values, for scrubbing them out of text that must never carry them."""
        values = (self.password, self.private_key, self.private_key_passphrase)
        return tuple(value for value in values if value)

    def __repr__(self) -> str:
        shown = [f"auth_type={self.auth_type!r}"]
        shown += [
            f"{name}={getattr(self, name)!r}"
            for name in ("username", "warehouse", "role")
            if getattr(self, name)
        ]
        shown += [f"{name}=<set>" for name in sorted(SECRET_KEYS) if getattr(self, name) is not None]
        return f"WarehouseCredentials({', '.join(shown)})"

    __str__ = __repr__


def _auth_type(raw: str | None, values: Mapping[str, str | None]) -> AuthType | None:
    if raw is None:
        # Not named: what was given says which kind it is.
        if values.get("private_key"):
            return "KeyPair"
        if values.get("password"):
            return "Basic"
        return None
    for auth_type in AUTH_TYPES:
        if raw.strip().replace("_", "").replace("-", "").lower() == auth_type.lower():
            return auth_type
    raise CredentialsError(
        f"Warehouse credentials: {_where('auth_type')} must be one of {', '.join(AUTH_TYPES)}, got {raw!r}."
    )


def _configured(key: str) -> str | None:
    value: object = dlt.secrets.get(f"{SECTION}.{key}")
    if value is None and key not in SECRET_KEYS:
        value = dlt.config.get(f"{SECTION}.{key}")
    return None if value is None or not str(value).strip() else str(value)


def resolve_warehouse_credentials(
    explicit: Mapping[str, str | None] | None = None,
) -> WarehouseCredentials | None:
    """The warehouse credentials to send with startRun/rerun, or None when none are configured.

    explicit: values for the keys of `[sources.coalesce_source.credentials]` (`auth_type`,
        `username`, `password`, `private_key`, `private_key_passphrase`, `warehouse`, `role`); each
        one given (not None or blank) wins over the configured one.
    Raises `CredentialsError` naming every missing or unusable key (never a value).
    """
    given = dict(explicit or {})
    unknown = sorted(set(given) - set(KEYS))
    if unknown:
        raise CredentialsError(
            f"Unknown warehouse credential keys {', '.join(unknown)}; the keys are {', '.join(KEYS)}."
        )
    values: dict[str, str | None] = {}
    for key in KEYS:
        value = given.get(key)
        values[key] = value if value is not None and str(value).strip() else _configured(key)
    auth_type = _auth_type(values["auth_type"], values)
    if auth_type is None:
        if values["username"] or values["private_key_passphrase"]:
            raise CredentialsError(
                f"Warehouse credentials are incomplete: {_where('username')} is set but neither "
                f"{_where('password')} nor {_where('private_key')} is, and {_where('auth_type')} is not "
                "set. Set a password (Basic) or a private key (KeyPair), or auth_type = 'OAuth'."
            )
        return None  # nothing configured: perhaps an OAuth environment
    if auth_type == "OAuth":
        return WarehouseCredentials.oauth()
    return WarehouseCredentials(
        auth_type,
        username=values["username"],
        password=values["password"] if auth_type == "Basic" else None,
        private_key=values["private_key"] if auth_type == "KeyPair" else None,
        private_key_passphrase=values["private_key_passphrase"] if auth_type == "KeyPair" else None,
        warehouse=values["warehouse"],
        role=values["role"],
    )


__all__ = [
    "AUTH_TYPES",
    "AuthType",
    "CredentialsError",
    "WarehouseCredentials",
    "resolve_warehouse_credentials",
]
