"""`build_plan`: the plan, as a pure function of what `gather` read.

It reads and writes nothing anyone else sees, and has no side effects (SQLMesh: building the
plan "should NOT produce any side effects"): it only iterates its inputs' desired and current
contacts, which ascend by email. (Its long lists may spill to an unnamed temporary file: see
`syncdsl.plan.spill`.) The
same inputs make the same plan, so plan scenarios are fixtures (`tests/test_build_plan.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import (
    CHANGES,
    ContactChange,
    CurrentContact,
    Estimate,
    Fingerprint,
    NotInHubSpot,
    Plan,
    PlanOptions,
    RemovedAudience,
    contact_write_calls,
)
from syncdsl.plan.diff import ContactDiff, Settled, diff_contacts
from syncdsl.plan.guards import GuardInput, run_guards
from syncdsl.plan.schemadiff import SchemaDiff
from syncdsl.plan.spill import Spilled, SpillWriter
from syncdsl.records.outcome import DesiredContact, Origin, SourceCounts
from syncdsl.records.rejection import Rejection

NO_FINGERPRINT = Fingerprint(configuration="", lineage="", serial=0, base_url="")


@dataclass(frozen=True)
class PlanInputs:
    """Everything a plan is made of. `desired` and `current` ascend by email; `desired` holds
    audience statuses under the lock's property names."""

    spec: Spec
    options: PlanOptions
    schema: SchemaDiff
    desired: Iterable[DesiredContact]
    current: Iterable[CurrentContact]  # from HubSpot (`refreshed`) or from the state
    refreshed: bool
    rejected: tuple[Rejection, ...]  # records that became no contact
    protected: frozenset[str]  # emails with a rejected record: their statuses are left as they are
    counts: tuple[SourceCounts, ...]  # per source, before the diff's export counts
    warnings: tuple[str, ...] = ()  # what reading found (replay, conflicting values, ...)
    fingerprint: Fingerprint = NO_FINGERPRINT  # a saved plan's: what it was made from
    #: contacts settled in bulk before the diff, which `desired` and `current` leave out
    settled: Settled = field(default_factory=Settled)
    tracked: int = 0  # contacts the state tracks (the new-contact guard's default limit)


@dataclass(frozen=True)
class DiffParameters:
    """What the contact diff compares: the audience properties it diffs, the ones it only
    counts (removed audiences kept), the audiences whose absence keeps the status."""

    audience_properties: tuple[str, ...]
    counted_properties: tuple[str, ...]
    carried: frozenset[str]
    fill: frozenset[str] = frozenset()  # fill_if_empty properties

    @classmethod
    def of(cls, spec: Spec, schema: SchemaDiff, options: PlanOptions) -> DiffParameters:
        audience_props = tuple(sorted(set(schema.audience_properties.values())))
        removed_props = tuple(r.property for r in schema.removed)
        return cls(
            audience_props + (removed_props if options.exit_removed else ()),
            () if options.exit_removed else removed_props,  # diffed ones count
            _carried(spec, schema.audience_properties),
            fill_properties(spec),
        )


def build_plan(inputs: PlanInputs) -> Plan:
    """The plan the inputs call for. Its estimate's `read_calls` and `daily_remaining` are the
    gatherer's to fill in (the reads happen as the diff iterates `current`)."""
    spec, options, schema = inputs.spec, inputs.options, inputs.schema
    audience_props = tuple(sorted(set(schema.audience_properties.values())))
    mapped = mapped_properties(spec)
    parameters = DiffParameters.of(spec, schema, options)
    contact_diff = diff_contacts(
        inputs.desired,
        inputs.current,
        schema=schema.schema,
        audience_properties=parameters.audience_properties,
        counted_properties=parameters.counted_properties,
        carried=parameters.carried,
        protected=inputs.protected,
        adopt_unknown=inputs.refreshed,
        settled=inputs.settled,
        fill=parameters.fill,
    )
    skipped: tuple[NotInHubSpot, ...] = ()
    collided: tuple[Rejection, ...] = ()
    if spec.destination.mode == "update_only":
        kept, skipped, collided = update_only(contact_diff.changes)
        contact_diff = replace(contact_diff, changes=kept)
    guards = run_guards(
        GuardInput(spec, contact_diff, schema.audience_properties, options, inputs.tracked)
    )
    removed = tuple(
        replace(r, members=contact_diff.members.get(r.property, 0)) for r in schema.removed
    )
    return Plan(
        property_changes=schema.changes,
        contact_changes=contact_diff.changes,
        unchanged=contact_diff.unchanged,
        rejected=(*inputs.rejected, *_collision_rejections(contact_diff), *collided),
        adoptions=contact_diff.adoptions,
        removed_audiences=removed,
        lock_changes=schema.lock_changes,
        warnings=(
            *schema.warnings,
            *inputs.warnings,
            *_removed_warnings(removed),
            *_protected_warning(inputs.protected),
        ),
        notes=_unused_source_notes(spec),
        estimate=Estimate(
            read_calls=0,
            schema_write_calls=_schema_calls(schema),
            contact_write_calls=contact_write_calls(len(contact_diff.changes)),
            daily_remaining=None,
        ),
        fingerprint=inputs.fingerprint,
        refreshed=inputs.refreshed,
        audience_properties=audience_props,
        managed_properties=mapped,
        inputs=tuple(
            counts.exported(
                contact_diff.exported.get(counts.source, 0),
                contact_diff.not_member.get(counts.source, 0),
                sum(counts.source in want.sources for want, _ in contact_diff.collisions),
                contact_diff.no_consent.get(counts.source, 0),
            )
            for counts in inputs.counts
        ),
        guards=guards,
        not_in_hubspot=skipped,
        kept=contact_diff.kept,
        kept_settled=dict(inputs.settled.kept),
        property_types={name: schema.schema[name].type for name in mapped if name in schema.schema},
    )


