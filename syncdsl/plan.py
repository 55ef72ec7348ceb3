"""The plan: typed, frozen change records, and the pure diff that makes them.

`build_plan` is a pure function of the configuration, the desired contacts, and what is known of
HubSpot (from the state store or a refresh). It does no I/O; `syncdsl.planner` gathers its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from syncdsl.desired import SourceCounts
from syncdsl.errors import PlanError
from syncdsl.ir import AUDIENCE_STATUSES
from syncdsl.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.scrub import scrub, shown_reason
from syncdsl.values import normalize

FORMAT_VERSION = 1
BATCH_SIZE = 100
MEMBER_STATUSES = frozenset({"realized", "existing"})
MANAGED_MARKER = "Managed by syncdsl"

ContactAction = Literal["create", "update", "exit"]
PropertyAction = Literal["create_group", "create_property", "add_options", "relabel"]
RemovedDecision = Literal["keep", "exit", "forget"]
GuardStatus = Literal["passed", "refused", "allowed"]


@dataclass(frozen=True, slots=True)
class ValueChange:
    """One property of one contact: before -> after."""

    property: str
    before: str | None
    after: str


@dataclass(frozen=True, slots=True)
class ContactChange:
    """What apply will send for one contact (one input of a batch upsert)."""

    action: ContactAction
    email: str
    changes: tuple[ValueChange, ...]
    hubspot_id: str | None = None
    provenance: tuple[str, ...] = ()
    drift: bool = False  # HubSpot no longer holds what syncdsl last applied
    settled: Mapping[str, str] = field(default_factory=dict)  # desired values HubSpot already holds
    resolved_via: str | None = None  # a secondary email of this contact: written by id

    @property
    def properties(self) -> dict[str, str]:
        return {change.property: change.after for change in self.changes}


@dataclass(frozen=True)
class PropertyChange:
    """A schema change: a group or an audience property to create or update."""

    action: PropertyAction
    name: str
    detail: str
    group: PropertyGroup | None = None
    definition: PropertySchema | None = None
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class Adoption:
    """A contact already as desired in HubSpot that the state store does not know yet (no API call)."""

    email: str
    hubspot_id: str | None
    properties: dict[str, str]
    audiences: dict[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input record that will not be sent, with its reason."""

    source: str
    file: str
    line: int
    reason: str
    raw: str = ""

    def to_dict(self) -> dict[str, str | int]:
        """As JSON leaves the process (--json, saved plans, reports): the raw record is kept,
        for replaying, but secrets are masked in it and long values in the reason clipped."""
        return {
            "source": self.source,
            "file": self.file,
            "line": self.line,
            "reason": shown_reason(self.reason),
            "raw": scrub(self.raw),
        }


@dataclass(frozen=True)
class RemovedAudience:
    """An audience in the lock file that the configuration no longer declares.

    `decision`: keep (default: property, values and lock entry stay, the plan keeps asking),
    exit (members set to exited, then dropped from the lock), forget (dropped from the lock,
    HubSpot untouched).
    """

    key: str
    property: str
    label: str
    members: int
    decision: RemovedDecision


@dataclass(frozen=True)
class GuardVerdict:
    """What one safety guard (see `syncdsl.guards`) decided about a plan.

    `status`: passed (nothing to stop), refused (the plan is shown, then apply is refused),
    allowed (it would have refused, but its override flag was given).
    """

    guard: str  # "mass-exit", ...
    status: GuardStatus
    detail: str  # what it found, for people
    remedy: str = ""  # what to do when it refuses


@dataclass(frozen=True)
class Estimate:
    """API calls: spent reading for this plan, and what apply will spend."""

    read_calls: int
    schema_write_calls: int
    contact_write_calls: int
    daily_remaining: int | None

    @property
    def apply_calls(self) -> int:
        return self.schema_write_calls + self.contact_write_calls


@dataclass(frozen=True)
class Fingerprint:
    """What a saved plan was made from, so apply can refuse a stale one."""

    configuration: str  # hash of the .sync files and their data files
    lineage: str
    serial: int
    base_url: str


