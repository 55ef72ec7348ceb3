"""Render plans and apply reports: Terraform-style text, Markdown for pull requests, JSON."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import jinja2

from syncdsl.apply.executor import ApplyReport
from syncdsl.plan.definition import (
    ContactAction,
    ContactChange,
    GuardVerdict,
    Plan,
    PropertyChange,
)
from syncdsl.plan.planfile import summary
from syncdsl.records.outcome import SourceCounts
from syncdsl.records.values import iso_form
from syncdsl.render.redact import Redacted, redact_text
from syncdsl.scrub import scrub, shown_reason

DEFAULT_LIMIT = 20
Style = Callable[[str, str], str]  # (text, colour) -> text


def plain(text: str, colour: str) -> str:
    return text


def ansi(text: str, colour: str) -> str:
    codes = {"green": "32", "yellow": "33", "red": "31", "bold": "1", "dim": "2", "cyan": "36"}
    return f"\x1b[{codes[colour]}m{text}\x1b[0m"


def _value(value: str | None, type_: str | None = None) -> str:
    """A value for people: quoted; dates and datetimes in ISO 8601; redacted ones as they are."""
    if value is None:
        return "(none)"
    if isinstance(value, Redacted):
        return str(value)
    return f'"{iso_form(value, type_) or value}"'


def _property_line(change: PropertyChange) -> str:
    if change.action == "create_group":
        return f"+ property group {change.name}"
    if change.action == "create_property":
        kind = change.definition.type if change.definition else ""
        return f"+ property {change.name} ({change.detail}, {kind})"
    if change.action == "relabel":
        return f"~ property {change.name}: label {_value(change.before)} → {_value(change.after)}"
    return f"~ property {change.name}: {change.detail}"


def _contact_lines(change: ContactChange, types: Mapping[str, str] | None = None) -> list[str]:
    types = types or {}
    where = f"  ({', '.join(map(str, change.provenance))})" if change.provenance else ""
    drift = "  [drift: HubSpot differs from the last apply]" if change.drift else ""
    if change.action == "create":
        lines = [
            f"+ {change.email}{where}" + ("  [drift: deleted in HubSpot]" if change.drift else "")
        ]
        lines += [
            f"    {c.property}: {_value(c.after, types.get(c.property))}" for c in change.changes
        ]
        return lines
    mark = "~" if change.action == "update" else "-"
    via = (
        f"  (resolved via secondary email of {change.resolved_via}, contact {change.hubspot_id})"
        if change.resolved_via
        else ""
    )
    why = f"  [{change.reason}]" if change.reason else ""
    lines = [f"{mark} {change.email}{where}{via}{drift}{why}"]
    lines += [
        f"    {c.property}: {_value(c.before, types.get(c.property))} → "
        f"{_value(c.after, types.get(c.property))}"
        for c in change.changes
    ]
    return lines


def _kept_lines(plan: Plan, style: Style, limit: int | None) -> list[str]:
    """fill_if_empty values HubSpot already holds: no-ops, each with its reason."""
    more = sum(plan.kept_settled.values())
    total = len(plan.kept) + more
    if not total:
        return []
    out = [style(f"Kept: HubSpot already has a value (fill_if_empty) ({total:,}):", "bold")]
    shown = plan.kept if limit is None else plan.kept[:limit]
    out += [
        style(
            f"  = {k.email}  {k.property}: {_value(k.hubspot)} kept, {_value(k.wanted)} not sent",
            "dim",
        )
        for k in shown
    ]
    if len(plan.kept) > len(shown):
        out.append(f"  … and {len(plan.kept) - len(shown):,} more (use --full to list all)")
    if more:
        counts = ", ".join(f"{name} {count:,}" for name, count in sorted(plan.kept_settled.items()))
        out.append(f"  and {more:,} kept as the state knows HubSpot holds them ({counts})")
    return [*out, ""]


def _guard_line(verdict: GuardVerdict) -> str:
    mark = {"passed": "✓", "allowed": "!", "refused": "✗"}[verdict.status]
    return f"{mark} {verdict.guard}: {verdict.status}: {verdict.detail}"


T = TypeVar("T")


def _section(
    title: str,
    items: Sequence[T],
    lines: Callable[[T], list[str]],
    colour: str,
    style: Style,
    limit: int | None,
) -> list[str]:
    shown = items if limit is None else items[:limit]
    return _counted_section(title, len(items), shown, lines, colour, style)


def _counted_section(
    title: str,
    total: int,
    shown: Iterable[T],
    lines: Callable[[T], list[str]],
    colour: str,
    style: Style,
) -> list[str]:
    """A section of `total` items, of which `shown` are listed (the first ones)."""
    if not total:
        return []
    out = [style(f"{title} ({total:,}):", "bold")]
    listed = 0
    for item in shown:
        listed += 1
        out += [
            style("  " + line, colour) if i == 0 else "  " + line
            for i, line in enumerate(lines(item))
        ]
    if total > listed:
        out.append(f"  … and {total - listed:,} more (use --full to list all)")
    return [*out, ""]


def _input_line(counts: SourceCounts) -> str:
    skipped = (
        f" ({counts.identities_skipped:,} other emails of profiles with several not exported)"
        if counts.identities_skipped
        else ""
    )
    reading = f" ({counts.reading})" if counts.reading else ""
    consent = f" + {counts.no_consent:,} without consent (never sent)" if counts.no_consent else ""
    return (
        f"  {counts.source}{reading}: {counts.records:,} records = {counts.contributed:,} contributing "
        f"+ {counts.merged:,} merged duplicates + {counts.rejected:,} rejected "
        f"+ {counts.not_member:,} not members of any audience (never sent){consent}{skipped}"
    )


def summary_line(plan: Plan) -> str:
    counts = summary(plan)
    budget = (
        f", daily budget left {plan.estimate.daily_remaining:,}"
        if plan.estimate.daily_remaining is not None
        else ""
    )
    schema = (
        f"{counts['property_changes']} schema change"
        f"{'s' if counts['property_changes'] != 1 else ''}, "
        if counts["property_changes"]
        else ""
    )
    skipped = (
        f", {counts['not_in_hubspot']:,} not in HubSpot (skipped)"
        if counts["not_in_hubspot"]
        else ""
    )
    return (
        f"Plan: {schema}{counts['create']:,} to create, {counts['update']:,} to update, "
        f"{counts['exit']:,} to exit, {counts['unchanged']:,} unchanged{skipped}, "
        f"{counts['rejected']:,} rejected; ~{plan.estimate.apply_calls:,} API calls to apply "
        f"({plan.estimate.read_calls:,} read to plan){budget}."
    )


def render_text(plan: Plan, *, style: Style = plain, full: bool = False) -> str:
    """Terraform-like text: schema, then contacts grouped by kind, then a summary line."""
    limit = None if full else DEFAULT_LIMIT

    def contact_lines(change: ContactChange) -> list[str]:
        return _contact_lines(change, plan.property_types)

    mode = (
        "refreshed from HubSpot"
        if plan.refreshed
        else "incremental: compared with the state of the last apply"
    )
    out = [style(f"syncdsl plan ({mode})", "dim")]
    out += [style(_input_line(counts), "dim") for counts in plan.inputs]
    out.append("")
    if not plan.has_changes:
        out.append(style("No changes. HubSpot matches the configuration.", "green"))
    out += _section(
        "Schema changes",
        plan.property_changes,
        lambda c: [_property_line(c)],
        "yellow",
        style,
        None,
    )
    sections: tuple[tuple[ContactAction, str, str], ...] = (
        ("create", "Contacts to create", "green"),
        ("update", "Contacts to update", "yellow"),
        ("exit", "Contacts to exit", "red"),
    )
    for action, title, colour in sections:
        out += _counted_section(
            title,
            plan.count(action),
            plan.contact_changes.first_of(action, limit),
            contact_lines,
            colour,
            style,
        )
    out += _kept_lines(plan, style, limit)
    out += _section(
        "Not in HubSpot (mode update_only: skipped, never created)",
        plan.not_in_hubspot,
        lambda s: [
            f"? {s.email}" + (f"  ({', '.join(map(str, s.provenance))})" if s.provenance else "")
        ],
        "dim",
        style,
        limit,
    )
    out += _section(
        "Rejected records (not sent)",
        plan.rejected,
        lambda r: [f"! {r.file}:{r.line}  {shown_reason(r.reason)}"],
        "red",
        style,
        limit,
    )
    out += _section(
        "Lock file changes (syncdsl.lock)",
        plan.lock_changes,
        lambda line: [str(line)],
        "cyan",
        style,
        None,
    )
    out += _section("Warnings", plan.warnings, lambda w: [f"! {w}"], "yellow", style, limit)
    # A refusal follows on stderr; creates always say how many and that HubSpot may bill them.
    creates = plan.count("create")
    guards = [
        v for v in plan.guards if v.status != "passed" or (v.guard == "new-contacts" and creates)
    ]
    out += _section("Guards", guards, lambda v: [_guard_line(v)], "red", style, None)
    out += _section("Notes", plan.notes, lambda n: [f"• {n}"], "dim", style, None)
    out.append(style(summary_line(plan), "bold"))
    return scrub("\n".join(out))


_MARKDOWN = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True).from_string(
    """### syncdsl plan
{{ mode }}

