"""Coalesce health at a glance: readable load metadata and a data dictionary (`load_metadata`,
`column_docs`), integrity checks on the loaded tables (`table_checks`), Coalesce's own freshness
(`coalesce_freshness`), and health views computed in the destination (`views`)."""
