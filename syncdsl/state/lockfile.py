"""`syncdsl.lock`: the committed, human-readable map from audiences to their HubSpot properties."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from syncdsl.errors import PlanError, StateError
from syncdsl.lang.ir import AUDIENCE_STATUSES, Audience, Spec, derive_property_name
from syncdsl.safefile import write_atomic

LOCK_FILE = "syncdsl.lock"
LOCK_VERSION = 1
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*")
_HEADER = (
    "# syncdsl.lock: maintained by `syncdsl apply`. Commit it.\n"
    "# Each audience's stable key (segment id or upload source) is bound to its HubSpot property,\n"
    "# so renaming an audience relabels the same property instead of creating a new one.\n\n"
)


@dataclass(frozen=True)
class LockedAudience:
    """One audience as the lock file pins it."""

    key: str
    property: str
    label: str
    group: str
    source: str
    options: tuple[str, ...] = AUDIENCE_STATUSES


@dataclass(frozen=True)
class LockFile:
    """The whole lock file: audiences by stable key."""

    audiences: dict[str, LockedAudience]

    def by_key(self, key: str) -> LockedAudience | None:
        return self.audiences.get(key)

    @property
    def properties(self) -> dict[str, str]:
        """Audience key -> the HubSpot property it is bound to."""
        return {key: entry.property for key, entry in self.audiences.items()}


def bound_properties(spec: Spec, bindings: Mapping[str, str]) -> dict[str, str]:
    """Each audience's own property name (what the mapping writes its statuses under) -> the
    HubSpot property `bindings` (audience key -> property, as the lock has it) binds it to.

    The plan and the stream both rename statuses with it before diffing."""
    return {audience.property: bindings[audience.key] for audience in spec.audiences}


def lock_path(root: Path) -> Path:
    return root / LOCK_FILE


def read_lock(root: Path) -> LockFile:
    """Read `syncdsl.lock` beside the configuration (an empty lock when there is none)."""
    path = lock_path(root)
    if not path.exists():
        return LockFile({})
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise StateError(f"{path}: not a valid lock file ({error}); restore it from git") from error
    except OSError as error:
        raise StateError(
            f"{path}: cannot read the lock file ({error.strerror or error}); it must be a file: "
            "restore it from git"
        ) from error
    audiences = _audiences(path, text, data)
    _check_entries(path, text, data, audiences)
    return LockFile(audiences)


def _line_of(text: str, pattern: str, after: int = 0) -> int:
    """The 1-based line of the first line from line `after` on that starts with `pattern`."""
    lines = text.split("\n")
    for number in range(after, len(lines)):
        if lines[number].lstrip().startswith(pattern):
            return number + 1
    return 0


def _check_entries(
    path: Path, text: str, data: dict[str, object], audiences: dict[str, LockedAudience]
) -> None:
    """The version and each entry's property name, checked when the lock is read."""
    version = data.get("version", LOCK_VERSION)
    if version != LOCK_VERSION:
        raise StateError(
            f"{path}:{_line_of(text, 'version')}: lock file version {version!r} is not one this "
            f"syncdsl reads (version {LOCK_VERSION}); restore it from git or upgrade syncdsl"
        )
    for key, entry in audiences.items():
        if PROPERTY_NAME.fullmatch(entry.property) and len(entry.property) <= 100:
            continue
        header = _line_of(text, f'[audiences."{key}"]') or _line_of(text, f"[audiences.{key}]")
        line = _line_of(text, "property", header) if header else 0
        raise StateError(
            f"{path}:{line}: audience {key!r}: {entry.property!r} is not a HubSpot internal name "
            "(lowercase letters, digits and `_`, starting with a letter); restore it from git"
        )


def _audiences(path: Path, text: str, data: dict[str, object]) -> dict[str, LockedAudience]:
    entries = data.get("audiences", {})
    if not isinstance(entries, dict):
        raise StateError(f"{path}: `audiences` is not a table; restore it from git")
    audiences: dict[str, LockedAudience] = {}
    for key, entry in entries.items():
        try:
            audiences[key] = LockedAudience(
                key=key,
                property=entry["property"],
                label=entry["label"],
                group=entry["group"],
                source=entry.get("source", ""),
                options=tuple(entry.get("options", AUDIENCE_STATUSES)),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise StateError(
                f"{path}: audience {key!r} lacks {error}; restore it from git"
            ) from error
        if not all(isinstance(v, str) for v in (audiences[key].property, audiences[key].label)):
            raise StateError(f"{path}: audience {key!r}: property and label must be strings")
    return audiences


def desired_lock(spec: Spec, current: LockFile) -> LockFile:
    """The lock the configuration wants: known keys keep their property; new ones take their own.

    Raises PlanError when two audiences (or a new one and one the lock still remembers) would
    share one HubSpot property, which would mix their members.
    """
    audiences: dict[str, LockedAudience] = {}
    for audience in spec.audiences:
        known = current.by_key(audience.key)
        audiences[audience.key] = LockedAudience(
            key=audience.key,
            property=known.property if known and not _explicit(audience) else audience.property,
            label=audience.name,
            group=spec.destination.property_group,
            source=audience.source,
        )
    _check_unique(audiences, current)
    return LockFile(audiences)


def _check_unique(audiences: dict[str, LockedAudience], current: LockFile) -> None:
    owners: dict[str, LockedAudience] = {}
    remembered = [e for k, e in current.audiences.items() if k not in audiences]
    for entry in [*audiences.values(), *remembered]:
        other = owners.setdefault(entry.property, entry)
        if other is not entry:
            raise PlanError(
                f"audiences {other.label!r} ({other.key}) and {entry.label!r} ({entry.key}) would "
                f"both use the HubSpot property {entry.property!r} (syncdsl.lock binds each "
                "audience to its property for good, across renames); give the new audience "
                'its own name with `property = "..."`'
            )


def lock_after(spec: Spec, current: LockFile, *, keep: set[str]) -> LockFile:
    """The lock apply writes: the configuration's audiences plus removed ones still `keep`-ing."""
    wanted = desired_lock(spec, current)
    kept = {key: entry for key, entry in current.audiences.items() if key in keep}
    return LockFile({**kept, **wanted.audiences})


def _explicit(audience: Audience) -> bool:
    """True when the spec names the property itself (`property = "..."`) rather than deriving it."""
    return audience.property != derive_property_name(audience.name)


def render_lock(lock: LockFile) -> str:
    payload = {
        "version": LOCK_VERSION,
        "audiences": {
            key: {
                "property": entry.property,
                "label": entry.label,
                "group": entry.group,
                "source": entry.source,
                "options": list(entry.options),
            }
            for key, entry in sorted(lock.audiences.items())
        },
    }
    return _HEADER + tomli_w.dumps(payload)


def write_lock(root: Path, lock: LockFile) -> None:
    """Write syncdsl.lock atomically (it is committed: mode 0644 less the umask); a symlink there
    is refused."""
    write_atomic(lock_path(root), render_lock(lock), private=False)
