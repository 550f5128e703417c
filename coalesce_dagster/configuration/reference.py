"""Every key the project reads, once: its section, default, environment variable and check.

The typed sections (`sections.py`) describe their own keys; the few keys resolved elsewhere (the
access token, the warehouse credentials for started runs, the DuckDB file, dlt's working folders)
are described here beside them. docs/configuration.md's "Every key" table is these rows, and a test
fails when the two disagree; `python -m coalesce_dagster.configuration.reference` prints the table.

dlt's own keys that the project sets in `.dlt/config.toml` (`[runtime]`, `[extract]`,
`[normalize]`, ...) are not here: dlt defines and checks them. The docs list them in a table of
their own, which the same test holds to `.dlt/config.toml`'s committed values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from . import names
from .connection import TOKEN_ENV, TOKEN_KEY
from .sections import SECTIONS, Check, env_var

TABLE_HEADER = "| key | default | environment variable | check |"

SECRET = "a secret: in `.dlt/secrets.toml` or the environment variable only"
# What each warehouse credential for started runs accepts (`coalesce/credentials.py`, by key); a
# key of `SECRET_KEYS` is also said to be a secret.
_CREDENTIAL_CHECKS = {
    "auth_type": "KeyPair, Basic or OAuth; unset: KeyPair with a private key, Basic with a password",
    "username": "text",
    "password": "text, for Basic",
    "private_key": "a PEM block, for KeyPair",
    "private_key_passphrase": "text, for KeyPair",
    "warehouse": "text",
    "role": "text",
}


@dataclass(frozen=True)
class Key:
    """One configuration key. `section` is None for a setting with an environment variable only."""

    section: str | None
    name: str
    default: str  # as written in the docs: a TOML value in backticks, or words
    env_var: str
    check: str

    @property
    def label(self) -> str:
        if self.section is None:
            return f"{self.name} (environment variable only)"
        return f"`[{self.section}] {self.name}`"

    def row(self) -> str:
        return f"| {self.label} | {self.default} | `{self.env_var}` | {self.check} |"


def toml_value(value: Any) -> str:
    """`value` as it would be written in `.dlt/config.toml` (a float that is whole, without `.0`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(entry) for entry in value) + "]"
    return json.dumps(str(value))


def section_keys() -> Iterator[tuple[str, str, Any, Check]]:
    """(section, key, default, check) for every key of the typed sections."""
    for section in SECTIONS:
        for key in fields(section):
            yield section.SECTION, key.name, key.default, key.metadata["check"]


def all_keys() -> list[Key]:
    """Every key the project reads, in the order the docs list them."""
    # Imported here: the credentials module (the Coalesce client layer) imports this package.
    from ..coalesce.credentials import KEYS, SECRET_KEYS
    from ..coalesce.credentials import SECTION as CREDENTIALS

    token_section, token_name = TOKEN_KEY.rsplit(".", 1)
    token = Key(token_section, token_name, "none: loads and sensor ticks need one", TOKEN_ENV, SECRET)
    keys = [
        Key(section, name, f"`{toml_value(default)}`", env_var(section, name), check.accepts)
        for section, name, default, check in section_keys()
    ]
    keys.insert(1, token)  # after base_url, before the page sizes: the connection in one place
    keys += [
        Key(
            CREDENTIALS,
            key,
            "none",
            env_var(CREDENTIALS, key),
            f"{SECRET}; {_CREDENTIAL_CHECKS[key]}" if key in SECRET_KEYS else _CREDENTIAL_CHECKS[key],
        )
        for key in KEYS
    ]
    keys += [
        Key(
            "destination.duckdb",
            "credentials",
            f"`{names.DEFAULT_DUCKDB_PATH.name}` at the project root",
            "DESTINATION__DUCKDB__CREDENTIALS",
            "a DuckDB file path, or dlt's credentials section for DuckDB",
        ),
        Key(
            None,
            "dlt's working folders",
            f"`{names.DEFAULT_PIPELINES_DIR.name}` at the project root",
            names.PIPELINES_DIR_ENV,
            "a folder path",
        ),
    ]
    return keys


def table() -> str:
    """docs/configuration.md's "Every key" table."""
    return "\n".join([TABLE_HEADER, "|---|---|---|---|", *(key.row() for key in all_keys())])


if __name__ == "__main__":
    print(table())
