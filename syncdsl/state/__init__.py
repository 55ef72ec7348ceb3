"""What syncdsl last applied: the state store (`store`), its durable SQLite (`journal`), the
configuration's lock (`locks`) and the audience -> property bindings in `syncdsl.lock`
(`lockfile`)."""
