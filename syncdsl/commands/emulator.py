"""CLI commands: emulator."""

from __future__ import annotations

from syncdsl.cli import app, boundary  # noqa: F401
