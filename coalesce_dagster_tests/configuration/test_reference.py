"""docs/configuration.md lists every key as the configuration package declares it, and
`.dlt/config.toml` commits what the docs say: a key added, renamed or given a new default without
the docs fails here, naming the row. Fast: the package and two files, no simulator."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

from coalesce_dagster.configuration import SECTIONS, TOKEN_ENV, env_var, names
from coalesce_dagster.configuration.reference import (
    SECRET,
    TABLE_HEADER,
    all_keys,
    section_keys,
    toml_value,
)
from coalesce_dagster_tests.project_copy import REPO_ROOT

DOCS = REPO_ROOT / "docs" / "configuration.md"
CONFIG_TOML = REPO_ROOT / ".dlt" / "config.toml"
KEY_COLUMNS = ("key", "default", "environment variable", "check")
DLT_TABLE_HEADER = "| key | committed value | environment variable | why |"
DLT_COLUMNS = ("key", "committed value", "environment variable")  # "why" is free text
# Sections whose keys are the project's own; every other key in .dlt/config.toml is dlt's.
PACKAGE = "the package"
PROJECT_SECTIONS = ("sources.coalesce_source", "coalesce_dagster")


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().removeprefix("|").removesuffix("|").split("|")]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the table that starts with `header`."""
    lines = text.splitlines()
    assert header in lines, f"no table starting {header!r}"
    rows = []
    for line in lines[lines.index(header) + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


def disagreements(
    expected: Sequence[Sequence[str]], documented: Sequence[Sequence[str]], header: str, against: str
) -> list[str]:
    """One line per row the docs get wrong, named by its key: missing, not a key, listed twice, a
    cell that differs from `expected` (whose rows hold the cells to compare, key first), or a row
    with more or fewer cells than the header."""
    columns = cells(header)
    wanted = {row[0]: row for row in expected}
    problems, seen = [], set()
    for row in documented:
        key = row[0]
        if key in seen:
            problems.append(f"{key}: listed twice")
            continue
        seen.add(key)
        if len(row) != len(columns):
            problems.append(f"{key}: {len(row)} cells, the header has {len(columns)}")
        elif key not in wanted:
            problems.append(f"{key}: in the docs but not in {against}")
        else:
            for column, have, want in zip(columns[1:], row[1:], wanted[key][1:]):
                if have != want:
                    problems.append(f"{key}: {column} is {have!r} in the docs, {want!r} in {against}")
    problems += [f"{key}: missing from the docs" for key in wanted if key not in seen]
    return problems


def committed(config: Mapping[str, Any], section: str = "") -> Iterator[tuple[str, str, Any]]:
    """(section, key, value) for every value in a parsed `.dlt/config.toml`, tables flattened."""
    for name, value in config.items():
        if isinstance(value, Mapping):
            yield from committed(value, f"{section}.{name}".lstrip("."))
        else:
            yield section, name, value


def is_the_projects(section: str) -> bool:
    return any(section == own or section.startswith(f"{own}.") for own in PROJECT_SECTIONS)


def committed_problems(config: Mapping[str, Any]) -> list[str]:
    """One line per key of the project's that `config` commits at something other than its
    default, that is no key the project reads, or that is a secret."""
    declared = {(section, name): (default, check) for section, name, default, check in section_keys()}
    secrets = {(key.section, key.name) for key in all_keys() if key.check.startswith(SECRET)}
    problems = []
    for section, name, value in committed(config):
        where = f"[{section}] {name} = {toml_value(value)}"
        if (section, name) in secrets:
            problems.append(f"{where}: a secret, committed")
        elif (section, name) in declared:
            default, check = declared[section, name]
            if check(value) != default:
                problems.append(f"{where}: not the default, {toml_value(default)}")
        elif is_the_projects(section):
            problems.append(f"{where}: no key the project reads (a typo?)")
    return problems


def dlt_rows(config: Mapping[str, Any]) -> list[list[str]]:
    """The dlt table's compared cells for every dlt key `config` commits."""
    return [
        [f"`[{section}] {name}`", f"`{toml_value(value)}`", f"`{env_var(section, name)}`"]
        for section, name, value in committed(config)
        if not is_the_projects(section)
    ]


def declared_rows() -> list[list[str]]:
    return [cells(key.row()) for key in all_keys()]


def test_every_key_is_listed_once_with_its_default_env_var_and_check():
    keys = all_keys()
    assert len({key.label for key in keys}) == len(keys), "a key is listed twice"
    assert len({key.env_var for key in keys}) == len(keys), "two keys share an environment variable"
    assert all(key.default and key.env_var and key.check for key in keys)
    labels = {key.label for key in keys}
    # Every key of every typed section, the token and dlt's working folders among them.
    assert sum(len(fields(section)) for section in SECTIONS) == len(list(section_keys()))
    assert {f"`[{section}] {name}`" for section, name, _, _ in section_keys()} <= labels
    token = next(key for key in keys if key.name == "access_token")
    assert (token.section, token.env_var, token.check) == ("sources.coalesce_source", TOKEN_ENV, SECRET)
    base_url = next(key for key in keys if key.name == "base_url")
    assert base_url.default == '`"https://app.coalescesoftware.io"`'
    assert base_url.env_var == "SOURCES__COALESCE_SOURCE__BASE_URL"
    assert "dlt's working folders (environment variable only)" in labels


def test_the_docs_list_every_key_as_the_package_declares_it():
    documented = table_rows(DOCS.read_text(), TABLE_HEADER)
    problems = disagreements(declared_rows(), documented, TABLE_HEADER, PACKAGE)
    assert not problems, (
        "docs/configuration.md's 'Every key' table disagrees with the configuration package "
        "(`python -m coalesce_dagster.configuration.reference` prints the table):\n" + "\n".join(problems)
    )


def test_the_docs_list_every_dlt_key_config_toml_commits():
    config = tomllib.loads(CONFIG_TOML.read_text())
    documented = table_rows(DOCS.read_text(), DLT_TABLE_HEADER)
    compared = [row[: len(DLT_COLUMNS)] for row in documented]
    problems = disagreements(dlt_rows(config), compared, " | ".join(DLT_COLUMNS), ".dlt/config.toml")
    assert not problems, "docs/configuration.md's table of dlt's keys disagrees with .dlt/config.toml:\n" + (
        "\n".join(problems)
    )
    assert all(len(row) == 4 and row[3] for row in documented), "a dlt key without its why"


def test_config_toml_commits_the_defaults_of_the_projects_keys():
    assert committed_problems(tomllib.loads(CONFIG_TOML.read_text())) == []


def test_the_checks_name_each_disagreement():
    """The checks above on doctored copies: each kind of disagreement is named by its row."""
    documented = table_rows(DOCS.read_text(), TABLE_HEADER)
    declared = declared_rows()
    assert disagreements(declared, documented, TABLE_HEADER, PACKAGE) == []
    page_size, timezone, lookback, warehouse = (
        "`[sources.coalesce_source] page_size`",
        "`[coalesce_dagster.schedules] timezone`",
        "`[coalesce_dagster.sensor] lookback_hours`",
        "`[coalesce_dagster.nodes] warehouse`",
    )
    doctored = []
    for row in documented:
        if row[0] == page_size:
            continue  # a key the docs forgot
        if row[0] == timezone:
            row = [row[0], '`"Europe/Berlin"`', *row[2:]]  # a wrong default
        if row[0] == lookback:
            row = [row[0], row[1], "`COALESCE_DAGSTER__LOOKBACK_HOURS`", row[3]]  # a wrong variable
        doctored.append(row)
        if row[0] == warehouse:
            doctored.append(row)  # listed twice
    doctored.append(["`[coalesce_dagster] no_such_key`", "`1`", "`COALESCE_DAGSTER__NO_SUCH_KEY`", "text"])
    assert sorted(disagreements(declared, doctored, TABLE_HEADER, PACKAGE)) == sorted(
        [
            f"{page_size}: missing from the docs",
            f"""{timezone}: default is '`"Europe/Berlin"`' in the docs, '`"UTC"`' in the package""",
            f"{lookback}: environment variable is '`COALESCE_DAGSTER__LOOKBACK_HOURS`' in the docs, "
            "'`COALESCE_DAGSTER__SENSOR__LOOKBACK_HOURS`' in the package",
            f"{warehouse}: listed twice",
            "`[coalesce_dagster] no_such_key`: in the docs but not in the package",
        ]
    )


def test_the_config_toml_check_names_what_it_must_not_commit():
    config = tomllib.loads(
        """
        [sources.coalesce_source]
        page_size = 100
        access_token = "not-a-real-token"
        pagesize = 250
        nodes_timeout = 180
        [coalesce_dagster.nodes]
        environments = []
        [extract]
        workers = 4
        """
    )
    assert committed_problems(config) == [
        "[sources.coalesce_source] page_size = 100: not the default, 250",
        '[sources.coalesce_source] access_token = "not-a-real-token": a secret, committed',
        "[sources.coalesce_source] pagesize = 250: no key the project reads (a typo?)",
    ]
    assert dlt_rows(config) == [["`[extract] workers`", "`4`", "`EXTRACT__WORKERS`"]]


def test_an_installed_package_lists_the_same_keys(monkeypatch, tmp_path):
    """Installed into another dg project, the data lives in that project's folder, not beside the
    package (`names.USER_PROJECT_ROOT`): the table is the same, with nothing resolved against the
    package's own folder."""
    documented = [key.row() for key in all_keys()]
    monkeypatch.setattr(names, "DEFAULT_DUCKDB_PATH", tmp_path / "coalesce.duckdb")
    monkeypatch.setattr(names, "DEFAULT_PIPELINES_DIR", tmp_path / ".dlt_pipelines")
    assert [key.row() for key in all_keys()] == documented
