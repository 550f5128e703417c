"""coalesce-dagster: Coalesce (coalesce.io) metadata as Dagster assets, loaded by dlt."""

import os
from pathlib import Path

__version__ = "0.1.0"

# dlt reads `.dlt/config.toml` and `.dlt/secrets.toml` from its project dir, which defaults to the
# process's cwd. Dagster's webserver, daemon and run workers start wherever they are started, so
# anchor dlt to this checkout (or the Docker image's editable install) unless the user chose another
# dir. Installed as a package into another dg project (docs/components.md) there is no `.dlt/`
# beside the package: dlt keeps reading that project's own, from where its commands run.
# This only sets a path: no config is read and nothing is called here.
# (The same test as `configuration.names.IN_CHECKOUT`, written out: importing the configuration
# package here would import dlt before this variable is set.)
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
if (_PROJECT_ROOT / ".dlt").is_dir():
    os.environ.setdefault("DLT_PROJECT_DIR", str(_PROJECT_ROOT))