def update_only(
    changes: Spilled[ContactChange],
) -> tuple[Spilled[ContactChange], tuple[NotInHubSpot, ...], tuple[Rejection, ...]]:
    """`mode = "update_only"`: a change to a contact HubSpot has (its id known) is written by id,
    so it can never create one; a member HubSpot has no contact for is skipped. Two desired
    emails of one contact (a secondary email and its primary) would overwrite each other: the
    primary's change is written, the other rejected."""
    primaries: dict[str, tuple[str, bool]] = {}  # contact id -> (email written, is a secondary)
    skipped: list[NotInHubSpot] = []
    for change in changes:
        if change.action == "create" or change.hubspot_id is None:
            skipped.append(NotInHubSpot(change.email, change.provenance))
            continue
        held = primaries.get(change.hubspot_id)
        if held is None or (held[1] and change.resolved_via is None):
            primaries[change.hubspot_id] = (change.email, change.resolved_via is not None)
    kept = SpillWriter(CHANGES)
    collided: list[Rejection] = []
    for change in changes:
        if change.hubspot_id is None or change.action == "create":
            continue
        primary = primaries[change.hubspot_id][0]
        if change.email == primary:
            kept.append(replace(change, by_id=True))
            continue
        origin = change.provenance[0] if change.provenance else Origin("", 0)
        collided.append(
            Rejection(
                "hubspot",
                origin.file,
                origin.line,
                f"{change.email} and {primary} are one HubSpot contact (one is a secondary "
                f"email of the other): only {primary} is written; merge or fix the source data",
                change.email,
            )
        )
    return kept.close(), tuple(skipped), tuple(collided)


def fill_properties(spec: Spec) -> frozenset[str]:
    """The properties some source maps with `fill_if_empty(...)`: written only when empty."""
    return frozenset(m.property for s in spec.sources for m in s.mappings if m.fill_if_empty)


def mapped_properties(spec: Spec) -> tuple[str, ...]:
    """Every HubSpot property some source maps to (the ones a refresh reads), sorted."""
    return tuple(sorted({m.property for s in spec.sources for m in s.mappings}))


def _collision_rejections(diff: ContactDiff) -> Iterator[Rejection]:
    for want, other in diff.collisions:
        origin = want.provenance[0] if want.provenance else Origin("", 0)
        yield Rejection(
            "hubspot",
            origin.file,
            origin.line,
            f"{want.email} and {other} are one HubSpot contact (one is a secondary email of the "
            f"other, e.g. after a merge): only {other} is written; merge or fix the source data",
            want.email,
        )


def _carried(spec: Spec, properties: dict[str, str]) -> frozenset[str]:
    """Audience properties of incremental exports: absence from the file keeps the status."""
    incremental = {source.name for source in spec.sources if source.export == "incremental"}
    return frozenset(properties[a.key] for a in spec.audiences if a.source in incremental)


def _unused_source_notes(spec: Spec) -> tuple[str, ...]:
    used = {audience.source for audience in spec.audiences}
    return tuple(
        f"source {source.name!r} is used by no audience: it only adds its fields to contacts "
        "that are members of an audience through another source (its other records never leave)"
        for source in spec.sources
        if source.name not in used
    )


def _schema_calls(diff: SchemaDiff) -> int:
    creates = sum(1 for c in diff.changes if c.action == "create_property")
    others = sum(1 for c in diff.changes if c.action not in ("create_property",))
    return others + (1 if creates else 0)


_DECISIONS = {
    "keep": "its property and its {members:,} members are left as they are in HubSpot and the lock "
    "keeps it; choose with --exit-removed (set its members to exited) or --forget-removed (leave "
    "HubSpot as it is and drop it from syncdsl.lock)",
    "exit": "its {members:,} members will be set to exited, then it is dropped from syncdsl.lock",
    "forget": "it is dropped from syncdsl.lock; its property and its {members:,} members are left "
    "as they are in HubSpot",
}


def _protected_warning(protected: frozenset[str]) -> tuple[str, ...]:
    if not protected:
        return ()
    return (
        f"{len(protected):,} contact(s) have a rejected record: their audience statuses are left as "
        "they are (never exited because of a bad record) until the record is fixed",
    )


def _removed_warnings(removed: tuple[RemovedAudience, ...]) -> tuple[str, ...]:
    return tuple(
        f"audience {r.label!r} (property {r.property}) is no longer in the configuration: "
        + _DECISIONS[r.decision].format(members=r.members)
        for r in removed
    )
