"""What a plan is: typed, frozen change records, its options, guards and fingerprint.

`syncdsl.plan.diff` makes the contact changes (pure); `syncdsl.plan.gather` reads the inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from syncdsl.errors import PlanError
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.lang.ir import AUDIENCE_STATUSES
from syncdsl.plan.spill import Codec, Spilled
from syncdsl.records.outcome import Origin, SourceCounts
from syncdsl.records.rejection import Rejection

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
    """What apply will send for one contact (one input of a batch write). Each kind of change is
    its own class (`CreateContact`, `UpdateContact`, `ExitContact`); `action` names the kind and
    `is_destructive` says whether it takes someone out of an audience."""

    action: ClassVar[ContactAction]
    is_destructive: ClassVar[bool] = False
    email: str
    changes: tuple[ValueChange, ...]
    hubspot_id: str | None = None
    provenance: tuple[Origin, ...] = ()
    drift: bool = False  # HubSpot no longer holds what syncdsl last applied
    settled: Mapping[str, str] = field(default_factory=dict)  # desired values HubSpot already holds
    resolved_via: str | None = None  # a secondary email of this contact: written by id
    reason: str | None = None  # why it exits, when not plain absence (consent withheld)
    by_id: bool = False  # update_only: written by HubSpot id, never created

    @property
    def properties(self) -> dict[str, str]:
        return {change.property: change.after for change in self.changes}


@dataclass(frozen=True, slots=True)
class CreateContact(ContactChange):
    """A member HubSpot does not hold yet: created (by a batch upsert on email)."""

    action: ClassVar[ContactAction] = "create"


@dataclass(frozen=True, slots=True)
class UpdateContact(ContactChange):
    """A contact whose values or statuses change (and who stays in, or joins, an audience)."""

    action: ClassVar[ContactAction] = "update"


@dataclass(frozen=True, slots=True)
class ExitContact(ContactChange):
    """A member who leaves every audience it changes in: set to `exited`, by id when known."""

    action: ClassVar[ContactAction] = "exit"
    is_destructive: ClassVar[bool] = True


CONTACT_CHANGES: dict[str, type[ContactChange]] = {
    kind.action: kind for kind in (CreateContact, UpdateContact, ExitContact)
}


def contact_change(
    action: ContactAction, email: str, changes: tuple[ValueChange, ...], **fields: Any
) -> ContactChange:
    """The change of the kind `action` names (as saved plans and reports spell it)."""
    return CONTACT_CHANGES[action](email, changes, **fields)


def _encode_change(change: ContactChange) -> list[Any]:
    return [
        change.action,
        change.email,
        [[v.property, v.before, v.after] for v in change.changes],
        change.hubspot_id,
        [[o.file, o.line] for o in change.provenance],
        change.drift,
        dict(change.settled),
        change.resolved_via,
        change.reason,
        change.by_id,
    ]


def _decode_change(data: list[Any]) -> ContactChange:
    action, email, values, hubspot_id, provenance, drift, settled, via, reason, by_id = data
    return CONTACT_CHANGES[action](
        email,
        tuple(ValueChange(p, before, after) for p, before, after in values),
        hubspot_id,
        tuple(Origin(file, line) for file, line in provenance),
        drift,
        settled,
        via,
        reason,
        by_id,
    )


#: Contact changes as a plan holds them: on disk past a few thousand, counted per action.
CHANGES: Codec[ContactChange] = Codec(_encode_change, _decode_change, lambda c: c.action)


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
class KeptValue:
    """fill_if_empty: a value HubSpot already holds, kept instead of the desired one (no-op)."""

    email: str
    property: str
    hubspot: str
    wanted: str


@dataclass(frozen=True, slots=True)
class NotInHubSpot:
    """update_only: a desired member HubSpot holds no contact for; skipped, never created."""

    email: str
    provenance: tuple[Origin, ...] = ()


@dataclass(frozen=True, slots=True)
class Adoption:
    """A contact already as desired in HubSpot that the state store does not know yet (no API call)."""

    email: str
    hubspot_id: str | None
    properties: dict[str, str]
    audiences: dict[str, str]


ADOPTIONS: Codec[Adoption] = Codec(
    lambda a: [a.email, a.hubspot_id, a.properties, a.audiences],
    lambda data: Adoption(*data),
)


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
    """What one safety guard (see `syncdsl.plan.guards`) decided about a plan.

    `status`: passed (nothing to stop), refused (the plan is shown, then apply is refused),
    allowed (it would have refused, but its override flag was given).
    """

    guard: str  # "mass-exit", ...
    status: GuardStatus
    detail: str  # what it found, for people
    remedy: str = ""  # what to do when it refuses
    limit: int | None = None  # the new-contact guard's limit (None: no limit)


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
    #: the properties whose values were just read from HubSpot (not the state's memory)
    read_from_hubspot: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlanOptions:
    refresh: bool = False
    allow_mass_exit: bool = False
    allow_new_contacts: bool = False
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
    """Everything apply will do, and everything it will not do, with reasons. Its contact
    changes and adoptions may be many: they are `Spilled` (on disk past a few thousand)."""

    property_changes: tuple[PropertyChange, ...]
    contact_changes: Spilled[ContactChange]
    unchanged: int
    rejected: tuple[Rejection, ...]
    adoptions: Spilled[Adoption]
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
    #: update_only: desired members HubSpot has no contact for (skipped, never created)
    not_in_hubspot: tuple[NotInHubSpot, ...] = ()
    #: fill_if_empty: values HubSpot already holds, kept (the contacts the diff saw), and how
    #: many more per property the bulk settle kept
    kept: tuple[KeptValue, ...] = ()
    kept_settled: Mapping[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def count(self, action: ContactAction) -> int:
        return self.contact_changes.kind_count(action)

    @property
    def has_changes(self) -> bool:
        return bool(self.property_changes or self.contact_changes or self.lock_changes)

    def refusal(self) -> PlanError | None:
        """The error of the guards that refuse this plan (None: apply may proceed)."""
        refused = [verdict for verdict in self.guards if verdict.status == "refused"]
        if not refused:
            return None
        return PlanError("; ".join(f"{v.detail}. {v.remedy}".rstrip() for v in refused))


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
