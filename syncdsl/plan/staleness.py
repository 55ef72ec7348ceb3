"""Refuse a stale saved plan: configuration, data, state or the touched HubSpot records changed."""

from __future__ import annotations

import itertools

from syncdsl.errors import PlanError
from syncdsl.hubspot.target import Target
from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import BATCH_SIZE, CreateContact, Plan
from syncdsl.records.values import normalize
from syncdsl.state.store import StateStore

_REMEDY = " Make a new plan with `syncdsl plan --out FILE` and review it."


def check_fresh(
    plan: Plan, *, spec: Spec, store: StateStore, target: Target, configuration_hash: str
) -> None:
    """Raise PlanError naming why the saved plan no longer describes reality."""
    fingerprint = plan.fingerprint
    remedy = _REMEDY
    if fingerprint.configuration != configuration_hash:
        raise PlanError(
            "the saved plan is stale: the configuration or its data files changed "
            "since it was made." + remedy
        )
    if fingerprint.base_url != target.state_key:
        raise PlanError(
            f"the saved plan was made against {fingerprint.base_url}, not "
            f"{target.state_key}." + remedy
        )
    if (fingerprint.lineage, fingerprint.serial) != (store.lineage, store.serial):
        raise PlanError(
            "the saved plan is stale: the state moved on since it was made (serial "
            f"{fingerprint.serial} -> {store.serial}: an apply, stream or state rebuild ran)."
            + remedy
        )
    if plan.refreshed:
        _check_hubspot(plan, target)


def _check_hubspot(plan: Plan, target: Target) -> None:
    """Re-read the contacts the plan touches: every value it read (changed or already as desired,
    which apply records in the state) must still be what HubSpot holds."""
    schema = {prop.name: prop for prop in target.client.list_properties()}
    touched = plan.contact_changes
    names = sorted(
        {
            "email",
            *(v.property for c in touched for v in c.changes),
            *(name for c in touched for name in c.settled),
        }
        & set(schema)
    )
    remaining = iter(touched)
    while batch := list(itertools.islice(remaining, BATCH_SIZE)):
        found = target.client.batch_read_contacts_by_email([c.email for c in batch], names)
        for change in batch:
            contact = found.get(change.email)
            if contact is None and not isinstance(change, CreateContact):
                raise PlanError(
                    f"the saved plan is stale: {change.email} no longer exists in HubSpot."
                    + _REMEDY
                )
            read = {v.property: v.before for v in change.changes} | dict(change.settled)
            for name, then in read.items():
                now = contact.properties.get(name) if contact else None
                if normalize(now, schema.get(name)) != normalize(then, schema.get(name)):
                    raise PlanError(
                        f"the saved plan is stale: HubSpot changed {change.email} since it was "
                        f"made ({name}: {then!r} then, {now!r} now)." + _REMEDY
                    )
