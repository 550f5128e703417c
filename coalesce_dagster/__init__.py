"""coalesce-dagster: Coalesce (coalesce.io) metadata as Dagster assets, loaded by dlt."""

import os
from pathlib import Path

__version__ = "0.1.0"

# dlt reads `.dlt/config.toml` and `.dlt/secrets.toml` from its project dir, which defaults to the
# process's cwd. Dagster's webserver, daemon and run workers start wherever they are started, so
# anchor dlt to this project unless the user chose another dir. This only sets a path: no config is
# read and nothing is called here.
os.environ.setdefault("DLT_PROJECT_DIR", str(Path(__file__).resolve().parent.parent))
