"""The contacts endpoints: batch upsert/read/create/update, list, get by id or email."""

from __future__ import annotations

import bisect
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from syncdsl.emulator.bodies import (
    error,
    iso_now,
    not_found_item,
    property_value_error,
    validation_error,
    validation_rule_error,
)
from syncdsl.emulator.store import Store
from syncdsl.emulator.validation import email_problem, is_valid_email

MAX_BATCH = 100
MAX_PAGE = 100

Response = tuple[int, dict[str, Any]]


@dataclass
class Call:
    """One parsed API request as the endpoint functions see it."""

    body: Any
    query: dict[str, list[str]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    version: str = "v3"  # the API version the path names: "v3", "2026-03" or "2026-09"
    rng: random.Random = field(default_factory=random.Random)
    base_url: str = ""

    @property
    def dated_shapes(self) -> bool:
        """2026-09 replies: item errors inside the 200 (never a 207) and null values (§0)."""
        return self.version == "2026-09"

    def partial(self) -> int:
        """The status of a batch reply that carries item errors: 207, or 200 on 2026-09."""
        return 200 if self.dated_shapes else 207

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def names(self, name: str = "properties") -> list[str] | None:
        """A comma-separated and/or repeated query list; None when not given."""
        if name not in self.query:
            return None
        return [n for value in self.query[name] for n in value.split(",") if n]


def inputs_of(body: Any, *, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise validation_error("Invalid input JSON: the body needs an 'inputs' array.")
    inputs = body["inputs"]
    if len(inputs) > limit:
        raise validation_error(
            f"Batch of {len(inputs)} inputs is too large: at most {limit} inputs are allowed "
            "per batch request.",
            context={"maxInputs": [str(limit)], "inputs": [str(len(inputs))]},
        )
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise validation_error(f"Invalid input JSON: inputs[{index}] must be an object.")
    return list(inputs)


def property_names(raw: Any) -> list[str] | None:
    """A body's `properties` list of names (None or empty: the defaults); 400 for anything else."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise validation_error("Invalid input JSON: properties must be an array of names.")
    return raw


def _properties_of(item: dict[str, Any], index: int) -> dict[str, Any]:
    properties = item.get("properties", {})
    if not isinstance(properties, dict):
        raise validation_error(f"Invalid input JSON: inputs[{index}].properties must be an object.")
    return properties


def _reject_duplicates(keys: list[str]) -> None:
    duplicates = sorted(key for key, seen in Counter(keys).items() if seen > 1)
    if duplicates:
        raise validation_error(
            f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
            context={"ids": duplicates},
        )


def _envelope(results: list[dict[str, Any]], started: str, rng: random.Random) -> dict[str, Any]:
    # HubSpot returns batch results in no particular order (HUBSPOT.md §1.1): shuffle them.
    rng.shuffle(results)
    return {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_now(),
    }


def _written(store: Store, contact_id: str, names: Any, *, created: bool = False) -> dict[str, Any]:
    """A write's result as HubSpot gives it (HUBSPOT.md §0): only the properties written, plus
    `lastmodifieddate` and derived ones (`hs_email_domain` when the email was written); no
    `email` when it was not."""
    record = store.contacts[contact_id]
    wanted = {"hs_object_id", "lastmodifieddate", *names}
    if created:
        wanted |= {"createdate", "email"}
    result = store.view(contact_id, [name for name in record if name in wanted])
    email = record.get("email")
    if "email" in wanted and isinstance(email, str) and "@" in email:
        result["properties"]["hs_email_domain"] = email.rpartition("@")[2]
    return result


def _traced(result: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    # HubSpot echoes an input's objectWriteTraceId on its result, so callers can match them.
    if isinstance(item.get("objectWriteTraceId"), str):
        result["objectWriteTraceId"] = item["objectWriteTraceId"]
    return result


def batch_upsert(store: Store, call: Call) -> Response:
    """Create or update by email; one bad input fails the whole batch (HUBSPOT.md §2.2)."""
    started = iso_now()
    inputs = inputs_of(call.body)
    planned: list[tuple[str, dict[str, str]]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        email, values, item_problems = _upsert_input(store, item, index)
        problems += item_problems
        planned.append((email, values))
    _reject_duplicates([email for email, _ in planned])
    if problems:
        raise property_value_error(problems)
    results = []
    with store.lock:
        _reject_secondary_emails(store, [email for email, _ in planned])
        _check_rules(
            store, [values for email, values in planned if store.id_for_email(email) is None]
        )
        for (email, values), item in zip(planned, inputs, strict=True):
            contact_id = store.id_for_email(email)
            created = contact_id is None
            if contact_id is None:
                contact_id = store.create_contact({"email": email, **values})
            else:
                store.update_contact(contact_id, values)
            result = _written(store, contact_id, values, created=created)
            result["new"] = created
            results.append(_traced(result, item))
    return 200, _envelope(results, started, call.rng)


def _check_rules(store: Store, creates: list[dict[str, str]]) -> None:
    """A new contact must meet the account's validation rules, or the whole batch fails (§0)."""
    missing = [name for values in creates for name in store.missing_on_create(values)]
    if missing:
        raise validation_rule_error(list(dict.fromkeys(missing)))


def _reject_secondary_emails(store: Store, emails: list[str]) -> None:
    """An upsert by another contact's secondary address fails the whole batch with a 409, in
    HubSpot's newer body (HUBSPOT.md §0)."""
    for email in emails:
        owner = store.id_for_secondary_email(email)
        if owner is not None and store.id_for_email(email) is None:
            message = f"A contact with email {email} already exists. Existing ID: {owner}"
            raise error(
                409,
                "OBJECT_ALREADY_EXISTS",
                message,
                error="CONTACT_EXISTS",
                errors=[{"message": message, "in": "email"}],
            )


def _upsert_input(
    store: Store, item: dict[str, Any], index: int
) -> tuple[str, dict[str, str], list[dict[str, Any]]]:
    id_property = item.get("idProperty")
    raw_id = item.get("id")
    if not isinstance(raw_id, str) or not raw_id:
        raise validation_error(
            f"Invalid input JSON: inputs[{index}].id must be a non-empty string."
        )
    if id_property != "email":
        name = id_property or "hs_object_id"
        raise validation_error(
            f"Unable to perform update/upsert by non-unique 0-1 property {name} in portal ID "
            '12345678 (the emulator upserts contacts by idProperty "email" only)'
        )
    email = raw_id.strip().lower()
    values, problems = store.check_properties(_properties_of(item, index), raw_id)
    if not is_valid_email(raw_id.strip()):
        problems.insert(0, email_problem(raw_id, raw_id))
    elif values.get("email", email) != email:
        problems.append(
            {
                "name": "email",
                "error": "INVALID_EMAIL",
                "message": f"The email property {values['email']} does not match the id {raw_id}",
                "id": raw_id,
            }
        )
    values.pop("email", None)
    return email, values, problems


def batch_create(store: Store, call: Call) -> Response:
    """Create contacts; an email that exists fails the whole batch with 409 (HUBSPOT.md §2.3)."""
    started = iso_now()
    inputs = inputs_of(call.body)
    planned: list[dict[str, str]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        properties = _properties_of(item, index)
        values, item_problems = store.check_properties(properties, properties.get("email"))
        problems += item_problems
        planned.append(values)
    if problems:
        raise property_value_error(problems)
    _reject_duplicates([v["email"] for v in planned if v.get("email")])
    with store.lock:
        for values in planned:
            existing = store.id_for_email(values.get("email", "")) if values.get("email") else None
            if existing is not None:
                raise error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        _check_rules(store, planned)
        results = []
        for values, item in zip(planned, inputs, strict=True):
            contact_id = store.create_contact(values)
            results.append(_traced(_written(store, contact_id, values, created=True), item))
    return 201, _envelope(results, started, call.rng)


def batch_update(store: Store, call: Call) -> Response:
    """Update by id (or idProperty=email); unknown ids come back as one item error
    (a 207; inside the 200 on 2026-09)."""
    started = iso_now()
    inputs = inputs_of(call.body)
    planned: list[tuple[str, dict[str, str]]] = []
    problems: list[dict[str, Any]] = []
    for index, item in enumerate(inputs):
        raw_id = item.get("id")
        if not isinstance(raw_id, str) or not raw_id:
            raise validation_error(f"Invalid input JSON: inputs[{index}].id must be a string.")
        if item.get("idProperty") not in (None, "hs_object_id", "email"):
            raise validation_error(f"Unsupported idProperty {item['idProperty']!r} for contacts.")
        values, item_problems = store.check_properties(_properties_of(item, index), raw_id)
        problems += item_problems
        key = raw_id.lower() if item.get("idProperty") == "email" else raw_id
        planned.append((key, values))
    _reject_duplicates([key for key, _ in planned])
    if problems:
        raise property_value_error(problems)
    results, missing = [], []
    with store.lock:
        resolved = [(_resolve(store, key), key, values) for key, values in planned]
        _reject_email_takeover(store, resolved)
        traces: list[str] = []
        for (contact_id, key, values), item in zip(resolved, inputs, strict=True):
            if contact_id is None:
                missing.append(key)
                if isinstance(item.get("objectWriteTraceId"), str):
                    traces.append(item["objectWriteTraceId"])
                continue
            store.update_contact(contact_id, values)
            results.append(_traced(_written(store, contact_id, values), item))
    envelope = _envelope(results, started, call.rng)
    if missing:
        item_error = not_found_item(missing)
        if traces:  # HubSpot echoes the failed inputs' trace ids in the error's context
            item_error["context"]["objectWriteTraceId"] = traces
        envelope.update(numErrors=1, errors=[item_error])
        return call.partial(), envelope
    return 200, envelope


def _resolve(store: Store, key: str) -> str | None:
    if "@" in key:
        return store.id_for_email(key)
    return key if key in store.contacts else None


def _reject_email_takeover(
    store: Store, resolved: list[tuple[str | None, str, dict[str, str]]]
) -> None:
    for contact_id, _, values in resolved:
        owner = store.id_for_email(values["email"]) if values.get("email") else None
        if contact_id is not None and owner is not None and owner != contact_id:
            raise error(409, "CONFLICT", f"Contact already exists. Existing ID: {owner}")


def batch_read(store: Store, call: Call) -> Response:
    """Read by id or email; missing ones come back as ONE OBJECT_NOT_FOUND item error
    (a 207; inside the 200 on 2026-09)."""
    started = iso_now()
    inputs = inputs_of(call.body)
    body = call.body
    id_property = body.get("idProperty") or "hs_object_id"
    if id_property not in ("hs_object_id", "email"):
        raise validation_error(f"Unsupported idProperty {id_property!r} for contacts.")
    names = property_names(body.get("properties"))
    wanted = list(names) if names else None
    if wanted is not None and id_property == "email" and "email" not in wanted:
        wanted.append("email")  # results must be matchable by the id the caller sent
    results, missing, seen = [], [], set()
    with store.lock:
        for item in inputs:
            raw_id = str(item.get("id", ""))
            contact_id = _lookup(store, raw_id, id_property)
            if contact_id is None:
                missing.append(raw_id)
            elif contact_id not in seen:
                seen.add(contact_id)
                results.append(store.view(contact_id, wanted, nulls=call.dated_shapes))
    envelope = _envelope(results, started, call.rng)
    if missing:
        envelope.update(numErrors=1, errors=[not_found_item(missing)])
        return call.partial(), envelope
    return 200, envelope


def _lookup(store: Store, raw_id: str, id_property: str) -> str | None:
    if id_property == "email":
        # A secondary address finds its contact, returned with its primary email (§0).
        return store.id_for_email(raw_id) or store.id_for_secondary_email(raw_id)
    return raw_id if raw_id in store.contacts else None


def list_contacts(store: Store, call: Call) -> Response:
    """GET /contacts: pages of at most 100 in id order; `after` is the next id (opaque)."""
    limit = _int_arg(call, "limit", 10)
    if not 1 <= limit <= MAX_PAGE:
        raise validation_error(f"limit must be between 1 and {MAX_PAGE}, got {limit}.")
    after = _int_arg(call, "after", 0)
    names = call.names()
    with store.lock:
        start = bisect.bisect_left(store.ids, after)
        page_ids = store.ids[start : start + limit + 1]
        results = [store.view(str(i), names, nulls=call.dated_shapes) for i in page_ids[:limit]]
    body: dict[str, Any] = {"results": results}
    if len(page_ids) > limit:
        next_after = str(page_ids[limit])
        body["paging"] = {
            "next": {
                "after": next_after,
                "link": f"{call.base_url}/crm/v3/objects/contacts?limit={limit}&after={next_after}",
            }
        }
    return 200, body


def _int_arg(call: Call, name: str, default: int) -> int:
    raw = call.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise validation_error(f"{name} must be an integer, got {raw!r}.") from None


def _one_contact(store: Store, call: Call) -> str:
    """The id of the contact a single-object path names (by id, or `?idProperty=email`)."""
    raw_id = call.params["id"]
    id_property = call.arg("idProperty") or "hs_object_id"
    if id_property not in ("hs_object_id", "email"):
        raise validation_error(f"Unsupported idProperty {id_property!r} for contacts.")
    contact_id = _lookup(store, raw_id, id_property)
    if contact_id is None:
        raise error(
            404,
            "OBJECT_NOT_FOUND",
            "Object not found.  objectId are usually numeric.",
            context={"id": [raw_id]},
        )
    return contact_id


def get_contact(store: Store, call: Call) -> Response:
    with store.lock:
        return 200, store.view(_one_contact(store, call), call.names(), nulls=call.dated_shapes)


def patch_contact(store: Store, call: Call) -> Response:
    """PATCH one contact, as a person editing it in HubSpot would ("" clears a value)."""
    body = call.body if isinstance(call.body, dict) else {}
    with store.lock:
        contact_id = _one_contact(store, call)
        values, problems = store.check_properties(_properties_of(body, 0), contact_id)
        if problems:
            raise property_value_error(problems)
        _reject_email_takeover(store, [(contact_id, contact_id, values)])
        store.update_contact(contact_id, values)
        return 200, store.view(contact_id, None)


def delete_contact(store: Store, call: Call) -> Response:
    """DELETE (archive) one contact: 204, as in HubSpot."""
    with store.lock:
        store.delete_contact(_one_contact(store, call))
    return 204, {}


def merge(store: Store, call: Call) -> Response:
    """POST /merge {primaryObjectId, objectIdToMerge}: the merged contact's email becomes a
    secondary address of the primary one, and the merged contact is gone."""
    body = call.body if isinstance(call.body, dict) else {}
    primary, merged = str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", ""))
    with store.lock:
        if primary not in store.contacts or merged not in store.contacts or primary == merged:
            raise validation_error("primaryObjectId and objectIdToMerge must be two contact ids.")
        email = store.contacts[merged].get("email")
        store.delete_contact(merged)
        if email:
            store.add_secondary_email(primary, email)
        return 200, store.view(primary, None)
