"""A load to be killed: `python -m coalesce_dagster_tests.crash_load MODE` (used by test_crash.py).

MODE `dagster` materializes every asset through Dagster (the test kills it mid-extract, once the
simulator holds one of its requests); `after-normalize` runs dlt's extract and normalize, then
SIGKILLs itself; `before-users-load` materializes through Dagster and SIGKILLs itself in the middle
of dlt's load step, at a known point (see `_kill_before_loading`).
Configuration comes from the environment the test sets (simulator URL, token, DuckDB file).
"""

import os
import signal
import sys

# The table whose load `before-users-load` never lets start.
LAST_TABLE = "users"


def _kill_before_loading(table: str) -> None:
    """In this process's dlt load step, start `table`'s jobs last and die just before the first.

    dlt starts load jobs in directory-listing order, which is arbitrary; putting one table's jobs
    last (any order is one dlt may choose) makes the kill land at a known point. With one load worker
    (the test sets `LOAD__WORKERS=1`), every other table's jobs, and the staging-to-destination jobs
    that follow them, have completed by then, and `table` has not been touched.
    """
    from dlt.common.storages.load_package import ParsedLoadJobFileName
    from dlt.load import load as dlt_load

    def is_last(file_name: str) -> bool:
        return ParsedLoadJobFileName.parse(file_name).table_name == table

    choose_jobs = dlt_load.filter_new_jobs

    def with_table_last(file_names, *args, **kwargs):
        return choose_jobs(sorted(file_names, key=is_last), *args, **kwargs)

    submit_job = dlt_load.Load.submit_job

    def submit_unless_last(self, file_path, load_id, schema):
        if is_last(file_path):
            os.kill(os.getpid(), signal.SIGKILL)
        return submit_job(self, file_path, load_id, schema)

    dlt_load.filter_new_jobs = with_table_last
    dlt_load.Load.submit_job = submit_unless_last


def _materialize_everything() -> None:
    import dagster as dg

    from coalesce_dagster.defs.assets import coalesce_assets
    from coalesce_dagster.defs.resources import resource_defs

    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([coalesce_assets], resources=resource_defs(), instance=instance)


def main(mode: str) -> None:
    if mode == "dagster":
        _materialize_everything()
        return
    if mode == "before-users-load":
        _kill_before_loading(LAST_TABLE)
        _materialize_everything()
        raise SystemExit(f"the load finished without starting a job for {LAST_TABLE}")

    from coalesce_dagster.defs.resources import CoalesceResource
    from coalesce_dagster.pipeline import make_pipeline

    pipeline = make_pipeline()
    pipeline.extract(CoalesceResource().build_source())
    if mode == "after-normalize":
        pipeline.normalize()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1])
