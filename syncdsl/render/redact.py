"""`--redact`: a copy of a plan safe to post where people who may not see contact data read it.

Emails keep their first character and their domain (`a•••@example.com`); every mapped value is
replaced by its type and length (`[string, 5 chars]`); raw records and the values quoted in reasons
and warnings likewise. Audience statuses (realized, existing, exited), property names, files and
line numbers, and every count are kept, so the plan reads the same and its numbers are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from syncdsl.plan.definition import Adoption, ContactChange, Plan, ValueChange
from syncdsl.records.rejection import Rejection
from syncdsl.records.values import iso_form

MASK = "•••"
_EMAIL = re.compile(r"[^\s\"'<>,;:\[\]()]+@[^\s\"'<>,;:\[\]()]+")
_QUOTED = r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
# Values quoted in reasons and warnings: `got 'x'`, `invalid email 'x'`, `'x' is not one of`,
# `: 'x' (source) vs 'y' (`
_QUOTED_VALUES = (
    re.compile(r"(?<=got )" + _QUOTED),
    re.compile(r"(?<=invalid email )" + _QUOTED),
    re.compile(_QUOTED + r"(?= is not one of)"),
    re.compile(r"(?<=: )" + _QUOTED + r"(?= \()"),
    re.compile(r"(?<=vs )" + _QUOTED + r"(?= \()"),
)


class Redacted(str):
    """A value replaced by its description; renderers show it as it is, without quotes."""


def mask_email(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at:
        return describe(email, "string")
    return f"{local[:1]}{MASK}@{domain}"


def describe(value: str, type_: str) -> Redacted:
    """`[type, N chars]`: what a redacted value was (dates: the length of their ISO form)."""
    shown = iso_form(value, type_) or value
    return Redacted(f"[{type_}, {len(shown):,} char{'s' if len(shown) != 1 else ''}]")


def redact_text(text: str) -> str:
    """Mask the emails and the quoted values in a message (a reason, a warning, an error)."""
    for pattern in _QUOTED_VALUES:
        text = pattern.sub(lambda m: describe(m.group(0)[1:-1], "value"), text)
    return _EMAIL.sub(lambda m: mask_email(m.group(0)), text)


def redact_plan(plan: Plan) -> Plan:
    """The same plan with personal data replaced; counts and structure unchanged."""
    types = plan.property_types
    audiences = set(plan.audience_properties)
    return replace(
        plan,
        contact_changes=plan.contact_changes.map(lambda c: _contact(c, types, audiences)),
        rejected=tuple(_rejection(r) for r in plan.rejected),
        adoptions=plan.adoptions.map(lambda a: _adoption(a, types)),
        warnings=tuple(redact_text(w) for w in plan.warnings),
        kept=tuple(
            replace(
                k,
                email=mask_email(k.email),
                hubspot=describe(k.hubspot, types.get(k.property, "string")),
                wanted=describe(k.wanted, types.get(k.property, "string")),
            )
            for k in plan.kept
        ),
        not_in_hubspot=tuple(replace(s, email=mask_email(s.email)) for s in plan.not_in_hubspot),
    )


def _value(
    value: str | None, prop: str, types: Mapping[str, str], audiences: set[str]
) -> str | None:
    if value is None or prop in audiences:
        return value  # audience statuses are syncdsl's own words, not personal data
    return describe(value, types.get(prop, "string"))


def _contact(change: ContactChange, types: Mapping[str, str], audiences: set[str]) -> ContactChange:
    values = tuple(
        ValueChange(
            v.property,
            _value(v.before, v.property, types, audiences),
            _value(v.after, v.property, types, audiences) or "",
        )
        for v in change.changes
    )
    settled = {k: _value(v, k, types, audiences) or "" for k, v in change.settled.items()}
    return replace(
        change,
        email=mask_email(change.email),
        changes=values,
        settled=settled,
        resolved_via=mask_email(change.resolved_via) if change.resolved_via else None,
    )


def _rejection(rejection: Rejection) -> Rejection:
    raw = Redacted(f"[record, {len(rejection.raw):,} chars]") if rejection.raw else ""
    return replace(rejection, reason=redact_text(rejection.reason), raw=raw)


def _adoption(adoption: Adoption, types: Mapping[str, str]) -> Adoption:
    return replace(
        adoption,
        email=mask_email(adoption.email),
        properties={k: describe(v, types.get(k, "string")) for k, v in adoption.properties.items()},
    )
