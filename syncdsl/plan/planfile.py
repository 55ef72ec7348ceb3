"""Plans as JSON: the documented `--json` format and the saved plan that `apply PLANFILE` runs.

Format (format_version 1), keys sorted:
    format_version, configuration (path), refreshed, summary {create, update, exit, unchanged,
    rejected, property_changes}, property_changes[], contact_changes[] (action, email, hubspot_id,
    drift, provenance, changes[] {property, before, after, and for dates and datetimes
    before_iso, after_iso}), rejected[] (source, file, line, reason, raw), guards[] (guard, status,
    detail, remedy), removed_audiences[], lock_changes[], warnings[], notes[], estimate {...},
    fingerprint {...}, inputs[] (per source: records, contributed, merged, rejected, not_member,
    identities_skipped).
A saved plan (`--out`) adds `settled` per contact change and `adoptions`, which apply records in
the state store, and `digest`: an HMAC-SHA256 of everything else (canonical JSON) keyed by the
state store (its lineage and a secret only the state holds), so `apply FILE` refuses a plan edited
after `syncdsl plan` wrote it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from syncdsl.errors import PlanError
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.plan.definition import (
    FORMAT_VERSION,
    Adoption,
    ContactChange,
    Estimate,
    Fingerprint,
    GuardVerdict,
    KeptValue,
    NotInHubSpot,
    Plan,
    PropertyChange,
    RemovedAudience,
    ValueChange,
    contact_change,
)
from syncdsl.plan.guards import MARKETING_CONTACTS
from syncdsl.records.outcome import Origin, SourceCounts
from syncdsl.records.rejection import Rejection
from syncdsl.records.values import iso_form
from syncdsl.safefile import write_atomic


def summary(plan: Plan) -> dict[str, int]:
    return {
        "create": plan.count("create"),
        "update": plan.count("update"),
        "exit": plan.count("exit"),
        "unchanged": plan.unchanged,
        "rejected": len(plan.rejected),
        "property_changes": len(plan.property_changes),
        "not_in_hubspot": len(plan.not_in_hubspot),
        "kept": len(plan.kept) + sum(plan.kept_settled.values()),
    }


def plan_to_dict(plan: Plan, *, configuration: str, saved: bool = False) -> dict[str, Any]:
    """The `--json` document (and, with saved=True, the saved-plan file)."""
    changes = []
    for change in plan.contact_changes:
        entry = {"action": change.action, **asdict(change)}  # the kind is the change's class
        entry["provenance"] = [str(origin) for origin in change.provenance]
        entry["settled"] = dict(change.settled)
        if not saved:
            del entry["settled"]
        entry["changes"] = [_value_change(v, plan.property_types) for v in change.changes]
        changes.append(entry)
    document: dict[str, Any] = {
        "format_version": plan.format_version,
        "configuration": configuration,
        "refreshed": plan.refreshed,
        "summary": summary(plan),
        "property_changes": [asdict(change) for change in plan.property_changes],
        "contact_changes": changes,
        "rejected": [r.to_dict() for r in plan.rejected],
        "removed_audiences": [asdict(r) for r in plan.removed_audiences],
        "lock_changes": list(plan.lock_changes),
        "warnings": list(plan.warnings),
        "notes": list(plan.notes),
        "estimate": {**asdict(plan.estimate), "apply_calls": plan.estimate.apply_calls},
        "fingerprint": asdict(plan.fingerprint),
        "audience_properties": list(plan.audience_properties),
        "managed_properties": list(plan.managed_properties),
        "inputs": [inputs_document(counts) for counts in plan.inputs],
        "guards": [asdict(verdict) for verdict in plan.guards],
        "new_contacts": _new_contacts(plan),
        "not_in_hubspot": [
            {"email": s.email, "provenance": [str(o) for o in s.provenance]}
            for s in plan.not_in_hubspot
        ],
        "kept": [asdict(k) for k in plan.kept],
        "kept_settled": dict(plan.kept_settled),
    }
    if saved:
        document["adoptions"] = [asdict(a) for a in plan.adoptions]
        document["property_types"] = dict(plan.property_types)
    return document


def _new_contacts(plan: Plan) -> dict[str, Any]:
    """How many contacts the plan creates, its limit (None: none), and what HubSpot may bill."""
    verdict = next((v for v in plan.guards if v.guard == "new-contacts"), None)
    return {
        "count": plan.count("create"),
        "limit": verdict.limit if verdict is not None else None,
        "note": MARKETING_CONTACTS,
    }


def inputs_document(counts: SourceCounts) -> dict[str, Any]:
    """One source's counts; `reading` only when there is something to say (several files,
    compression, a detected delimiter)."""
    document = asdict(counts)
    if not counts.reading:
        del document["reading"]
    return document


def _value_change(change: ValueChange, types: Mapping[str, str]) -> dict[str, Any]:
    """A value change as JSON: the value sent, plus its ISO form for dates and datetimes."""
    entry: dict[str, Any] = asdict(change)
    type_ = types.get(change.property)
    if type_ in ("date", "datetime"):
        entry["before_iso"] = iso_form(change.before, type_)
        entry["after_iso"] = iso_form(change.after, type_)
    return entry


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


DIGEST = "digest"
_DIGEST_SCHEME = "hmac-sha256:"
EDITED = (
    "the saved plan was edited after `syncdsl plan` wrote it (its digest does not match its "
    "changes): run plan again (`syncdsl plan PATH --out FILE`) and apply the new file"
)


@dataclass(frozen=True)
class SavedPlan:
    """A saved plan as read back: the plan, its configuration, and what its digest covers."""

    plan: Plan
    configuration: str
    digest: str | None
    signed: bytes  # the canonical JSON of the document without its digest


def _canonical(document: Mapping[str, Any]) -> bytes:
    body = {key: value for key, value in document.items() if key != DIGEST}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _digest(signed: bytes, key: bytes) -> str:
    return _DIGEST_SCHEME + hmac.new(key, signed, hashlib.sha256).hexdigest()


def save_plan(plan: Plan, path: Path, *, configuration: str, key: bytes) -> None:
    """Write the saved plan (0600: it holds contacts' values; never through a symlink), signed
    with `key` (StateStore.plan_key)."""
    document = plan_to_dict(plan, configuration=configuration, saved=True)
    document[DIGEST] = _digest(_canonical(document), key)
    try:
        write_atomic(path, dumps(document), private=True)
    except OSError as error:
        raise PlanError(f"cannot save the plan to {path}: {error.strerror or error}") from error


def check_unedited(saved: SavedPlan, key: bytes) -> None:
    """Raise PlanError unless the digest is the one `save_plan` computed with `key`."""
    if saved.digest is None or not hmac.compare_digest(saved.digest, _digest(saved.signed, key)):
        raise PlanError(EDITED)


def is_plan_file(path: Path) -> bool:
    if not path.is_file() or path.suffix == ".sync":
        return False
    try:
        with path.open("rb") as handle:
            return handle.read(1).strip() in (b"{",)
    except OSError:
        return False


def load_plan(path: Path) -> SavedPlan:
    """Read a saved plan: the plan, the configuration path it was made for, and its digest
    (checked against the state with `check_unedited`)."""
    try:
        data = json.loads(path.read_text("utf-8"))
        if data.get("format_version") != FORMAT_VERSION:
            raise PlanError(
                f"{path}: saved plan format {data.get('format_version')!r} is not supported "
                f"(this syncdsl writes {FORMAT_VERSION}); make a new plan"
            )
        if "adoptions" not in data:
            raise PlanError(
                f"{path}: this is a --json plan, not a saved plan; use `plan --out FILE`"
            )
        digest = data.get(DIGEST)
        return SavedPlan(
            _plan(data),
            str(data["configuration"]),
            digest if isinstance(digest, str) else None,
            _canonical(data),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PlanError(
            f"{path}: not a readable saved plan ({error}); make a new one "
            "with `syncdsl plan --out FILE`"
        ) from error


def _plan(data: dict[str, Any]) -> Plan:
    estimate = dict(data["estimate"])
    estimate.pop("apply_calls", None)
    return Plan(
        property_changes=tuple(_property_change(c) for c in data["property_changes"]),
        contact_changes=tuple(_contact_change(c) for c in data["contact_changes"]),
        unchanged=int(data["summary"]["unchanged"]),
        rejected=tuple(Rejection(**r) for r in data["rejected"]),
        adoptions=tuple(Adoption(**a) for a in data["adoptions"]),
        removed_audiences=tuple(RemovedAudience(**r) for r in data["removed_audiences"]),
        lock_changes=tuple(data["lock_changes"]),
        warnings=tuple(data["warnings"]),
        estimate=Estimate(**estimate),
        fingerprint=Fingerprint(**data["fingerprint"]),
        refreshed=bool(data["refreshed"]),
        audience_properties=tuple(data["audience_properties"]),
        managed_properties=tuple(data["managed_properties"]),
        inputs=tuple(SourceCounts(**counts) for counts in data.get("inputs", ())),
        notes=tuple(data.get("notes", ())),
        guards=tuple(GuardVerdict(**verdict) for verdict in data.get("guards", ())),
        property_types=dict(data.get("property_types", {})),
        kept=tuple(KeptValue(**k) for k in data.get("kept", ())),
        kept_settled=dict(data.get("kept_settled", {})),
        not_in_hubspot=tuple(
            NotInHubSpot(s["email"], tuple(Origin.parse(o) for o in s.get("provenance", ())))
            for s in data.get("not_in_hubspot", ())
        ),
    )


def _contact_change(data: dict[str, Any]) -> ContactChange:
    return contact_change(
        data["action"],
        data["email"],
        tuple(ValueChange(v["property"], v["before"], v["after"]) for v in data["changes"]),
        hubspot_id=data.get("hubspot_id"),
        provenance=tuple(Origin.parse(text) for text in data.get("provenance", ())),
        drift=bool(data.get("drift", False)),
        settled=dict(data.get("settled", {})),
        resolved_via=data.get("resolved_via"),
        reason=data.get("reason"),
        by_id=bool(data.get("by_id", False)),
    )


def _property_change(data: dict[str, Any]) -> PropertyChange:
    group = data.get("group")
    definition = data.get("definition")
    return PropertyChange(
        action=data["action"],
        name=data["name"],
        detail=data["detail"],
        group=PropertyGroup(**group) if group else None,
        definition=_schema(definition) if definition else None,
        before=data.get("before"),
        after=data.get("after"),
    )


def _schema(data: dict[str, Any]) -> PropertySchema:
    options = tuple(PropertyOption(**o) for o in data.get("options", ()))
    return PropertySchema(**{**data, "options": options})