{% if errors %}
**The plan failed:**
{% for error in errors %}

```
{{ error }}
```
{% endfor %}

{% endif %}
{% if not plan.has_changes %}
**No changes.** HubSpot matches the configuration.

{% endif %}
{{ summary_line }}

| | count |
|---|---:|
{% for key, value in counts.items() %}
| {{ key.replace('_', ' ') }} | {{ "{:,}".format(value) }} |
{% endfor %}
{% if plan.inputs %}

**Inputs** (only audience members reach HubSpot)
{% for counts in plan.inputs %}
- {{ input_line(counts).strip() }}
{% endfor %}
{% endif %}
{% if plan.property_changes %}

**Schema changes**
{% for change in plan.property_changes %}
- `{{ property_line(change) }}`
{% endfor %}
{% endif %}
{% if plan.contact_changes %}

<details><summary>Contact changes ({{ plan.contact_changes | length }})</summary>

```diff
{% for change in shown_changes %}
{% for line in contact_lines(change, plan.property_types) %}
{{ line }}
{% endfor %}
{% endfor %}
{% if plan.contact_changes | length > limit %}
… and {{ plan.contact_changes | length - limit }} more
{% endif %}
```
</details>
{% endif %}
{% if kept_lines %}

<details><summary>Kept: HubSpot already has a value (fill_if_empty)</summary>

