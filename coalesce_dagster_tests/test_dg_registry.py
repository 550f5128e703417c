"""coalesce-dagster added to another dg project as components (docs/components.md), as a team with a
Dagster project of its own would: a scratch project in tmp_path with a venv of its own, this package
installed into it from a copy of its sources (no index, no download: the dependencies are this
checkout's environment, seen through a `.pth` file), then dg's own commands run with that venv's
interpreter against the simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import dagster as dg
import pytest
import yaml

from coalesce_dagster.defs.component import CoalesceMetadataComponent
from coalesce_dagster.defs.metadata import metadata_definitions
from coalesce_dagster.defs.nodes.component import CoalesceNodesComponent
from coalesce_dagster.defs.nodes.state import dagster_state_path
from coalesce_dagster_tests.project_copy import copy_from_repo

# dg's console script, run by the scratch venv's interpreter (the venv has no scripts of its own).
DG = "import sys; from dagster_dg_cli.cli import main; sys.argv[0] = 'dg'; sys.exit(main())"
# A step of the test: one interpreter start, Dagster and dlt imported, maybe a definitions load.
STEP_TIMEOUT_SECONDS = 120
# What `pip install` builds a wheel from: the package as the repo ships it.
PACKAGE_SOURCES = ("coalesce_dagster", "coalesce_simulator", "pyproject.toml", "README.md", "LICENSE")

SCRATCH_PYPROJECT = """\
[project]
name = "scratch"
version = "0.0.1"

[tool.dg]
directory_type = "project"

