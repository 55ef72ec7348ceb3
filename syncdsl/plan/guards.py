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


GUARDS: tuple[Guard, ...] = (mass_exit_guard,)


def run_guards(inputs: GuardInput, guards: tuple[Guard, ...] = GUARDS) -> tuple[GuardVerdict, ...]:
    """Every guard's verdict, in order."""
    return tuple(guard(inputs) for guard in guards)
