"""Where a spec's data files may be: inside the configuration's directory, or a root the operator allows.

A configuration is untrusted input (CI plans pull requests): `jsonl = "/proc/self/environ"` must
not read the machine's secrets into a plan. A data path is resolved (symlinks followed) and must
land inside the configuration's directory, or inside the operator's `--data-root` /
`SYNCDSL_DATA_ROOT`; an absolute path is only accepted inside that root.
"""

from __future__ import annotations

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
