"""dg's defs folder (`defs_module` in pyproject.toml): the YAML-configured components, loaded by
`definitions.py` and found by `dg utils refresh-defs-state`. Today one: the Coalesce node assets."""
