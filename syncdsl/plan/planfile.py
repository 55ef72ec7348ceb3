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
the state store, and last `digest`: an HMAC-SHA256, keyed by the state store (its lineage and a
secret only the state holds), of the SHA-256s of every other value's canonical JSON, so `apply
FILE` refuses a plan edited after `syncdsl plan` wrote it (reformatting it is not an edit).
Both are written as they are made, and read back a line at a time: `contact_changes` and
`adoptions` hold one entry per line, so a plan of millions of changes is never held in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from syncdsl.errors import PlanError
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.plan.definition import (
    ADOPTIONS,
    CHANGES,
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
from syncdsl.plan.spill import Codec, Spilled, SpillWriter
from syncdsl.records.outcome import Origin, SourceCounts
from syncdsl.records.rejection import Rejection
from syncdsl.records.values import iso_form
from syncdsl.safefile import open_atomic


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


def _document(
    plan: Plan, *, configuration: str, saved: bool, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The plan's JSON document, but for its two long lists (`LONG_KEYS`), streamed apart."""
    document: dict[str, Any] = {
        "format_version": plan.format_version,
        "configuration": configuration,
        "refreshed": plan.refreshed,
        "summary": summary(plan),
        "property_changes": [asdict(change) for change in plan.property_changes],
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
        **extra,
    }
    if saved:
        document["property_types"] = dict(plan.property_types)
    return document


def _change_entry(change: ContactChange, types: Mapping[str, str], saved: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "action": change.action,  # the kind is the change's class
        "email": change.email,
        "changes": [_value_change(v, types) for v in change.changes],
        "hubspot_id": change.hubspot_id,
        "provenance": [str(origin) for origin in change.provenance],
        "drift": change.drift,
        "resolved_via": change.resolved_via,
        "reason": change.reason,
        "by_id": change.by_id,
    }
    if saved:
        entry["settled"] = dict(change.settled)
    return entry


def write_plan(
    plan: Plan,
    out: IO[str],
    *,
    configuration: str,
    saved: bool = False,
    key: bytes | None = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write the `--json` document (with saved=True, the saved-plan file, signed with `key`)
    to `out` as it is made: keys sorted (the digest last), the contact changes and adoptions one
    per line, so that a plan of millions of changes is never held whole in memory."""
    document = _document(plan, configuration=configuration, saved=saved, extra=extra or {})
    long: dict[str, Iterator[Any]] = {
        "contact_changes": (
            _change_entry(c, plan.property_types, saved) for c in plan.contact_changes
        )
    }
    if saved:
        long["adoptions"] = (asdict(a) for a in plan.adoptions)
    signature = _Signature()
    out.write("{\n")
    keys = sorted({*document, *long})
    for number, name in enumerate(keys):
        comma = "," if number < len(keys) - 1 or saved else ""
        if name not in long:
            signature.add(name, document[name])
            value = json.dumps(document[name], indent=2, sort_keys=True, ensure_ascii=False)
            out.write(f"  {json.dumps(name)}: {value.replace(chr(10), chr(10) + '  ')}{comma}\n")
            continue
        entries = _ListSignature()
        separator = ""
        out.write(f"  {json.dumps(name)}: [")
        for entry in long[name]:
            out.write(separator + "\n    " + entries.add(entry).decode("utf-8"))
            separator = ","
        signature.set(name, entries.close())
        out.write(("\n  ]" if separator else "]") + f"{comma}\n")
    if saved:
        if key is None:
            raise ValueError("a saved plan is signed: key is required")
        out.write(f"  {json.dumps(DIGEST)}: {json.dumps(_digest(signature.digest(), key))}\n")
    out.write("}\n")


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


DIGEST = "digest"
_DIGEST_SCHEME = "hmac-sha256-content:"
_OLD_SCHEME = "hmac-sha256:"  # syncdsl before 2026-12: an HMAC of the whole canonical JSON
EDITED = (
    "the saved plan was edited after `syncdsl plan` wrote it (its digest does not match its "
    "changes): run plan again (`syncdsl plan PATH --out FILE`) and apply the new file"
)
_REMAKE = "make a new one with `syncdsl plan --out FILE`"


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _Signature:
    """What a saved plan's digest signs: the SHA-256 of each top-level value's canonical JSON
    (keys sorted, no whitespace), combined in key order. It is the same however the file is laid
    out, and it is computed as the long lists stream by."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    def add(self, key: str, value: Any) -> None:
        self._values[key] = hashlib.sha256(_canonical(value)).digest()

    def set(self, key: str, hashed: bytes) -> None:
        """A value hashed apart (a long list: `_ListSignature`)."""
        self._values[key] = hashed

    def digest(self) -> bytes:
        combined = hashlib.sha256()
        for key in sorted(self._values):
            combined.update(_canonical(key) + b":" + self._values[key])
        return combined.digest()


class _ListSignature:
    """One long list's part of a `_Signature`: the SHA-256 of `[entry,entry,...]`, its entries
    added as they stream by."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(b"[")
        self._first = True

    def add(self, entry: Any) -> bytes:
        """Sign one entry; its canonical JSON."""
        text = _canonical(entry)
        self._hash.update(text if self._first else b"," + text)
        self._first = False
        return text

    def close(self) -> bytes:
        self._hash.update(b"]")
        return self._hash.digest()


@dataclass(frozen=True)
class SavedPlan:
    """A saved plan as read back: the plan, its configuration, and what its digest covers."""

    plan: Plan
    configuration: str
    digest: str | None
    signed: bytes  # the `_Signature` of the document without its digest


def _digest(signed: bytes, key: bytes) -> str:
    return _DIGEST_SCHEME + hmac.new(key, signed, hashlib.sha256).hexdigest()


def save_plan(plan: Plan, path: Path, *, configuration: str, key: bytes) -> None:
    """Write the saved plan (0600: it holds contacts' values; never through a symlink), signed
    with `key` (StateStore.plan_key)."""
    try:
        with open_atomic(path, private=True) as out:
            write_plan(plan, out, configuration=configuration, saved=True, key=key)
    except OSError as error:
        raise PlanError(f"cannot save the plan to {path}: {error.strerror or error}") from error


def check_unedited(saved: SavedPlan, key: bytes) -> None:
    """Raise PlanError unless the digest is the one `save_plan` computed with `key`."""
    if saved.digest is not None and saved.digest.startswith(_OLD_SCHEME):
        raise PlanError(
            "the saved plan was written by an earlier syncdsl, which signed plans otherwise: "
            "run plan again (`syncdsl plan PATH --out FILE`) and apply the new file"
        )
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
    (checked against the state with `check_unedited`). Its contact changes and adoptions are
    read a line at a time, as `write_plan` wrote them, into `Spilled` lists; a file laid out
    otherwise (reformatted) is read whole."""
    try:
        try:
            with path.open("rb") as handle:
                data, long = _read_streaming(handle)
        except ValueError:
            data, long = _read_whole(path)
        if data.get("format_version") != FORMAT_VERSION:
            raise PlanError(
                f"{path}: saved plan format {data.get('format_version')!r} is not supported "
                f"(this syncdsl writes {FORMAT_VERSION}); make a new plan"
            )
        if "adoptions" not in long:
            raise PlanError(
                f"{path}: this is a --json plan, not a saved plan; use `plan --out FILE`"
            )
        digest = data.pop(DIGEST, None)
        signature = _Signature()
        for name, value in data.items():
            signature.add(name, value)
        for name, (_, signed) in long.items():
            signature.set(name, signed)
        return SavedPlan(
            _plan(data, long["contact_changes"][0], long["adoptions"][0]),
            str(data["configuration"]),
            digest if isinstance(digest, str) else None,
            signature.digest(),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise PlanError(f"{path}: not a readable saved plan ({error}); {_REMAKE}") from error


_Long = dict[str, tuple[Spilled[Any], bytes]]  # a long list, and the hash of its canonical JSON
_DECODERS: dict[str, tuple[Codec[Any], Callable[[dict[str, Any]], Any]]] = {
    "contact_changes": (CHANGES, lambda entry: _contact_change(entry)),
    "adoptions": (ADOPTIONS, lambda entry: Adoption(**entry)),
}


def _read_whole(path: Path) -> tuple[dict[str, Any], _Long]:
    """A plan laid out otherwise than `write_plan` lays it out (re-indented, say), read whole."""
    data = orjson.loads(path.read_bytes())  # strict JSON: no NaN, no Infinity to slip past
    return data, _parsed_lists(data, {})


def _parsed_lists(data: dict[str, Any], long: _Long) -> _Long:
    """`long` and the long lists `data` holds parsed (an empty one, or a reformatted file's),
    taken out of `data`."""
    for name, (codec, decode) in _DECODERS.items():
        if name in data:
            entries = data.pop(name)
            signature = _ListSignature()
            for entry in entries:
                signature.add(entry)
            long[name] = (Spilled.of(codec, map(decode, entries)), signature.close())
    return long


def _read_streaming(handle: IO[bytes]) -> tuple[dict[str, Any], _Long]:
    """The document as `write_plan` laid it out: its long lists an entry per line, read into
    `Spilled` lists as they come; the rest parsed once. ValueError: not laid out so."""
    rest: list[bytes] = []
    long: _Long = {}
    openings = {f"  {json.dumps(name)}: [".encode(): name for name in _DECODERS}
    lines = iter(handle)
    for line in lines:
        name = openings.get(line.rstrip())
        if name is None:
            rest.append(line)
            continue
        codec, decode = _DECODERS[name]
        writer, signature = SpillWriter(codec), _ListSignature()
        for entry_line in lines:
            if not entry_line.startswith(b"    "):
                if not entry_line.startswith(b"  ]"):
                    raise ValueError(f"{name} is not one entry per line")
                rest.append(line.rstrip() + entry_line.lstrip())  # "name": [],
                break
            entry = orjson.loads(entry_line.rstrip(b"\n").rstrip(b","))
            signature.add(entry)
            writer.append(decode(entry))
        long[name] = (writer.close(), signature.close())
    data = orjson.loads(b"".join(rest))
    for name in long:
        del data[name]
    return data, _parsed_lists(data, long)


def _plan(
    data: dict[str, Any], contact_changes: Spilled[ContactChange], adoptions: Spilled[Adoption]
) -> Plan:
    estimate = dict(data["estimate"])
    estimate.pop("apply_calls", None)
    return Plan(
        property_changes=tuple(_property_change(c) for c in data["property_changes"]),
        contact_changes=contact_changes,
        unchanged=int(data["summary"]["unchanged"]),
        rejected=tuple(Rejection(**r) for r in data["rejected"]),
        adoptions=adoptions,
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