@dataclass(frozen=True, slots=True)
class CurrentContact:
    """What is known of one contact: from HubSpot (refresh) or from the state store."""

    email: str
    hubspot_id: str | None
    properties: Mapping[str, str | None]
    audiences: Mapping[str, str | None]
    last_applied: Mapping[str, str] | None = None  # state values, when refreshing with a state
    dirty: bool = False  # sent in a batch whose acceptance was never journaled (a crash)
    resolves_to: str | None = None  # found as a secondary email: the contact's primary email
    collides_with: str | None = None  # another desired email resolves to the same contact


@dataclass(frozen=True, slots=True)
class DesiredInput:
    """One desired contact as the diff needs it (a view of syncdsl.desired.DesiredContact)."""

    email: str
    properties: Mapping[str, str]
    audiences: Mapping[str, str]
    provenance: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # the sources whose records make this contact


@dataclass(frozen=True)
class PlanOptions:
    refresh: bool = False
    allow_mass_exit: bool = False
    exit_removed: bool = False
    forget_removed: bool = False
    rejects_replay: Path | None = None  # a fixed rejects file, read as extra records

    def __post_init__(self) -> None:
        if self.exit_removed and self.forget_removed:
            raise PlanError("choose one of --exit-removed and --forget-removed, not both")

    @property
    def removed_decision(self) -> RemovedDecision:
        return "exit" if self.exit_removed else "forget" if self.forget_removed else "keep"


@dataclass(frozen=True)
class Plan:
    """Everything apply will do, and everything it will not do, with reasons."""

    property_changes: tuple[PropertyChange, ...]
    contact_changes: tuple[ContactChange, ...]
    unchanged: int
    rejected: tuple[Rejection, ...]
    adoptions: tuple[Adoption, ...]
    removed_audiences: tuple[RemovedAudience, ...]
    lock_changes: tuple[str, ...]
    warnings: tuple[str, ...]
    estimate: Estimate
    fingerprint: Fingerprint
    refreshed: bool
    audience_properties: tuple[str, ...]
    managed_properties: tuple[str, ...]
    inputs: tuple[SourceCounts, ...] = ()  # where each source's records went
    notes: tuple[str, ...] = ()  # facts worth knowing that need no action
    guards: tuple[GuardVerdict, ...] = ()  # every guard's verdict, refused or not
    property_types: Mapping[str, str] = field(default_factory=dict)  # mapped property -> type
    format_version: int = FORMAT_VERSION

    def count(self, action: ContactAction) -> int:
        return sum(1 for change in self.contact_changes if change.action == action)

    @property
    def has_changes(self) -> bool:
        return bool(self.property_changes or self.contact_changes or self.lock_changes)

    def refusal(self) -> PlanError | None:
        """The error of the guards that refuse this plan (None: apply may proceed)."""
        refused = [verdict for verdict in self.guards if verdict.status == "refused"]
        if not refused:
            return None
        return PlanError("; ".join(f"{v.detail}. {v.remedy}".rstrip() for v in refused))


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
    desired: DesiredInput | None,
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
    desired: DesiredInput | None,
    current: CurrentContact | None,
    *,
    schema: Mapping[str, PropertySchema],
    audience_properties: Iterable[str],
    carried: frozenset[str],
    protected: bool,
) -> tuple[bool, ContactChange | None]:
    """(exported, change): whether the contact reaches HubSpot at all, and what it needs."""
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
    for name, after in wanted_values.items():
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
    settled.update(
        (prop, status)
        for prop, status in writes.items()
        if prop not in changed and statuses.get(prop) == status
    )
    drift = _drifted(current, schema)
    status_changes = len(changes) - sum(1 for c in changes if c.property not in writes)
    if current is None:
        action: ContactAction = "create"
    elif exits and exits == status_changes:
        action = "exit"  # leaving audiences (its current fields go with the exit)
    else:
        action = "update"
    return True, ContactChange(
        action=action,
        email=(desired or current).email,  # type: ignore[union-attr]
        changes=tuple(changes),
        hubspot_id=current.hubspot_id if current else None,
        provenance=desired.provenance if desired else (),
        drift=drift,
        settled=settled,
        resolved_via=current.resolves_to if current else None,
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
    desired: Iterable[DesiredInput], current: Iterable[CurrentContact]
) -> Iterator[tuple[DesiredInput | None, CurrentContact | None]]:
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
class ContactDiff:
    """The contact half of a plan."""

    changes: tuple[ContactChange, ...]
    unchanged: int
    adoptions: tuple[Adoption, ...]
    members: dict[str, int]
    exits: dict[str, int]
    exported: dict[str, int] = field(default_factory=dict)  # per source: records that reach HubSpot
    not_member: dict[str, int] = field(default_factory=dict)  # per source: records of non-members
    collisions: tuple[tuple[DesiredInput, str], ...] = ()  # (desired, the other email) never sent


