"""The schema half of a plan: property group, audience properties, mapped-property checks. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from syncdsl.errors import PlanError
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.lang.ir import AUDIENCE_STATUSES, Audience, Spec
from syncdsl.plan.definition import (
    MANAGED_MARKER,
    PropertyChange,
    RemovedAudience,
    RemovedDecision,
    audience_property_schema,
    managed_key,
)
from syncdsl.state.lockfile import LockFile


@dataclass(frozen=True)
class SchemaDiff:
    """Property changes, the lock's audience -> property names, and removed audiences."""

    changes: tuple[PropertyChange, ...]
    audience_properties: dict[str, str]  # audience key -> HubSpot internal name
    removed: tuple[RemovedAudience, ...]
    lock_changes: tuple[str, ...]
    schema: dict[str, PropertySchema]  # HubSpot's schema plus what the plan will create
    warnings: tuple[str, ...] = ()  # audiences moved to another property, ...


def diff_schema(
    spec: Spec,
    *,
    properties: Sequence[PropertySchema],
    groups: Sequence[PropertyGroup],
    current_lock: LockFile,
    desired_lock: LockFile,
    removed_decision: RemovedDecision,
) -> SchemaDiff:
    """Compare the configuration's schema needs with HubSpot's schema; raise PlanError on conflicts."""
    existing = {prop.name: prop for prop in properties}
    errors: list[str] = []
    changes: list[PropertyChange] = []
    group_name = spec.destination.property_group
    if group_name not in {group.name for group in groups}:
        group = PropertyGroup(name=group_name, label=_group_label(group_name))
        changes.append(PropertyChange("create_group", group_name, "property group", group=group))
    schema = dict(existing)
    for audience in spec.audiences:
        locked = desired_lock.audiences[audience.key]
        wanted = audience_property_schema(locked.property, audience.name, group_name, audience.key)
        schema[locked.property] = wanted
        needed, error = _audience_property(audience, wanted, existing.get(locked.property))
        changes.extend(needed)
        errors.extend([error] if error else [])
    for definition in _declared(spec, existing, group_name):
        schema[definition.name] = definition
        changes.append(
            PropertyChange(
                "create_property", definition.name, "declared property", definition=definition
            )
        )
    audience_props = {entry.property for entry in desired_lock.audiences.values()}
    audience_props |= {entry.property for entry in current_lock.audiences.values()}
    errors.extend(_check_mapped(spec, schema, audience_props))
    if errors:
        raise PlanError(
            "the configuration does not fit HubSpot's schema:\n  - " + "\n  - ".join(errors)
        )
    removed = tuple(
        RemovedAudience(key, entry.property, entry.label, 0, removed_decision)
        for key, entry in sorted(current_lock.audiences.items())
        if key not in desired_lock.audiences
    )
    kept = {r.key: current_lock.audiences[r.key] for r in removed if r.decision == "keep"}
    return SchemaDiff(
        warnings=(
            *_moved_warnings(spec, current_lock, desired_lock),
            *_declared_type_warnings(spec, existing),
        ),
        changes=tuple(changes),
        audience_properties={key: entry.property for key, entry in desired_lock.audiences.items()},
        removed=removed,
        lock_changes=lock_diff(current_lock, LockFile({**kept, **desired_lock.audiences})),
        schema=schema,
    )


def _audience_property(
    audience: Audience, wanted: PropertySchema, have: PropertySchema | None
) -> tuple[list[PropertyChange], str | None]:
    """What one audience's property needs in HubSpot (changes), or why it cannot be used."""
    name = wanted.name
    if have is None:
        return [
            PropertyChange(
                "create_property", name, f"audience {audience.name!r}", definition=wanted
            )
        ], None
    # Ownership is the marker syncdsl writes in the description, never the lock alone: a
    # committed lock must not let syncdsl take over a same-named property in another portal.
    ours = MANAGED_MARKER in have.description
    owner = managed_key(have.description)
    if have.type != "enumeration":
        return [], (
            f"audience {audience.name!r}: HubSpot property {name!r} exists with type "
            f"{have.type}/{have.field_type}, not an enumeration; choose another name with "
            f'`property = "..."` on the audience'
        )
    if owner is not None and owner != audience.key and not audience.adopt:
        return [], (
            f"audience {audience.name!r}: HubSpot property {name!r} is syncdsl's "
            f"for another audience ({owner}), from another configuration or an earlier "
            'segment; choose another name with `property = "..."`, or set `adopt = true` '
            "to take it over"
        )
    if not ours and not audience.adopt:
        return [], (
            f"audience {audience.name!r}: HubSpot property {name!r} already exists "
            f"and was not created by syncdsl; set `adopt = true` on the audience to take it "
            f'over, or choose another name with `property = "..."`'
        )
    changes = []
    missing = [s for s in AUDIENCE_STATUSES if s not in have.option_values]
    if missing:
        options = have.options + tuple(
            PropertyOption(label=s.capitalize(), value=s, display_order=len(have.options) + i)
            for i, s in enumerate(missing)
        )
        changes.append(
            PropertyChange(
                "add_options",
                name,
                "add options " + ", ".join(missing),
                definition=_with(have, options=options),
            )
        )
    if have.label != audience.name:
        changes.append(
            PropertyChange(
                "relabel",
                name,
                "relabel",
                before=have.label,
                after=audience.name,
                definition=_with(have, label=audience.name),
            )
        )
    return changes, None


