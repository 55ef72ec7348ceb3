"""CLI commands: run."""

from __future__ import annotations

from syncdsl.cli import app, boundary  # noqa: F401