def diff_contacts(
    desired: Iterable[DesiredInput],
    current: Iterable[CurrentContact],
    *,
    schema: Mapping[str, PropertySchema],
    audience_properties: tuple[str, ...],
    counted_properties: tuple[str, ...] = (),
    carried: frozenset[str] = frozenset(),
    protected: frozenset[str] = frozenset(),
    adopt_unknown: bool,
) -> ContactDiff:
    """Diff every contact (merge join on email). Pure.

    `audience_properties` are diffed; members are counted for those and `counted_properties`
    (removed audiences). `adopt_unknown` (refresh only): contacts already as desired in HubSpot
    but unknown to the state become adoptions. Each desired contact's records are counted per
    source as exported or not a member.
    """
    changes: list[ContactChange] = []
    adoptions: list[Adoption] = []
    unchanged = 0
    tally = _Tally()
    exported_records: dict[str, int] = {}
    not_member: dict[str, int] = {}
    collisions: list[tuple[DesiredInput, str]] = []
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
        exported, change = _diff(
            want,
            have,
            schema=schema,
            audience_properties=audience_properties,
            carried=carried,
            protected=email in protected,
        )
        if want is not None:
            bucket = exported_records if exported else not_member
            for source in want.sources:
                bucket[source] = bucket.get(source, 0) + 1
        if change is not None:
            changes.append(change)
            for value in change.changes:
                if value.after == "exited" and value.property in audience_properties:
                    tally.exits[value.property] = tally.exits.get(value.property, 0) + 1
        elif want is None and exported and adopt_unknown and have is not None:
            # A member of an incremental export's audience that this delta does not name: kept
            # as it is, and adopted when the state does not know it, so its later exit counts.
            if have.last_applied is None and have.hubspot_id:
                adoptions.append(_adopted(have, audience_properties))
        elif want is not None and exported and have is not None:
            # Unchanged: an exported contact HubSpot (or the state) holds that needs nothing.
            unchanged += 1
            if adopt_unknown and have is not None and have.last_applied is None:
                adoptions.append(
                    Adoption(
                        want.email,
                        have.hubspot_id,
                        dict(want.properties),
                        {k: v for k, v in want.audiences.items() if k in audience_properties},
                    )
                )
    return ContactDiff(
        tuple(changes),
        unchanged,
        tuple(adoptions),
        tally.members,
        tally.exits,
        exported_records,
        not_member,
        tuple(collisions),
    )


def _adopted(have: CurrentContact, audience_properties: tuple[str, ...]) -> Adoption:
    return Adoption(
        have.email,
        have.hubspot_id,
        {k: v for k, v in have.properties.items() if v is not None},
        {k: v for k in audience_properties if (v := have.audiences.get(k)) is not None},
    )


def audience_property_schema(name: str, label: str, group: str, key: str) -> PropertySchema:
    """The enumeration property syncdsl creates for an audience; its description records the
    audience's stable key, so another configuration cannot take it over unknowingly."""
    return PropertySchema(
        name=name,
        label=label,
        type="enumeration",
        field_type="select",
        group_name=group,
        description=f"{MANAGED_MARKER}: audience status (realized, existing or exited). "
        f"Audience key: {key}",
        options=tuple(
            PropertyOption(label=status.capitalize(), value=status, display_order=i)
            for i, status in enumerate(AUDIENCE_STATUSES)
        ),
    )


def managed_key(description: str) -> str | None:
    """The audience key a syncdsl-managed property records, if any."""
    head, marker, key = description.partition("Audience key: ")
    if not marker or MANAGED_MARKER not in head:
        return None
    return key.strip() or None


def contact_write_calls(changes: int) -> int:
    return math.ceil(changes / BATCH_SIZE)
