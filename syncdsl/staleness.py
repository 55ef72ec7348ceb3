"""Refuse a stale saved plan: configuration, data, state or the touched HubSpot records changed."""

from __future__ import annotations

from syncdsl.errors import PlanError
from syncdsl.ir import Spec
from syncdsl.plan import BATCH_SIZE, Plan
from syncdsl.runtime import Target
from syncdsl.state import StateStore
from syncdsl.values import normalize


def check_fresh(
    plan: Plan, *, spec: Spec, store: StateStore, target: Target, configuration_hash: str
) -> None:
    """Raise PlanError naming why the saved plan no longer describes reality."""
    fingerprint = plan.fingerprint
    remedy = " Make a new plan with `syncdsl plan --out FILE` and review it."
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
            f"{fingerprint.serial} -> {store.serial}; another apply ran)." + remedy
        )
    if plan.refreshed:
        _check_hubspot(plan, target)


def _check_hubspot(plan: Plan, target: Target) -> None:
    """Re-read the contacts the plan touches; their values must still be the plan's `before`."""
    touched = [c for c in plan.contact_changes if c.changes]
    names = sorted({v.property for c in touched for v in c.changes} | {"email"})
    for start in range(0, len(touched), BATCH_SIZE):
        batch = touched[start : start + BATCH_SIZE]
        found = target.client.batch_read_contacts_by_email([c.email for c in batch], names)
        for change in batch:
            contact = found.get(change.email)
            if contact is None and change.action != "create":
                raise PlanError(
                    f"the saved plan is stale: {change.email} no longer exists in "
                    "HubSpot." + " Make a new plan with `syncdsl plan --out FILE`."
                )
            for value in change.changes:
                now = contact.properties.get(value.property) if contact else None
                if normalize(now, None) != normalize(value.before, None):
                    raise PlanError(
                        f"the saved plan is stale: HubSpot changed {change.email} since it was "
                        f"made ({value.property}: {value.before!r} then, {now!r} now). Make a new "
                        "plan with `syncdsl plan --out FILE`."
                    )
