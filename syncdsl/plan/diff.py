"""The pure contact diff: desired contacts against what is known of HubSpot -> changes.

No I/O: the inputs come from `syncdsl.plan.gather` (the state store, or a refresh of HubSpot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from syncdsl.hubspot.schema import PropertySchema
from syncdsl.plan.definition import (
    ADOPTIONS,
    CHANGES,
    MEMBER_STATUSES,
    Adoption,
    ContactChange,
    CreateContact,
    CurrentContact,
    ExitContact,
    KeptValue,
    UpdateContact,
    ValueChange,
)
from syncdsl.plan.spill import Spilled, SpillWriter
from syncdsl.records.outcome import DesiredContact
from syncdsl.records.values import normalize


@dataclass
class _Tally:
    members: dict[str, int] = field(default_factory=dict)
    exits: dict[str, int] = field(default_factory=dict)


_NONE: Mapping[str, str | None] = {}
_NO_VALUES: Mapping[str, str] = {}


def audience_writes(
    wanted: Mapping[str, str],
    before: Mapping[str, str | None],
    audience_properties: Iterable[str],
    *,
    carried: frozenset[str] = frozenset(),
    protected: bool = False,
    dirty: bool = False,
) -> dict[str, str] | None:
    """The exit rule, shared by plan and stream: the statuses to write on one contact, or None
    when the contact is not exported at all. Pure.

    As Experience Platform exports: a contact reaches HubSpot only as a member (`realized` or
    `existing`) of some audience, or as a member it exported before that now exits (`exited`,
    with its current fields). `exited` is never written on someone who was not a member.
    `carried`: audiences of incremental exports, where absence from the file keeps the status.
    `protected`: a record for this email was rejected, so its absence says nothing (no exit).
    `dirty`: a crash left HubSpot's values unknown, so any status it ever had may need resending.
    """
    writes: dict[str, str] = {}
    for prop in audience_properties:
        after = wanted.get(prop)
        prior = before.get(prop)
        if after is None and prop in carried:
            after = prior
        was_member = prior in MEMBER_STATUSES or (dirty and prior is not None)
        if after in MEMBER_STATUSES:
            writes[prop] = after
        elif was_member and not (protected and after is None):
            writes[prop] = "exited"
    return writes or None


def is_member(audiences: Mapping[str, str | None]) -> bool:
    """A member of at least one of these audiences."""
    return any(status in MEMBER_STATUSES for status in audiences.values())


def diff_contact(
    desired: DesiredContact | None,
    current: CurrentContact | None,
    *,
    schema: Mapping[str, PropertySchema],
    audience_properties: Iterable[str],
    carried: frozenset[str] = frozenset(),
    protected: bool = False,
) -> ContactChange | None:
    """The change one contact needs, or None when it is up to date or not exported. Pure."""
    return _diff(
        desired,
        current,
        schema=schema,
        audience_properties=audience_properties,
        carried=carried,
        protected=protected,
    )[1]


def _diff(
    desired: DesiredContact | None,
    current: CurrentContact | None,
    *,
    schema: Mapping[str, PropertySchema],
    audience_properties: Iterable[str],
    carried: frozenset[str],
    protected: bool,
    fill: frozenset[str] = frozenset(),
    kept: list[KeptValue] | None = None,
) -> tuple[bool, ContactChange | None]:
    """(exported, change): whether the contact reaches HubSpot at all, and what it needs.

    `fill`: fill_if_empty properties, written only when HubSpot (as last known) holds no value;
    the values kept instead are added to `kept`."""
    # The hot path of every plan: equal strings skip normalisation, and nothing is allocated
    # for a contact that is up to date.
    statuses = current.audiences if current is not None else _NONE
    wanted = desired.audiences if desired is not None else _NO_VALUES
    # A dirty contact's values in HubSpot are unknown: resend every desired one.
    dirty = current is not None and current.dirty
    writes = audience_writes(
        wanted, statuses, audience_properties, carried=carried, protected=protected, dirty=dirty
    )
    if writes is None:
        return False, None  # a member of no audience, and no member to exit: nothing leaves
    changes: list[ValueChange] = []
    wanted_values = desired.properties if desired is not None else _NO_VALUES
    known = current.properties if current is not None and not dirty else _NONE
    held: dict[str, str] = {}  # fill_if_empty values HubSpot holds: they stay
    for name, after in wanted_values.items():
        if fill and name in fill and current is not None:
            value = current.properties.get(name)
            if value is not None and value != "":
                held[name] = value
                if kept is not None and normalize(value, schema.get(name)) != normalize(
                    after, schema.get(name)
                ):
                    kept.append(KeptValue(current.email, name, value, after))
                continue
        before = known.get(name)
        if before != after and normalize(before, schema.get(name)) != normalize(
            after, schema.get(name)
        ):
            changes.append(ValueChange(name, before, after))
    if len(changes) > 1:
        changes.sort(key=lambda change: change.property)
    exits = 0
    for prop, status_after in writes.items():
        status_before = statuses.get(prop)
        if status_after == "exited":
            changes.append(ValueChange(prop, status_before, "exited"))
            exits += 1
        elif status_before != status_after or dirty:
            changes.append(ValueChange(prop, status_before, status_after))
    if not changes:
        return True, None  # up to date
    changed = {change.property for change in changes}
    settled = {name: value for name, value in wanted_values.items() if name not in changed}
    settled.update(held)  # the state remembers what HubSpot holds
    settled.update(
        (prop, status)
        for prop, status in writes.items()
        if prop not in changed and statuses.get(prop) == status
    )
    drift = _drifted(current, schema)
    status_changes = len(changes) - sum(1 for c in changes if c.property not in writes)
    kind: type[ContactChange]
    if current is None:
        kind = CreateContact
    elif exits and exits == status_changes:
        kind = ExitContact  # leaving audiences (its current fields go with the exit)
    else:
        kind = UpdateContact
    return True, kind(
        email=(desired or current).email,  # type: ignore[union-attr]
        changes=tuple(changes),
        hubspot_id=current.hubspot_id if current else None,
        provenance=desired.provenance if desired else (),
        drift=drift,
        settled=settled,
        resolved_via=current.resolves_to if current else None,
        reason=desired.withheld if desired is not None and exits else None,
    )


def _drifted(current: CurrentContact | None, schema: Mapping[str, PropertySchema]) -> bool:
    """HubSpot no longer holds a value syncdsl last applied (compared normalised)."""
    if current is None or current.last_applied is None:
        return False
    values = {**current.properties, **current.audiences}
    return any(
        normalize(values.get(name), schema.get(name)) != normalize(value, schema.get(name))
        for name, value in current.last_applied.items()
        if name in values
    )


def merge_join(
    desired: Iterable[DesiredContact], current: Iterable[CurrentContact]
) -> Iterator[tuple[DesiredContact | None, CurrentContact | None]]:
    """Pair desired and current contacts by email; both inputs ascend by email."""
    desired_iter, current_iter = iter(desired), iter(current)
    d = next(desired_iter, None)
    c = next(current_iter, None)
    while d is not None or c is not None:
        if c is None or (d is not None and d.email < c.email):
            yield d, None
            d = next(desired_iter, None)
        elif d is None or c.email < d.email:
            yield None, c
            c = next(current_iter, None)
        else:
            yield d, c
            d, c = next(desired_iter, None), next(current_iter, None)


@dataclass(frozen=True)
class Settled:
    """Contacts settled in bulk before the diff (`syncdsl.plan.settle`): up to date, or members
    of nothing; counted as the diff counts them."""

    unchanged: int = 0
    members: Mapping[str, int] = field(default_factory=dict)  # state members per property
    exported: Mapping[str, int] = field(default_factory=dict)  # per source
    not_member: Mapping[str, int] = field(default_factory=dict)  # per source
    no_consent: Mapping[str, int] = field(default_factory=dict)  # per source
    kept: Mapping[str, int] = field(default_factory=dict)  # fill_if_empty values kept, per property


def _add(counts: dict[str, int], more: Mapping[str, int]) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


@dataclass(frozen=True)
class ContactDiff:
    """The contact half of a plan."""

    changes: Spilled[ContactChange]
    unchanged: int
    adoptions: Spilled[Adoption]
    members: dict[str, int]
    exits: dict[str, int]
    exported: dict[str, int] = field(default_factory=dict)  # per source: records that reach HubSpot
    not_member: dict[str, int] = field(default_factory=dict)  # per source: records of non-members
    #: per source: records of people whose consent withholds them (and no member to exit)
    no_consent: dict[str, int] = field(default_factory=dict)
    collisions: tuple[tuple[DesiredContact, str], ...] = ()  # (desired, the other email) never sent
    kept: tuple[KeptValue, ...] = ()  # fill_if_empty: values HubSpot holds, kept


def diff_contacts(
    desired: Iterable[DesiredContact],
    current: Iterable[CurrentContact],
    *,
    schema: Mapping[str, PropertySchema],
    audience_properties: tuple[str, ...],
    counted_properties: tuple[str, ...] = (),
    carried: frozenset[str] = frozenset(),
    protected: frozenset[str] = frozenset(),
    adopt_unknown: bool,
    settled: Settled = Settled(),
    fill: frozenset[str] = frozenset(),
) -> ContactDiff:
    """Diff every contact (merge join on email). Pure.

    `audience_properties` are diffed; members are counted for those and `counted_properties`
    (removed audiences). `adopt_unknown` (refresh only): contacts already as desired in HubSpot
    but unknown to the state become adoptions. Each desired contact's records are counted per
    source as exported or not a member. `settled`: contacts decided before, in bulk, that
    `desired` and `current` leave out; their counts are added. `fill`: fill_if_empty
    properties; a contact just read from HubSpot that needs nothing is adopted, so the state
    remembers what HubSpot holds.
    """
    changes = SpillWriter(CHANGES)
    adoptions = SpillWriter(ADOPTIONS)
    unchanged = 0
    tally = _Tally()
    exported_records: dict[str, int] = {}
    not_member: dict[str, int] = {}
    no_consent: dict[str, int] = {}
    collisions: list[tuple[DesiredContact, str]] = []
    kept: list[KeptValue] = []
    for want, have in merge_join(desired, current):
        if want is not None and have is not None and have.collides_with is not None:
            # Two desired emails are one HubSpot contact: two writes would overwrite each other.
            collisions.append((want, have.collides_with))
            continue
        if have is not None:
            for prop in (*audience_properties, *counted_properties):
                if have.audiences.get(prop) in MEMBER_STATUSES:
                    tally.members[prop] = tally.members.get(prop, 0) + 1
        email = want.email if want is not None else have.email  # type: ignore[union-attr]
        before_kept = len(kept)
        exported, change = _diff(
            want,
            have,
            schema=schema,
            audience_properties=audience_properties,
            carried=carried,
            protected=email in protected,
            fill=fill,
            kept=kept,
        )
        if want is not None:
            if exported:
                bucket = exported_records
            else:
                bucket = no_consent if want.withheld is not None else not_member
            for source in want.sources:
                bucket[source] = bucket.get(source, 0) + 1
        if change is not None:
            changes.append(change)
            for value in change.changes:
                if value.after == "exited" and value.property in audience_properties:
                    tally.exits[value.property] = tally.exits.get(value.property, 0) + 1
            continue
        if want is not None and exported and have is not None:
            unchanged += 1  # an exported contact HubSpot (or the state) holds that needs nothing
        read = have is not None and bool(have.read_from_hubspot)
        adoption = _adoption(
            want,
            have,
            exported and (adopt_unknown or read),
            audience_properties,
            kept[before_kept:],
        )
        if adoption is not None:
            adoptions.append(adoption)
    _add(tally.members, settled.members)
    _add(exported_records, settled.exported)
    _add(not_member, settled.not_member)
    _add(no_consent, settled.no_consent)
    return ContactDiff(
        changes.close(),
        unchanged + settled.unchanged,
        adoptions.close(),
        tally.members,
        tally.exits,
        exported_records,
        not_member,
        no_consent,
        tuple(collisions),
        tuple(kept),
    )


def _adoption(
    want: DesiredContact | None,
    have: CurrentContact | None,
    adopt: bool,
    audience_properties: tuple[str, ...],
    kept: Sequence[KeptValue] = (),
) -> Adoption | None:
    """A contact that needs no change but that the state does not know (refresh only: `adopt`)
    is adopted, so that the state holds it from now on."""
    if not adopt or have is None or have.last_applied is not None:
        return None
    if want is None:
        # A member of an incremental export's audience that this delta does not name: kept as
        # it is, and adopted so that its later exit counts.
        return _adopted(have, audience_properties) if have.hubspot_id else None
    return Adoption(
        want.email,
        have.hubspot_id,
        {**want.properties, **{k.property: k.hubspot for k in kept}},
        {k: v for k, v in want.audiences.items() if k in audience_properties},
    )


def _adopted(have: CurrentContact, audience_properties: tuple[str, ...]) -> Adoption:
    return Adoption(
        have.email,
        have.hubspot_id,
        {k: v for k, v in have.properties.items() if v is not None},
        {k: v for k in audience_properties if (v := have.audiences.get(k)) is not None},
    )
