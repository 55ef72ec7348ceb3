"""The contact properties and property groups endpoints (HUBSPOT.md §1.6)."""

from __future__ import annotations

import copy
from typing import Any

from syncdsl.emulator.bodies import ApiError, error, iso_now
from syncdsl.emulator.contacts import Call, Response, inputs_of
from syncdsl.emulator.store import Store
from syncdsl.emulator.validation import apply_property_update, build_property, check_group_create


def _exists(name: str) -> ApiError:
    return error(
        409,
        "OBJECT_ALREADY_EXISTS",
        f"Property named '{name}' already exists.",
        context={"name": [name]},
    )


def _missing(name: str) -> ApiError:
    return error(
        404,
        "OBJECT_NOT_FOUND",
        f"Property {name} does not exist for object type contacts.",
        context={"name": [name]},
    )


def list_properties(store: Store, call: Call) -> Response:
    with store.lock:
        results = [copy.deepcopy(p) for p in store.properties.values()]
    wanted = call.names()
    if wanted:
        results = [p for p in results if p["name"] in wanted]
    if call.arg("archived") == "true":
        results = []  # archived properties are removed outright by the emulator
    return 200, {"results": results}


def get_property(store: Store, call: Call) -> Response:
    name = call.params["name"]
    with store.lock:
        definition = store.properties.get(name)
        if definition is None:
            raise _missing(name)
        return 200, copy.deepcopy(definition)


def create_property(store: Store, call: Call) -> Response:
    with store.lock:
        definition = build_property(call.body, store.groups)
        if definition["name"] in store.properties:
            raise _exists(definition["name"])
        store.properties[definition["name"]] = definition
        return 201, copy.deepcopy(definition)


def batch_create_properties(store: Store, call: Call) -> Response:
    """Create each valid input; the failed ones come back as item errors: a 207 (v3, 2026-03), or
    inside a 200 on 2026-09, which answers 200 whatever happened (the specs' shapes)."""
    started = iso_now()
    inputs = inputs_of(call.body, limit=1000)
    results, errors = [], []
    with store.lock:
        for item in inputs:
            try:
                definition = build_property(item, store.groups)
                if definition["name"] in store.properties:
                    raise _exists(definition["name"])
            except ApiError as failure:
                errors.append(_item_error(failure, item))
                continue
            store.properties[definition["name"]] = definition
            results.append(copy.deepcopy(definition))
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": iso_now(),
    }
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return call.partial(), body
    return (200 if call.dated_shapes else 201), body


def _item_error(failure: ApiError, item: dict[str, Any]) -> dict[str, Any]:
    context = dict(failure.body.get("context") or {})
    context.setdefault("name", [str(item.get("name", ""))])
    return {
        "status": "error",
        "category": failure.body["category"],
        "message": failure.body["message"],
        "context": context,
        "errors": [],
        "links": {},
    }


def update_property(store: Store, call: Call) -> Response:
    name = call.params["name"]
    with store.lock:
        current = store.properties.get(name)
        if current is None:
            raise _missing(name)
        updated = apply_property_update(current, call.body, store.groups)
        store.properties[name] = updated
        return 200, copy.deepcopy(updated)


def archive_property(store: Store, call: Call) -> Response:
    name = call.params["name"]
    with store.lock:
        definition = store.properties.get(name)
        if definition is None:
            raise _missing(name)
        if definition.get("hubspotDefined"):
            raise error(
                400,
                "VALIDATION_ERROR",
                f"{name} is a HubSpot-defined property and cannot be archived.",
            )
        store.remove_property(name)
    return 204, {}


def list_groups(store: Store, call: Call) -> Response:
    with store.lock:
        return 200, {"results": [dict(g) for g in store.groups.values()]}


def create_group(store: Store, call: Call) -> Response:
    group = check_group_create(call.body)
    with store.lock:
        if group["name"] in store.groups:
            raise error(
                409,
                "OBJECT_ALREADY_EXISTS",
                f"Property group named '{group['name']}' already exists.",
                context={"name": [group["name"]]},
            )
        store.groups[group["name"]] = group
        return 201, dict(group)