```
{% for line in kept_lines %}
{{ line }}
{% endfor %}
```
</details>
{% endif %}
{% if plan.not_in_hubspot %}

<details><summary>Not in HubSpot (mode update_only: skipped, never created) ({{ plan.not_in_hubspot | length }})</summary>

{% for skipped in plan.not_in_hubspot[:limit] %}
- `{{ skipped.email }}`
{% endfor %}
{% if plan.not_in_hubspot | length > limit %}
- … and {{ plan.not_in_hubspot | length - limit }} more
{% endif %}
</details>
{% endif %}
{% if plan.rejected %}

**Rejected records**: {{ plan.rejected | length }}
{% for r in plan.rejected[:limit] %}
- `{{ r.file }}:{{ r.line }}` {{ shown_reason(r.reason) }}
{% endfor %}
{% endif %}
{% if plan.lock_changes %}

**Lock file changes** (`syncdsl.lock`)
{% for line in plan.lock_changes %}
- `{{ line }}`
{% endfor %}
{% endif %}
{% if plan.removed_audiences %}

**Removed audiences** (in `syncdsl.lock`, no longer in the configuration)

| audience | property | members | decision |
|---|---|---:|---|
{% for r in plan.removed_audiences %}
| {{ r.label }} | `{{ r.property }}` | {{ "{:,}".format(r.members) }} | {{ r.decision }} |
{% endfor %}
{% endif %}
{% if plan.guards %}

