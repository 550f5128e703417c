#!/usr/bin/env bash
# Set up and run the test suite (real HTTP against the simulator, real DuckDB, real Dagster).
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k sensor
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"
# One worker more than cores: several tests spend much of their time waiting on servers and
# subprocesses (the deployed topology, the README's commands).
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-$(( $(nproc) + 1 ))}" "$@"
