"""The plan: `definition` (the change records and options), `diff` (the pure contact diff),
`schemadiff` (properties and groups to create), `guards` (mass exit), `gather` (every read the
plan needs, then the plan), `planfile` (saved plans, signed) and `staleness` (is a saved plan
still true)."""
