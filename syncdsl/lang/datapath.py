"""Where a spec's data files may be: inside the configuration's directory, or a root the operator allows.

A configuration is untrusted input (CI plans pull requests): `jsonl = "/proc/self/environ"` must
not read the machine's secrets into a plan. A data path is resolved (symlinks followed) and must
land inside the configuration's directory, or inside the operator's `--data-root` /
`SYNCDSL_DATA_ROOT`; an absolute path is only accepted inside that root.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT_ENV = "SYNCDSL_DATA_ROOT"
_HOW = (
    "data paths are relative to the .sync file and stay inside the configuration's directory; "
    f"to read files elsewhere, the operator allows a directory with --data-root DIR (or "
    f"{DATA_ROOT_ENV})"
)


@dataclass(frozen=True)
class DataPath:
    """A data path checked against the allowed roots: its resolved file, or why it is refused."""

    resolved: Path | None
    problem: str | None


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def check_data_path(
    written: str, *, spec_file: Path, configuration: Path, data_root: Path | None
) -> DataPath:
    """Resolve `written` (as the spec holds it) and say whether it may be read."""
    try:
        roots = [configuration.resolve()]
        if data_root is not None:
            roots.append(data_root.resolve())
        given = Path(written)
        resolved = (spec_file.parent / given).resolve()
    except (OSError, ValueError, RuntimeError) as error:
        return DataPath(None, f"data file `{written}` cannot be resolved ({type(error).__name__})")
    if given.is_absolute() and (data_root is None or not _inside(resolved, roots[1])):
        return DataPath(None, f"data file `{written}` is an absolute path: {_HOW}")
    if not any(_inside(resolved, root) for root in roots):
        lexical = (spec_file.parent / given).absolute()
        plain_roots = [*roots, configuration.absolute()]
        inside = _lexically_inside(lexical, plain_roots)
        how = (
            "leads outside of the configuration's directory through a symlink"
            if inside
            else "escapes the configuration's directory"
        )
        return DataPath(None, f"data file `{written}` {how}: {_HOW}")
    return DataPath(resolved, None)


def _lexically_inside(path: Path, roots: list[Path]) -> bool:
    """Inside a root when `..` are folded but symlinks are not followed."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if len(parts) > 1:
                parts.pop()
        elif part != ".":
            parts.append(part)
    folded = Path(*parts) if parts else path
    return any(_inside(folded, root) for root in roots)


def dangling_link(written: str, *, spec_file: Path) -> Path | None:
    """The first symlink on the way to `written` whose target is missing (the reason the file
    "does not exist" while the path looks right), or None."""
    path = spec_file.parent
    for part in Path(written).parts:
        path = path / part
        if path.is_symlink() and not path.exists():
            return path
    return None


GLOB_CHARACTERS = frozenset("*?[")


def is_glob(written: str) -> bool:
    """A path with glob characters (`*`, `?`, `[`), matched against the files that exist."""
    return any(character in GLOB_CHARACTERS for character in written)


def remote_scheme(written: str) -> str | None:
    """`s3` for "s3://bucket/key" (any `scheme://`), None for a local path."""
    head, separator, _ = written.partition("://")
    if separator and head and head.replace("+", "").isalnum():
        return head.lower()
    return None


def glob_base(written: str) -> str:
    """The directories of a glob before its first glob character: "exports/" of
    "exports/*/part-*.json.gz" ("." when the first segment is a pattern)."""
    parts = Path(written).parts
    for index, part in enumerate(parts):
        if is_glob(part):
            return str(Path(*parts[:index])) if index else "."
    return written


def is_hidden(name: str) -> bool:
    """Not a data file by Spark's and Hadoop's convention: `_SUCCESS`, `_committed_…`,
    `.part-00000.crc`, `_temporary/`; checksum files (`*.crc`) too."""
    return name.startswith(("_", ".")) or name.endswith(".crc")


@dataclass(frozen=True)
class LocalFile:
    """One data file of a local location: its path for people and its resolved path."""

    display: str  # "exports/exportTime=202611300000/part-00000.json.gz"
    path: Path


def local_files(written: str, target: Path, roots: tuple[Path, ...]) -> list[LocalFile]:
    """The data files a local location names, sorted by path: the file itself; every data file
    under a folder (recursively, hidden files and folders skipped); the files a glob matches.

    Raises:
        ValueError: a file leads outside `roots` through a symlink (the message says which).
    """
    if is_glob(written):
        found = sorted(Path(match) for match in glob.glob(str(target), recursive=True))
        base_written = glob_base(written)
        base = Path(glob_base(str(target)))
        files = [
            path
            for path in found
            if path.is_file() and not any(is_hidden(part) for part in path.relative_to(base).parts)
        ]
    elif target.is_dir():
        base_written, base = written, target
        files = sorted(
            Path(folder) / name
            for folder, _, names in os.walk(target)
            if not any(is_hidden(part) for part in Path(folder).relative_to(target).parts)
            for name in names
            if not is_hidden(name)
        )
        files = [path for path in files if path.is_file()]
    else:
        return [LocalFile(written, target.resolve())]
    result = []
    for path in files:
        shown = str(Path(base_written) / path.relative_to(base))
        resolved = path.resolve()
        if not any(_inside(resolved, root) for root in roots):
            raise ValueError(
                f"data file `{shown}` leads outside of the allowed directories: {_HOW}"
            )
        result.append(LocalFile(shown, resolved))
    return result