[tool.dg.project]
root_module = "scratch"
"""

SCRATCH_DEFINITIONS = """\
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
"""


def make_scratch_project(root: Path) -> Path:
    """The least dg needs of a project (`create-dagster project` writes more, and wants uv and an
    index), with this package installed into the project's own venv."""
    (root / "scratch" / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(SCRATCH_PYPROJECT)
    (root / "scratch" / "__init__.py").write_text("")
    (root / "scratch" / "defs" / "__init__.py").write_text("")
    (root / "scratch" / "definitions.py").write_text(SCRATCH_DEFINITIONS)
    venv.EnvBuilder(with_pip=False).create(root / ".venv")
    site_packages = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    # Dagster, dlt and the rest from this checkout's environment, after the venv's own packages.
    dependencies = Path(dg.__file__).resolve().parents[1]
    (site_packages / "dependencies.pth").write_text(f"{dependencies}\n")
    sources = root.parent / "coalesce-dagster-sources"
    copy_from_repo(sources, PACKAGE_SOURCES, ".local_defs_state")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(root / ".venv" / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-index", "--no-build-isolation", "--no-compile", str(sources)],
        capture_output=True, text=True, timeout=STEP_TIMEOUT_SECONDS,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    assert (site_packages / "coalesce_dagster" / "components.py").exists(), "pip installed elsewhere"
    return root


def scratch_environment(project: Path, dagster_home: Path) -> dict[str, str]:
    """This test's environment (the simulator's URL and token, a private DuckDB file and dlt
    folder), in the scratch venv, without what would point it back at this checkout: its dlt
    project dir, and the tests' own node snapshot path (the project's defs state is used instead)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DLT_PROJECT_DIR", "COALESCE_DAGSTER__NODES__SNAPSHOT_PATH", "PYTHONPATH")
    }
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    bin_dir = project / ".venv" / "bin"
    env.update(
        VIRTUAL_ENV=str(project / ".venv"),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        DAGSTER_HOME=str(dagster_home),
        COLUMNS="200",
    )
    return env


def dg_command(project: Path, env: dict[str, str], *args: str) -> str:
    """`dg <args>` in the scratch project; its standard output."""
    result = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-c", DG, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, f"dg {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


PATHS_PROBE = """
import json, os
from coalesce_dagster.configuration import names
from coalesce_dagster.defs.nodes.state import local_state_path
print(json.dumps({
    "dlt_project_dir": os.environ.get("DLT_PROJECT_DIR"),
    "duckdb_file": str(names.DEFAULT_DUCKDB_PATH),
    "pipelines_dir": str(names.pipelines_dir()),
    "node_snapshot": str(local_state_path()),
}))
"""


def package_paths(project: Path, env: dict[str, str]) -> dict[str, str | None]:
    """The files the installed package would use in `project` with none of them configured."""
    unset = ("DESTINATION__DUCKDB__CREDENTIALS", "COALESCE_DAGSTER_PIPELINES_DIR")
    result = subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-c", PATHS_PROBE],
        cwd=project,
        env={name: value for name, value in env.items() if name not in unset},
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.long(seconds=60)
@pytest.mark.timeout(8 * STEP_TIMEOUT_SECONDS)
def test_a_dg_project_lists_scaffolds_and_loads_both_components(simulator, tmp_path: Path):
    project = make_scratch_project(tmp_path / "scratch-project")
    env = scratch_environment(project, tmp_path / "dagster-home")

    listed = json.loads(
        dg_command(project, env, "list", "components", "--package", "coalesce_dagster", "--json")
    )
    keys = {component["key"] for component in listed["items"]}
    assert keys == {
        "coalesce_dagster.components.CoalesceMetadataComponent",
        "coalesce_dagster.components.CoalesceNodesComponent",
    }

    dg_command(
        project, env, "scaffold", "defs", "coalesce_dagster.components.CoalesceMetadataComponent",
        "coalesce_metadata", "--sensor", "running",
    )  # fmt: skip
    dg_command(
        project, env, "scaffold", "defs", "coalesce_dagster.components.CoalesceNodesComponent",
        "coalesce_nodes", "--environments", "Development",
    )  # fmt: skip
    defs_folder = project / "scratch" / "defs"
    assert "sensor: running" in (defs_folder / "coalesce_metadata" / "defs.yaml").read_text()
    nodes_yaml = yaml.safe_load((defs_folder / "coalesce_nodes" / "defs.yaml").read_text())
    # Only what was given: `orchestrate` left out defers to dlt config (an empty list would mean none).
    assert nodes_yaml["attributes"] == {"environments": ["Development"]}

    # The node snapshot: the one command of the guide that asks Coalesce for anything.
    dg_command(project, env, "utils", "refresh-defs-state")
    state = defs_folder / ".local_defs_state" / "CoalesceNodes" / "state"
    assert state.is_file()
    # Where the package keeps its files when nothing says otherwise: the project, not site-packages.
    assert package_paths(project, env) == {
        "dlt_project_dir": None,
        "duckdb_file": str(project / "coalesce.duckdb"),
        "pipelines_dir": str(project / ".dlt_pipelines"),
        "node_snapshot": str(state),  # where the daily sync refreshes it
    }

    requests_before_load = len(simulator.requests)
    listed_defs = json.loads(dg_command(project, env, "list", "defs", "--json"))
    assert len(simulator.requests) == requests_before_load, "loading the definitions called Coalesce"

    def from_component(section: str, folder: str) -> set[str]:
        return {
            entry.get("asset_key") or entry["name"]
            for entry in listed_defs[section]
            if entry.get("source", "").startswith(f"scratch/defs/{folder}/")
        }

    # The metadata load: what this project's code location builds for it, nothing left out.
    load = metadata_definitions()
    assert from_component("assets", "coalesce_metadata") == {
        key.to_user_string() for key in load.resolve_all_asset_keys()
    }
    assert from_component("schedules", "coalesce_metadata") == {s.name for s in load.schedules or []}
    assert from_component("sensors", "coalesce_metadata") == {s.name for s in load.sensors or []}
    assert from_component("jobs", "coalesce_metadata") == {j.name for j in load.jobs or []}
    # The nodes: every node of the environment the scaffold named, from the refreshed snapshot.
    (development,) = [i for i, e in simulator.state.environments.items() if e["name"] == "Development"]
    nodes = simulator.state.nodes[development].values()
    assert from_component("assets", "coalesce_nodes") == {node_key(node) for node in nodes}


def node_key(node: dict) -> str:
    """A node's asset key as the translator makes it: its table, source nodes under their environment."""
    table = "/".join([node["database"], node["schema"], node["name"]]).lower()
    return f"coalesce_source/development/{table}" if node["nodeType"] == "Source" else table


def test_orchestrate_left_out_defers_to_configuration_and_an_empty_list_builds_nowhere(monkeypatch):
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ORCHESTRATE", json.dumps(["Production"]))
    assert CoalesceNodesComponent().chosen_orchestrate() == ["Production"]
    assert CoalesceNodesComponent(orchestrate=[]).chosen_orchestrate() == []
    assert CoalesceNodesComponent(orchestrate=["2"]).chosen_orchestrate() == ["2"]


@pytest.mark.parametrize("management_type", ["VERSIONED_STATE_STORAGE", "LOCAL_FILESYSTEM"])
def test_the_node_component_asks_coalesce_nothing_while_dagster_dev_loads_it(
    simulator, monkeypatch, management_type
):
    # Dagster refreshes a state-backed component under `dagster dev` unless told not to: a refresh
    # asks Coalesce, so this component never lets a load do it, whatever `defs_state` says.
    from dagster._core.storage.defs_state.base import set_defs_state_storage
    from dagster.components.core.component_tree import ComponentTree

    monkeypatch.setenv("DAGSTER_IS_DEV_CLI", "1")
    monkeypatch.setenv("COALESCE_DAGSTER__NODES__ENVIRONMENTS", json.dumps(["1"]))
    monkeypatch.delenv("COALESCE_DAGSTER__NODES__SNAPSHOT_PATH", raising=False)
    component = CoalesceNodesComponent.resolve_from_dict({"defs_state": {"management_type": management_type}})
    # Where a refresh would write the snapshot: the checkout's defs folder. Were one made, it is removed
    # again, so that no later run reads what a failing build of this test left.
    state_folder = dagster_state_path(Path(__file__).resolve().parents[1]).parent.parent
    existed = state_folder.exists()
    try:
        with dg.instance_for_test() as instance, set_defs_state_storage(instance.defs_state_storage):
            component.build_defs(ComponentTree.for_test().load_context)
    finally:
        written = not existed and state_folder.exists()
        if written:
            shutil.rmtree(state_folder)
    assert simulator.requests == [] and not written


def test_the_node_component_refuses_state_that_would_be_refreshed_on_every_load():
    component = CoalesceNodesComponent.resolve_from_dict(
        {"defs_state": {"management_type": "LEGACY_CODE_SERVER_SNAPSHOTS"}}
    )
    with pytest.raises(ValueError, match="would ask Coalesce every time a code server loads"):
        _ = component.defs_state_config


def test_the_component_sets_the_default_statuses_over_configuration(monkeypatch):
    """The YAML's `schedules` and `sensor` win over dlt config; unset, dlt config decides."""
    monkeypatch.setenv("COALESCE_DAGSTER__SCHEDULES__DEFAULT_STATUS", "running")
    monkeypatch.setenv("COALESCE_DAGSTER__SENSOR__DEFAULT_STATUS", "running")
    context = dg.ComponentTree.for_test().load_context

    def statuses(component: CoalesceMetadataComponent) -> tuple[set[str], str]:
        defs = component.build_defs(context)
        sensor = next(s for s in defs.sensors or [] if s.name == "coalesce_run_status_sensor")
        return {s.default_status.value for s in defs.schedules or []}, sensor.default_status.value

    assert statuses(CoalesceMetadataComponent()) == ({"RUNNING"}, "RUNNING")
    assert statuses(CoalesceMetadataComponent(schedules="stopped", sensor="stopped")) == (
        {"STOPPED"},
        "STOPPED",
    )
    without_executor = CoalesceMetadataComponent(in_process_executor=False).build_defs(context)
    assert without_executor.executor is None
    assert CoalesceMetadataComponent().build_defs(context).executor is dg.in_process_executor
