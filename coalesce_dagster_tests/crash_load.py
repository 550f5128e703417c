"""A load to be killed: `python -m coalesce_dagster_tests.crash_load MODE` (used by test_crash.py).

MODE `dagster` materializes every asset through Dagster (the test kills it mid-extract);
`after-extract` and `after-normalize` run dlt's steps and SIGKILL themselves at that point.
Configuration comes from the environment the test sets (simulator URL, token, destination).
"""

import os
import signal
import sys


def main(mode: str) -> None:
    if mode == "dagster":
        import dagster as dg

        from coalesce_dagster.defs.assets import coalesce_assets
        from coalesce_dagster.defs.resources import resource_defs

        with dg.DagsterInstance.ephemeral() as instance:
            dg.materialize([coalesce_assets], resources=resource_defs(), instance=instance)
        return

    from coalesce_dagster.defs.resources import CoalesceResource
    from coalesce_dagster.pipeline import make_pipeline

    pipeline = make_pipeline()
    pipeline.extract(CoalesceResource().build_source())
    if mode == "after-normalize":
        pipeline.normalize()
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1])
