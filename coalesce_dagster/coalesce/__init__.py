"""Everything that talks to the Coalesce API. Nothing here imports Dagster.

`source.coalesce_source` is the dlt source; the other modules are its parts.
"""
