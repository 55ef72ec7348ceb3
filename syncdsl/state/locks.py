"""Exclusive OS locks (flock) held on open files, released by the kernel when the process dies;
and the lock on a configuration (`ApplyLock`) built on them."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from syncdsl.errors import LockHeldError, UnsafeFileError
from syncdsl.safefile import SHARED, open_fd
from syncdsl.state.store import state_dir


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


class ApplyLock:
    """An exclusive lock on a configuration's `.syncdsl/`: one apply, stream or `--local` command
    at a time (the embedded local HubSpot is kept there too).

    The OS lock is a flock on `.syncdsl/` itself, so deleting `apply.lock` (which only names the
    holder: its pid and command) cannot let a second command in; the kernel lifts it when the
    holder dies. A command that holds it passes it on (`connect(held=...)`) instead of taking it
    twice.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = state_dir(root) / "apply.lock"
        self._fd: int | None = None
        self._note: int | None = None

    def __enter__(self) -> ApplyLock:
        fd = lock_directory(self.path.parent)
        if fd is None:
            raise LockHeldError(
                f"another syncdsl apply (or stream) is running on this configuration "
                f"({self.holder()}); wait for it to finish, or stop it (lock: {self.path})"
            )
        self._fd = fd
        try:
            self._note = write_holder(self.path, f"pid {os.getpid()}: syncdsl {running_command()}")
        except BaseException:
            self.__exit__()
            raise
        return self

    def holder(self) -> str:
        """Who holds the lock, as its holder wrote it ("pid 4242: syncdsl apply")."""
        return read_holder(self.path)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __exit__(self, *exc: object) -> None:
        for fd in (self._note, self._fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._note = None


def running_command() -> str:
    """The running syncdsl command and its --local flag, for lock holders' notes."""
    words = [word for word in sys.argv[1:] if not word.startswith("-")][:1]
    return " ".join(words + (["--local"] if "--local" in sys.argv else [])) or "(library)"
