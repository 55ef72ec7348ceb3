"""CLI commands, one module per family; each registers itself on `syncdsl.cli.app`."""

from __future__ import annotations

import importlib

_MODULES = ("lang", "emulator", "run", "lock", "stream")


def register_all() -> None:
    """Import every command module (each one decorates functions with `@app.command()`)."""
    for name in _MODULES:
        importlib.import_module(f"syncdsl.commands.{name}")
