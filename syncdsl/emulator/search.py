"""POST /contacts/search: filter groups, one sort, paging and HubSpot's limits (HUBSPOT.md §1.5)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncdsl.emulator.bodies import validation_error
from syncdsl.emulator.contacts import Call, Response, property_names
from syncdsl.emulator.store import Store

MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
MAX_QUERY = 3_000
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "GT",
        "GTE",
        "LT",
        "LTE",
        "BETWEEN",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)
_QUERY_PROPERTIES = ("email", "firstname", "lastname", "phone", "company", "hs_object_id")

Key = Any  # float for numbers and dates, lower-cased str otherwise
Predicate = Callable[[dict[str, str]], bool]


def search(store: Store, call: Call) -> Response:
    body = call.body if call.body is not None else {}
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: the search body must be an object.")
    limit = _limit(body.get("limit", 10))
    after = _after(body.get("after"))
    groups = _filter_groups(store, body.get("filterGroups") or [])
    sort_name, descending = _sort(store, body.get("sorts") or [])
    query = _query(body.get("query"))
    names = property_names(body.get("properties"))
    with store.lock:
        # Search is not read-your-writes: within the lag of a write it sees the record as it was
        # before (a contact created since not at all), filters included (HUBSPOT.md §0).
        records = _SearchView(store)
        ids = _matching_ids(store, groups, records)
        if query is not None:
            ids = [i for i in ids if _matches_query(records[str(i)], query)]
        if sort_name != "hs_object_id" or descending:
            ids = _sorted_ids(store, ids, sort_name, descending, records)
        results = [
            store.view_of(str(i), records[str(i)], names, nulls=call.dated_shapes)
            for i in ids[after : after + limit]
        ]
    response: dict[str, Any] = {"total": len(ids), "results": results}
    if after + limit < len(ids):
        response["paging"] = {"next": {"after": str(after + limit)}}
    return 200, response


class _SearchView:
    """The records search sees, by id: the store's, or with a search lag the indexed ones."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.lagging = bool(store.search_lag)

    def __getitem__(self, contact_id: str) -> dict[str, str]:
        if not self.lagging:
            return self._store.contacts[contact_id]
        return self._store.searchable(contact_id) or {}

    def visible(self, ids: list[int]) -> list[int]:
        if not self.lagging:
            return ids
        return [i for i in ids if self._store.searchable(str(i)) is not None]


def _matching_ids(store: Store, groups: list[_Group], records: _SearchView) -> list[int]:
    """Ids (ascending) matching any group; id ranges are cut by bisection, not by scanning."""
    if not groups:
        return records.visible(store.ids)
    found: list[list[int]] = []
    for group in groups:
        candidates = records.visible(group.candidates(store.ids))
        if group.predicates:
            candidates = [
                i for i in candidates if all(p(records[str(i)]) for p in group.predicates)
            ]
        found.append(candidates)
    return found[0] if len(found) == 1 else sorted(set().union(*found))


def _sorted_ids(
    store: Store, ids: list[int], name: str, descending: bool, contacts: _SearchView
) -> list[int]:
    kind = _kind(store, name)
    present = [i for i in ids if name in contacts[str(i)]]
    absent = [i for i in ids if name not in contacts[str(i)]]
    present.sort(key=lambda i: _key(kind, contacts[str(i)][name]), reverse=descending)
    return present + absent  # records without the value come last either way


