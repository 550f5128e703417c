"""A throwaway copy of the project, to run its commands as a newcomer would without touching the
developer's own files (`coalesce_demo.duckdb`, `.dagster_home/`, `.dlt/secrets.toml`).

The copy shares the project's `.venv` (a symlink: installing again would take minutes) and holds
everything else the commands read. Commands run in it import the copy's package, because Python puts
the working directory first on `sys.path`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COPIED = ("coalesce_dagster", "coalesce_simulator", "benchmarks", "examples", "scripts", "pyproject.toml", "constraints.txt", "dagster.yaml",
          "workspace.yaml", "README.md")  # fmt: skip
# Only the committed dlt settings: a developer's secrets.toml must not leak into a newcomer's run.
COPIED_DLT = ("config.toml",)


def copy_from_repo(target: Path, names: tuple[str, ...], *ignored: str) -> None:
    """Copy these files and folders of the checkout into `target` (no caches, nor `ignored`)."""
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *ignored)
    for name in names:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)


def make_project_copy(target: Path) -> Path:
    copy_from_repo(target, COPIED, "results")
    (target / ".dlt").mkdir()
    for name in COPIED_DLT:
        shutil.copy2(REPO_ROOT / ".dlt" / name, target / ".dlt" / name)
    (target / ".venv").symlink_to(REPO_ROOT / ".venv")
    return target


def newcomer_environment(**extra: str) -> dict[str, str]:
    """The environment of someone who has configured nothing: none of the variables the test
    fixtures set to isolate themselves, no token, no destination override."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            (
                "SOURCES__",
                "DESTINATION__",
                "COALESCE_DAGSTER",
                "RUNTIME__",
                "NORMALIZE__",
                "DAGSTER_HOME",
                "DLT_",
                "ACCESS_TOKEN",
                "PYTEST_",
                "EXTRACT__",
            )
        )
    }
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env.update(extra)
    return env
