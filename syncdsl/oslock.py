"""Exclusive OS locks (flock) held on open files: released by the kernel when the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def try_flock(fd: int) -> bool:
    """Take an exclusive flock on `fd` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_holder(path: Path) -> str:
    """What the holder wrote in its lock file (its pid and command), or "another process"."""
    try:
        with path.open("rb") as handle:
            return handle.read(200).decode(errors="replace").strip() or "another process"
    except OSError:
        return "another process"


def write_holder(path: Path, note: str) -> int:
    """Open `path` (created if needed) and write `note` in it; return the open descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 0)
    os.write(fd, note.encode())
    return fd


def lock_directory(directory: Path) -> int | None:
    """An exclusive flock on the directory itself (deleting files inside cannot lift it); None
    when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    if try_flock(fd):
        return fd
    os.close(fd)
    return None
