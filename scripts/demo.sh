#!/usr/bin/env bash
# Set up and run the main job: load every Coalesce asset into DuckDB and print what was loaded.
# With no Coalesce token configured it runs against the bundled simulator on 127.0.0.1.
#   ./scripts/demo.sh              load, print a summary
#   ./scripts/demo.sh --ui         load, then serve the Dagster UI on http://127.0.0.1:3000
#   ./scripts/demo.sh --simulator  use the simulator even when a token is configured
#   ./scripts/demo.sh --check      instead of loading: coalesce-dagster check (writes nothing)
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
exec .venv/bin/python -m coalesce_dagster.demo "$@"
