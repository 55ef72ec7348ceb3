"""Exclusive OS locks (flock) held on open files: released by the kernel when the process dies."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from syncdsl.errors import UnsafeFileError
from syncdsl.safefile import SHARED, open_fd


def try_flock(fd: int) -> bool:
    """Take an exclusive flock on `fd` without waiting; False when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_holder(path: Path) -> str:
    """What the holder wrote in its lock file (its pid and command), or "another process".

    Never read through a symlink: a planted one would print another file's first bytes."""
    try:
        with os.fdopen(open_fd(path, os.O_RDONLY, mode=SHARED), "rb") as handle:
            return handle.read(200).decode(errors="replace").strip() or "another process"
    except (OSError, UnsafeFileError):
        return "another process"


def write_holder(path: Path, note: str) -> int:
    """Open `path` (created if needed; a symlink is refused) and write `note` in it; return the
    open descriptor."""
    fd = open_fd(path, os.O_RDWR | os.O_CREAT, mode=SHARED)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, note.encode())
    except BaseException:
        os.close(fd)
        raise
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
