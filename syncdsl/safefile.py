"""Files syncdsl writes: never through a symlink, and private (0600) when they hold personal data.

A configuration directory may be shared or checked out from a pull request: a planted symlink
(`.syncdsl/rejects.jsonl -> ~/.bashrc`) must not make syncdsl overwrite the file it points to.
Every writer opens its file here: the final component is opened with O_NOFOLLOW (a symlink is
refused with a user error naming it), atomic writes create their temporary file with O_EXCL
beside the destination and refuse a destination that is a symlink, and files holding contacts'
data (the state, rejects, saved plans, the local portal, the stream queue) are created 0600.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TextIO

from syncdsl.errors import UnsafeFileError

PRIVATE = 0o600  # holds contacts' data: the owner alone reads it
SHARED = 0o644  # syncdsl.lock, pid notes: nothing personal (the umask still applies)
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _symlink_error(path: Path) -> UnsafeFileError:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return UnsafeFileError(
        f"{path} is a symlink{target}: syncdsl does not write through symlinks. Remove it "
        f"(`rm {path}`; the file it points to is left alone) and run again, or give a regular "
        "file's path"
    )


def refuse_symlink(path: Path) -> None:
    """Raise UnsafeFileError if `path` itself is a symlink (a missing path is fine)."""
    try:
        is_link = stat.S_ISLNK(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):  # the write itself will say why it fails
        return
    if is_link:
        raise _symlink_error(path)


def open_fd(path: Path, flags: int, *, mode: int) -> int:
    """os.open without following a symlink at `path`, a regular file only; new files get `mode`.

    A file that is private (`mode` PRIVATE) is made 0600 even when it existed with a wider mode.
    O_NONBLOCK keeps a FIFO planted at the path from blocking the open; it is cleared after.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _symlink_error(path) from None
        if error.errno == errno.ENXIO:  # a FIFO nobody reads
            raise _not_regular(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _not_regular(path)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        if mode == PRIVATE:
            _tighten(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _tighten(fd: int) -> None:
    try:
        os.fchmod(fd, PRIVATE)
    except PermissionError:  # another user's file, which we may still write: leave its mode
        pass


def _not_regular(path: Path) -> UnsafeFileError:
    return UnsafeFileError(
        f"{path} is not a regular file: syncdsl only writes regular files; move it away and run "
        "again, or give another path"
    )


def open_text(path: Path, *, append: bool = False, private: bool = True) -> TextIO:
    """Open `path` for writing text (truncated, or appended to), never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = open_fd(path, flags, mode=PRIVATE if private else SHARED)
    return os.fdopen(fd, "a" if append else "w", encoding="utf-8", newline="\n")


def write_atomic(path: Path, text: str, *, private: bool = True) -> None:
    """Replace `path` with `text` in one rename (see `open_atomic`)."""
    with open_atomic(path, private=private) as out:
        out.write(text)


@contextmanager
def open_atomic(path: Path, *, private: bool = True) -> Iterator[IO[str]]:
    """A text file that replaces `path` in one rename when the block ends without an error: a
    temporary file beside it, made with O_EXCL (mkstemp: 0600, O_NOFOLLOW), fsync'd, then renamed
    over it. A symlink at `path` is refused; on an error the temporary file is removed."""
    refuse_symlink(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(handle, SHARED & ~umask)
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        refuse_symlink(path)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def prepare_sqlite(path: Path) -> None:
    """Before connecting to a SQLite file: refuse a symlink at it or its journal files, make those
    that exist 0600, and create a missing database 0600 (SQLite gives its -wal and -shm the
    database file's mode).

    No descriptor is opened on an existing database: closing one would drop the POSIX locks that
    SQLite holds on that file for any other connection of this process.
    """
    for name in (path.name, *(path.name + companion for companion in _SQLITE_COMPANIONS)):
        member = path.with_name(name)
        try:
            status = os.lstat(member)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(status.st_mode):
            raise _symlink_error(member)
        if not stat.S_ISREG(status.st_mode):
            raise _not_regular(member)
        if stat.S_IMODE(status.st_mode) & 0o077:
            try:
                os.chmod(member, PRIVATE)
            except PermissionError:  # another user's file: leave its mode
                pass
    try:
        os.close(open_fd(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, mode=PRIVATE))
    except FileExistsError:
        pass


def private_directory(directory: Path, *, root: Path) -> Path:
    """`directory` (inside `root`) created 0700 if missing; refused when it is a symlink that
    leads outside `root`, or not a directory."""
    if directory.is_symlink() and not _leads_inside(directory, root):
        raise UnsafeFileError(
            f"{directory} is a symlink to {os.readlink(directory)}, outside the configuration's "
            f"directory ({root}): syncdsl keeps its state beside the configuration only. Remove "
            f"the symlink (`rm {directory}`) and run again"
        )
    if not directory.is_dir():
        if directory.exists() or directory.is_symlink():
            raise UnsafeFileError(f"{directory} is not a directory: move it away and run again")
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory


def _leads_inside(link: Path, root: Path) -> bool:
    try:
        return link.resolve(strict=True).is_relative_to(root.resolve())
    except (OSError, RuntimeError):
        return False