**Guards**
{% for v in plan.guards %}
- {{ guard_line(v) }}
{% endfor %}
{% endif %}
{% if plan.warnings %}

**Warnings**
{% for w in plan.warnings %}
- {{ w }}
{% endfor %}
{% endif %}
{% if plan.notes %}

**Notes**
{% for n in plan.notes %}
- {{ n }}
{% endfor %}
{% endif %}
"""
)

_MODES = {
    True: "**Refreshed**: HubSpot was read (its schema and the contacts concerned).",
    False: "**Incremental**: compared with the state of the last apply; HubSpot's contacts were "
    "not read (`--refresh` reads them).",
}


def render_markdown(plan: Plan, *, full: bool = False, errors: Sequence[str] = ()) -> str:
    """A pull-request comment summarising the plan, with `errors` that make the run fail."""
    text = _MARKDOWN.render(
        plan=plan,
        mode=_MODES[plan.refreshed],
        errors=errors,
        guard_line=_guard_line,
        counts=summary(plan),
        summary_line=summary_line(plan),
        input_line=_input_line,
        property_line=_property_line,
        contact_lines=_contact_lines,
        kept_lines=_kept_lines(plan, plain, None if full else 50)[1:-1],
        limit=len(plan.contact_changes) if full else 50,
        shown_changes=itertools.islice(plan.contact_changes, None if full else 50),
        shown_reason=shown_reason,
    )
    return scrub(text)


def render_markdown_failure(error: str, *, redact: bool = False) -> str:
    """The pull-request comment when no plan could be made: what failed, so the PR says why."""
    text = redact_text(error) if redact else error
    return f"### syncdsl plan\n\n**The plan failed:**\n\n```\n{scrub(text)}\n```\n"


def render_report(report: ApplyReport, *, style: Style = plain) -> str:
    """The end-of-apply summary."""
    headline = "Apply complete" if report.stopped is None else "Apply STOPPED (resumable)"
    colour = "red" if report.stopped else "yellow" if report.rejected else "green"
    lines = [
        style(
            f"{headline}: {report.created:,} created, {report.updated:,} updated, "
            f"{report.exited:,} exited, {report.unchanged:,} unchanged, "
            f"{len(report.rejected):,} rejected.",
            colour,
        ),
        f"{report.schema_changes} schema change(s); {report.api_calls:,} API calls in "
        f"{report.elapsed:.1f} s ({report.rate:.1f} calls/s).",
    ]
    if report.deleted:
        lines.append(
            f"{len(report.deleted):,} exiting member(s) were deleted in HubSpot by hand: not "
            "recreated, and forgotten in the state (e.g. " + ", ".join(report.deleted[:3]) + ")."
        )
    outsiders = sum(counts.not_member for counts in report.inputs)
    if outsiders:
        lines.append(
            f"{outsiders:,} record(s) of people who are members of no audience were not sent."
        )
    withheld = sum(counts.no_consent for counts in report.inputs)
    if withheld:
        lines.append(
            f"{withheld:,} record(s) of people whose consent withholds them were not sent."
        )
    for rejection in report.rejected[:DEFAULT_LIMIT]:
        lines.append(f"  ! {rejection.file}:{rejection.line}  {shown_reason(rejection.reason)}")
    if len(report.rejected) > DEFAULT_LIMIT:
        lines.append(f"  … and {len(report.rejected) - DEFAULT_LIMIT:,} more in the rejects file")
    return scrub("\n".join(lines))
