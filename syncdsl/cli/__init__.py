"""The command line: `app` holds every command; `main` is the console script.

`core` (the app, its error boundary and shared options), then one module per family of commands:
`lang` (validate, fmt), `run` (plan, apply, state), `lock`, `stream`, `emulator`.
"""

from __future__ import annotations

from syncdsl.cli import emulator, lang, lock, run, stream
from syncdsl.cli.core import app, main

__all__ = ["app", "emulator", "lang", "lock", "main", "run", "stream"]
