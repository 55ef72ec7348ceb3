"""CLI commands: stream."""

from __future__ import annotations

from syncdsl.cli import app, boundary  # noqa: F401
