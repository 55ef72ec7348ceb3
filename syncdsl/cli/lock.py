"""`syncdsl lock PATH`: bind new audiences in syncdsl.lock without touching HubSpot."""

from __future__ import annotations

import typer

from syncdsl.cli.core import DataRoot, PathsArg, boundary
from syncdsl.lang.ir import Spec
from syncdsl.lang.load import load_spec
from syncdsl.plan.schemadiff import lock_diff
from syncdsl.state.lockfile import LockFile, lock_after, read_lock, write_lock

#: This module's commands; `syncdsl.cli` adds them to the `syncdsl` app.
app = typer.Typer()


def locked(spec: Spec) -> tuple[LockFile, LockFile]:
    """The committed lock and the one `syncdsl lock` writes: every audience of the configuration
    bound to its stable key and property; removed audiences kept until a plan decides."""
    current = read_lock(spec.root)
    return current, lock_after(spec, current, keep=set(current.audiences))


def outdated_lock(spec: Spec) -> tuple[str, ...]:
    """What `syncdsl lock` would change in the committed lock (empty: it is up to date)."""
    current, wanted = locked(spec)
    return lock_diff(current, wanted)


@app.command()
@boundary
def lock(paths: PathsArg, data_root: DataRoot = None) -> None:
    """Update syncdsl.lock for the configuration (new audiences, renames) without reading or
    writing HubSpot, so a pull request can commit it."""
    spec = load_spec(paths, data_root=data_root)
    current, wanted = locked(spec)
    changes = lock_diff(current, wanted)
    if not changes:
        typer.echo(f"{spec.root / 'syncdsl.lock'} is up to date.")
        return
    write_lock(spec.root, wanted)
    typer.echo(f"Updated {spec.root / 'syncdsl.lock'} (commit it):")
    for line in changes:
        typer.echo(f"  {line}")
