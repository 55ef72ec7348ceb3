"""Safety guards: checks that refuse a plan after it is made, so the plan is shown first.

A guard is a function of a `GuardInput` that returns one `GuardVerdict` (passed, refused, or
allowed by its override flag). `plan.gather` runs every guard in `GUARDS` and records the verdicts
on the plan; `Plan.refusal()` turns the refusals into the error the CLI prints after the plan
(as Terraform prints a plan before an error). A new guard (e.g. new contacts) is one more function
in `GUARDS` and, when it has one, one more field on `PlanOptions` for its override flag.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import GuardVerdict, PlanOptions
from syncdsl.plan.diff import ContactDiff


@dataclass(frozen=True)
class GuardInput:
    """What a guard may look at: the configuration, the contact diff, the plan's options."""

    spec: Spec
    diff: ContactDiff
    audience_properties: Mapping[str, str]  # audience key -> HubSpot property
    options: PlanOptions
    tracked: int = 0  # contacts the state tracks (0: a first apply into an empty state)


Guard = Callable[[GuardInput], GuardVerdict]

MASS_EXIT_REMEDY = (
    "A broken or partial export must not wipe an audience: check the source data, then rerun "
    "with --allow-mass-exit if this is intended (or raise `mass_exit_threshold` on the audience)."
)


def mass_exit_guard(inputs: GuardInput) -> GuardVerdict:
    """Refuse a plan that would exit more than an audience's threshold of its current members."""
    problems = []
    for audience in inputs.spec.audiences:
        prop = inputs.audience_properties[audience.key]
        members = inputs.diff.members.get(prop, 0)
        exits = inputs.diff.exits.get(prop, 0)
        if members and exits / members > audience.mass_exit_threshold:
            problems.append(
                f"audience {audience.name!r} would exit {exits:,} of its {members:,} members "
                f"({exits / members:.0%} > {audience.mass_exit_threshold:.0%})"
            )
    if not problems:
        return GuardVerdict(
            "mass-exit", "passed", "no audience would exit more than its mass_exit_threshold"
        )
    detail = "mass-exit guard: " + "; ".join(problems)
    if inputs.options.allow_mass_exit:
        return GuardVerdict("mass-exit", "allowed", detail + " (allowed by --allow-mass-exit)")
    return GuardVerdict("mass-exit", "refused", detail, MASS_EXIT_REMEDY)


#: The default new-contact limit: this share of the contacts the state tracks, at least the floor.
NEW_CONTACTS_SHARE = 0.10
NEW_CONTACTS_FLOOR = 1_000
MARKETING_CONTACTS = (
    "HubSpot may count them as marketing contacts (billed), as the portal's settings for "
    "contacts an integration creates decide"
)
NEW_CONTACTS_REMEDY = (
    "A broken export or a wrong audience can create many billable contacts: check the source "
    "data and the audiences, then rerun with --allow-new-contacts if this is intended (or raise "
    "`max_new_contacts` in the destination block)."
)


def new_contact_limit(spec: Spec, tracked: int) -> tuple[int | None, str]:
    """The most contacts one plan may create, and where that limit comes from."""
    given = spec.destination.max_new_contacts
    if given is not None:
        return given, "max_new_contacts"
    if tracked == 0:
        return None, "no limit on a first apply into an empty state"
    limit = max(NEW_CONTACTS_FLOOR, int(tracked * NEW_CONTACTS_SHARE))
    return limit, (
        f"the default: {NEW_CONTACTS_SHARE:.0%} of the {tracked:,} contacts the state tracks, "
        f"at least {NEW_CONTACTS_FLOOR:,}"
    )


def new_contact_guard(inputs: GuardInput) -> GuardVerdict:
    """Refuse a plan that would create more contacts than the limit (`new_contact_limit`)."""
    creates = inputs.diff.changes.kind_count("create")
    limit, source = new_contact_limit(inputs.spec, inputs.tracked)
    bound = f"limit {limit:,}: {source}" if limit is not None else source
    detail = f"{creates:,} contact(s) would be created ({bound}); {MARKETING_CONTACTS}"
    if limit is None or creates <= limit:
        return GuardVerdict("new-contacts", "passed", detail, limit=limit)
    if inputs.options.allow_new_contacts:
        return GuardVerdict(
            "new-contacts", "allowed", detail + " (allowed by --allow-new-contacts)", limit=limit
        )
    return GuardVerdict(
        "new-contacts", "refused", "new-contact guard: " + detail, NEW_CONTACTS_REMEDY, limit
    )


GUARDS: tuple[Guard, ...] = (mass_exit_guard, new_contact_guard)


def run_guards(inputs: GuardInput, guards: tuple[Guard, ...] = GUARDS) -> tuple[GuardVerdict, ...]:
    """Every guard's verdict, in order."""
    return tuple(guard(inputs) for guard in guards)