def _declared(
    spec: Spec, existing: Mapping[str, PropertySchema], group_name: str
) -> list[PropertySchema]:
    """The declared properties (`property NAME { ... }`) HubSpot does not have yet."""
    return [
        PropertySchema(
            name=decl.name,
            label=decl.label,
            type=decl.type,
            field_type=decl.field_type,
            group_name=group_name,
            description=f"{MANAGED_MARKER}: declared property.",
            options=tuple(
                PropertyOption(label=o, value=o, display_order=i)
                for i, o in enumerate(decl.options)
            ),
        )
        for decl in spec.properties
        if decl.name not in existing
    ]


def _writable(schema: Mapping[str, PropertySchema], audience_props: set[str]) -> list[str]:
    """The properties a map may write: not read-only, not any audience's (this configuration's,
    the lock's, or another configuration's syncdsl-managed audience property)."""
    return [
        name
        for name, prop in schema.items()
        if not prop.read_only
        and name not in audience_props
        and managed_key(prop.description) is None
    ]


def _check_mapped(
    spec: Spec, schema: Mapping[str, PropertySchema], audience_props: set[str]
) -> list[str]:
    errors = []
    writable = _writable(schema, audience_props)
    for source in spec.sources:
        for mapping in source.mappings:
            prop = schema.get(mapping.property)
            if prop is None:
                near = difflib.get_close_matches(mapping.property, writable, n=1)
                hint = (
                    f"; did you mean {near[0]!r} ({schema[near[0]].type})?"
                    if near
                    else f'; declare it with `property "{mapping.property}" {{ type = "string" }}`'
                )
                errors.append(
                    f"{mapping.span}: map target {mapping.property!r} is not a HubSpot contact "
                    f"property{hint}"
                )
            elif prop.read_only:
                errors.append(f"{mapping.span}: HubSpot property {mapping.property!r} is read-only")
    return errors


def _declared_type_warnings(spec: Spec, existing: dict[str, PropertySchema]) -> tuple[str, ...]:
    """A declared property HubSpot already holds with another type: HubSpot's type rules."""
    return tuple(
        f"property {decl.name!r} is declared as {decl.type}/{decl.field_type}, but HubSpot holds "
        f"it as {have.type}/{have.field_type}: values are checked and sent as HubSpot's type; "
        "change the declaration (or the property in HubSpot) to make them agree"
        for decl in spec.properties
        if (have := existing.get(decl.name)) is not None
        and (have.type, have.field_type) != (decl.type, decl.field_type)
    )


def _moved_warnings(spec: Spec, current: LockFile, desired: LockFile) -> tuple[str, ...]:
    """An audience whose `property = "..."` changed leaves its old property behind."""
    warnings = []
    for audience in spec.audiences:
        before = current.by_key(audience.key)
        after = desired.audiences[audience.key]
        if before is None or before.property == after.property:
            continue
        warnings.append(
            f"audience {audience.name!r} moves from HubSpot property {before.property!r} to "
            f"{after.property!r} (its syncdsl.lock binding changes): {before.property!r} keeps "
            "the statuses its members have now, stale, and syncdsl stops managing it. To exit its "
            "members first: remove the audience from the configuration, apply with "
            "--exit-removed, then add it back with the new property. To forget the old binding: "
            f"apply this plan as it is ({before.property!r} is left as it is in HubSpot; delete "
            "it there if it is not wanted)"
        )
    return tuple(warnings)


def lock_diff(current: LockFile, desired: LockFile) -> tuple[str, ...]:
    """Human lines for what apply will change in syncdsl.lock."""
    lines = []
    for key, entry in sorted(desired.audiences.items()):
        before = current.by_key(key)
        if before is None:
            lines.append(f"+ {key} -> {entry.property} ({entry.label!r})")
        elif before != entry:
            lines.append(
                f"~ {key} -> {entry.property}: label {before.label!r} -> {entry.label!r}"
                if before.property == entry.property
                else f"~ {key}: property {before.property} -> {entry.property}"
            )
    for key, entry in sorted(current.audiences.items()):
        if key not in desired.audiences:
            lines.append(f"- {key} ({entry.property}, {entry.label!r})")
    return tuple(lines)


def _group_label(name: str) -> str:
    return "syncdsl audiences" if name == "syncdsl_audiences" else name.replace("_", " ").title()


def _with(prop: PropertySchema, **changes: object) -> PropertySchema:
    return replace(prop, **changes)  # type: ignore[arg-type]