def _limit(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise validation_error(f"limit must be a non-negative integer, got {raw!r}.")
    if raw > MAX_LIMIT:
        raise validation_error(
            f"Search limit {raw} is too large: at most {MAX_LIMIT} results per page are allowed."
        )
    return raw


def _after(raw: Any) -> int:
    if raw is None or raw == "":
        return 0
    try:
        after = int(raw)
    except (TypeError, ValueError):
        raise validation_error(f"after must be formatted as an integer, got {raw!r}.") from None
    if after < 0:
        raise validation_error(f"after must not be negative, got {raw!r}.")
    if after >= MAX_RESULTS:
        # HubSpot serves at most 10,000 results per query; paging past them is a 400.
        raise validation_error(
            f"Paging past {MAX_RESULTS} results is not supported by the search API: narrow the "
            "query (for example with a GT filter on hs_object_id) and page again."
        )
    return after


def _query(raw: Any) -> str | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or len(raw) > MAX_QUERY:
        raise validation_error(f"query must be a string of at most {MAX_QUERY} characters.")
    return raw.lower()


def _matches_query(record: dict[str, str], query: str) -> bool:
    return any(query in record.get(name, "").lower() for name in _QUERY_PROPERTIES)


def _sort(store: Store, sorts: Any) -> tuple[str, bool]:
    if not isinstance(sorts, list):
        raise validation_error("sorts must be an array.")
    if len(sorts) > 1:
        raise validation_error("Only one sort is allowed per search request.")
    if not sorts:
        return "hs_object_id", False
    sort = sorts[0]
    if isinstance(sort, str):  # the legacy form "createdate" / "-createdate"
        name, descending = sort.lstrip("-"), sort.startswith("-")
    elif isinstance(sort, dict) and isinstance(sort.get("propertyName"), str):
        direction = sort.get("direction", "ASCENDING")
        if direction not in ("ASCENDING", "DESCENDING"):
            raise validation_error(f"Sort direction must be ASCENDING or DESCENDING: {direction!r}")
        name, descending = sort["propertyName"], direction == "DESCENDING"
    else:
        raise validation_error("Each sort needs a propertyName and a direction.")
    _require_property(store, name)
    return name, descending


def _require_property(store: Store, name: Any) -> None:
    if not isinstance(name, str) or name not in store.properties:
        raise validation_error(
            f'Property "{name}" does not exist',
            errors=[
                {
                    "message": f'Property "{name}" does not exist',
                    "code": "PROPERTY_DOESNT_EXIST",
                    "context": {"propertyName": [str(name)]},
                }
            ],
        )


@dataclass
class _Group:
    """One filter group: predicates on records, plus hs_object_id bounds applied by bisection."""

    predicates: list[Predicate] = field(default_factory=list)
    id_bounds: list[tuple[str, float]] = field(default_factory=list)

    def candidates(self, ids: list[int]) -> list[int]:
        start, end = 0, len(ids)
        for operator, value in self.id_bounds:
            if operator in ("GT", "GTE", "EQ"):
                cut = bisect.bisect_right if operator == "GT" else bisect.bisect_left
                start = max(start, cut(ids, value))
            if operator in ("LT", "LTE", "EQ"):
                cut = bisect.bisect_left if operator == "LT" else bisect.bisect_right
                end = min(end, cut(ids, value))
        return ids[start:end] if start < end else []


_ID_RANGE = frozenset({"EQ", "GT", "GTE", "LT", "LTE"})


def _filter_groups(store: Store, raw_groups: Any) -> list[_Group]:
    if not isinstance(raw_groups, list):
        raise validation_error("filterGroups must be an array.")
    if len(raw_groups) > MAX_GROUPS:
        raise validation_error(f"Too many filter groups: at most {MAX_GROUPS} are allowed.")
    total = 0
    groups = []
    for raw_group in raw_groups:
        filters = raw_group.get("filters") if isinstance(raw_group, dict) else None
        if not isinstance(filters, list):
            raise validation_error("Each filter group needs a 'filters' array.")
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise validation_error(
                f"Too many filters in a group: at most {MAX_FILTERS_PER_GROUP} are allowed."
            )
        total += len(filters)
        group = _Group()
        for spec in filters:
            predicate = _predicate(store, spec)  # validates every filter, id bounds included
            if spec["propertyName"] == "hs_object_id" and spec["operator"] in _ID_RANGE:
                group.id_bounds.append((spec["operator"], float(spec["value"])))
            else:
                group.predicates.append(predicate)
        groups.append(group)
    if total > MAX_FILTERS:
        raise validation_error(f"Too many filters: at most {MAX_FILTERS} in total are allowed.")
    return groups


def _kind(store: Store, name: str) -> str:
    type_ = store.properties[name]["type"]
    if type_ == "number":
        return "number"
    if type_ in ("date", "datetime"):
        return "time"
    return "text"


def _key(kind: str, value: Any) -> Key:
    """A comparable key: numbers as floats, dates as epoch ms, text case-insensitive."""
    text = str(value)
    if kind == "number":
        return float(text)
    if kind == "time":
        if text.lstrip("-").isdigit():
            return float(text)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp() * 1000
    return text.lower()


def _predicate(store: Store, spec: Any) -> Predicate:
    if not isinstance(spec, dict):
        raise validation_error("Each filter must be an object.")
    name, operator = spec.get("propertyName"), spec.get("operator")
    _require_property(store, name)
    if not isinstance(operator, str) or operator not in OPERATORS:
        raise validation_error(f"Unknown filter operator {operator!r}.")
    kind = _kind(store, str(name))
    try:
        return _build(str(name), str(operator), kind, spec)
    except (TypeError, ValueError):
        raise validation_error(
            f"Filter on {name} with {operator} has a value of the wrong kind for a {kind} property."
        ) from None


def _build(name: str, operator: str, kind: str, spec: dict[str, Any]) -> Predicate:
    if operator == "HAS_PROPERTY":
        return lambda r: name in r
    if operator == "NOT_HAS_PROPERTY":
        return lambda r: name not in r
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list):
            raise TypeError("values")
        wanted = {_key(kind, v) for v in values}
        if operator == "IN":
            return lambda r: name in r and _key(kind, r[name]) in wanted
        return lambda r: name not in r or _key(kind, r[name]) not in wanted
    if "value" not in spec:
        raise TypeError("value")
    target = _key(kind, spec["value"])
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(target).strip("*")
        hit: Predicate = lambda r: name in r and token in str(r[name]).lower()  # noqa: E731
        return hit if operator == "CONTAINS_TOKEN" else (lambda r: not hit(r))
    if operator == "BETWEEN":
        high = _key(kind, spec.get("highValue"))
        return lambda r: name in r and target <= _key(kind, r[name]) <= high
    compare = _COMPARISONS[operator]
    if operator == "NEQ":
        return lambda r: name not in r or compare(_key(kind, r[name]), target)
    return lambda r: name in r and compare(_key(kind, r[name]), target)


_COMPARISONS: dict[str, Callable[[Key, Key], bool]] = {
    "EQ": lambda a, b: a == b,
    "NEQ": lambda a, b: a != b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
}
