"""Dagster definitions, one concern per module; `coalesce_dagster.definitions` assembles them."""
