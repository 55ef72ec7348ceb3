"""The command line: `app` holds every command; `main` is the console script.

`core` (the app, its error boundary and shared options), then one module per family of commands,
each its own `typer.Typer()` added here:
`lang` (validate, fmt), `run` (plan, apply, state), `lock`, `stream`, `worker`, `emulator`.
"""

from __future__ import annotations

from syncdsl.cli import emulator, lang, lock, run, stream, worker
from syncdsl.cli.core import app, main

for _commands in (lang, emulator, run, lock, stream, worker):  # each module is its own Typer
    app.add_typer(_commands.app)

__all__ = ["app", "emulator", "lang", "lock", "main", "run", "stream", "worker"]
