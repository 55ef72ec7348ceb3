"""The HubSpot CRM v3 client: every call syncdsl makes to HubSpot goes through `HubSpotClient`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from syncdsl import __version__
from syncdsl.errors import HubSpotConflictError, HubSpotError, HubSpotNotFoundError
from syncdsl.hubspot import errors as hs_errors
from syncdsl.hubspot.models import ClientStats, Contact, UpdateOutcome, UpsertResult
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import (
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUSES,
    Backoff,
    rate_limit_wait,
    status_wait,
)
from syncdsl.schema import PropertyGroup, PropertyOption, PropertySchema

logger = logging.getLogger("syncdsl.hubspot")

USER_AGENT = f"syncdsl/{__version__} (+python-requests)"
BATCH_LIMIT = 100
LIST_PAGE_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_FILTERS_PER_GROUP = 6
SEARCH_FILTERS_TOTAL = 18
CONTACTS = "/crm/v3/objects/contacts"
PROPERTIES = "/crm/v3/properties/contacts"
GROUPS = "/crm/v3/properties/contacts/groups"


@dataclass(frozen=True)
class _Reply:
    """A successful response: status, parsed JSON body, and whether a network retry preceded it."""

    status: int
    body: dict[str, Any]
    after_network_retry: bool


class _VirtualClock:
    """A clock advanced by an injected (fake) sleep, so the rate budget never spins on real time."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._inner = sleep
        self._slept = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self._inner(seconds)
        with self._lock:
            self._slept += seconds

    def clock(self) -> float:
        with self._lock:
            return time.monotonic() + self._slept


class HubSpotClient:
    """Typed, thread-safe calls to HubSpot's contacts and contact-properties APIs.

    One client is shared by every worker thread: requests are pooled (`pool_size` connections),
    paced by one `RateBudget`, and retried on 429/423/477/5xx and network failures with capped
    exponential backoff and full jitter; 400/401/403/404/409 are raised at once as syncdsl errors.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tier: str = "free",
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: tuple[float, float] = (5.0, 60.0),
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = Backoff(base=backoff_base, cap=backoff_cap)
        self.stats = ClientStats()
        if sleep is not time.sleep:
            virtual = _VirtualClock(sleep)
            self._sleep: Callable[[float], None] = virtual.sleep
            clock: Callable[[], float] = virtual.clock
        else:
            self._sleep, clock = sleep, time.monotonic
        self.budget = budget or RateBudget.for_tier(tier, clock=clock, sleep=self._sleep)
        self._owns_session = session is None
        self._session = session or requests.Session()
        if self._owns_session:
            # Our retries only: urllib3's would double-count sends and ignore the rate budget.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r}, budget={self.budget!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- properties ---------------------------------------------------------------------------

    def list_properties(self) -> list[PropertySchema]:
        body = self._request("GET", PROPERTIES, operation="list_properties").body
        return [property_from_api(item) for item in body.get("results") or []]

    def get_property(self, name: str) -> PropertySchema:
        """One property; HubSpotNotFoundError when the account has none of that name."""
        path = f"{PROPERTIES}/{quote(name, safe='')}"
        return property_from_api(self._request("GET", path, operation="get_property").body)

    def create_property(self, prop: PropertySchema) -> PropertySchema:
        try:
            reply = self._request(
                "POST", PROPERTIES, operation="create_property", json_body=property_to_api(prop)
            )
        except HubSpotConflictError as exc:
            if not getattr(exc, "after_network_retry", False):
                raise
            return self.get_property(prop.name)  # our first attempt landed; its answer was lost
        return property_from_api(reply.body)

    def batch_create_properties(self, props: Sequence[PropertySchema]) -> list[PropertySchema]:
        """Create properties (100 per request); results matched by name, returned in input order."""
        created: dict[str, PropertySchema] = {}
        for start in range(0, len(props), BATCH_LIMIT):
            chunk = props[start : start + BATCH_LIMIT]
            created.update(self._batch_create_chunk(chunk))
        return [created[prop.name] for prop in props if prop.name in created]

    def _batch_create_chunk(self, chunk: Sequence[PropertySchema]) -> dict[str, PropertySchema]:
        payload = {"inputs": [property_to_api(prop) for prop in chunk]}
        try:
            reply = self._request(
                "POST",
                f"{PROPERTIES}/batch/create",
                operation="batch_create_properties",
                json_body=payload,
            )
        except HubSpotConflictError as exc:
            if not getattr(exc, "after_network_retry", False):
                raise
            wanted = {prop.name for prop in chunk}
            return {p.name: p for p in self.list_properties() if p.name in wanted}
        results = {p.name: p for p in map(property_from_api, reply.body.get("results") or [])}
        errors = [e for e in reply.body.get("errors") or [] if isinstance(e, dict)]
        if errors and all(_already_exists(e) for e in errors):
            # Another run created them since the plan: the 409 path (read back, check, go on).
            raise HubSpotConflictError(
                "some properties already exist: "
                + "; ".join(str(e.get("message", "")) for e in errors),
                status=409,
                category="OBJECT_ALREADY_EXISTS",
                operation="batch_create_properties",
                body={"errors": errors},
            )
        if errors:
            raise hs_errors.from_response(
                400,
                {
                    "category": "VALIDATION_ERROR",
                    "message": "some properties were not created",
                    "errors": errors,
                },
                {},
                operation="batch_create_properties",
            )
        return results

    def update_property(
        self,
        name: str,
        *,
        label: str | None = None,
        description: str | None = None,
        group_name: str | None = None,
        options: Sequence[PropertyOption] | None = None,
    ) -> PropertySchema:
        """PATCH only the given fields (options, when given, replace the whole option list)."""
        patch: dict[str, Any] = {}
        if label is not None:
            patch["label"] = label
        if description is not None:
            patch["description"] = description
        if group_name is not None:
            patch["groupName"] = group_name
        if options is not None:
            patch["options"] = [option_to_api(option) for option in options]
        path = f"{PROPERTIES}/{quote(name, safe='')}"
        return property_from_api(
            self._request("PATCH", path, operation="update_property", json_body=patch).body
        )

    def list_property_groups(self) -> list[PropertyGroup]:
        body = self._request("GET", GROUPS, operation="list_property_groups").body
        return [group_from_api(item) for item in body.get("results") or []]

    def create_property_group(self, group: PropertyGroup) -> PropertyGroup:
        payload = {"name": group.name, "label": group.label, "displayOrder": group.display_order}
        try:
            reply = self._request(
                "POST", GROUPS, operation="create_property_group", json_body=payload
            )
        except HubSpotConflictError as exc:
            if not getattr(exc, "after_network_retry", False):
                raise
            return next(g for g in self.list_property_groups() if g.name == group.name)
        return group_from_api(reply.body)

    # -- contacts -----------------------------------------------------------------------------

    def batch_read_contacts_by_email(
        self, emails: Sequence[str], properties: Sequence[str]
    ) -> dict[str, Contact]:
        """Contacts keyed by the lowercased email asked for; unknown emails are simply absent.

        HubSpot also matches secondary addresses (`hs_additional_emails`) and then returns the
        contact with its primary email: such a contact is keyed by the address asked for, and
        its `email` differs from that key.
        """
        if len(emails) > BATCH_LIMIT:
            raise ValueError(f"batch read takes at most {BATCH_LIMIT} emails, got {len(emails)}")
        wanted = list(dict.fromkeys(email.strip().lower() for email in emails))
        if not wanted:
            return {}
        payload = {
            "inputs": [{"id": email} for email in wanted],
            "idProperty": "email",
            "properties": list(dict.fromkeys([*_with_email(properties), "hs_additional_emails"])),
            "propertiesWithHistory": [],
        }
        try:
            body = self._request(
                "POST", f"{CONTACTS}/batch/read", operation="batch_read_contacts", json_body=payload
            ).body
        except HubSpotNotFoundError:
            return {}  # HubSpot may answer 404 when none of the emails exist
        asked = set(wanted)
        found: dict[str, Contact] = {}
        for item in body.get("results") or []:
            contact = Contact.from_api(item)
            for email in (contact.email, *contact.secondary_emails):
                if email in asked:
                    found[email] = contact
        return found

    def batch_upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> dict[str, UpsertResult]:
        """Create or update contacts by email (idempotent, so safely retried); keyed by lowercased email.

        A 400 (one bad email or property fails the whole batch) raises HubSpotValidationError.
        """
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(
                f"batch upsert takes at most {BATCH_LIMIT} contacts, got {len(inputs)}"
            )
        by_email: dict[str, Mapping[str, str]] = {}
        for email, props in inputs:
            key = email.strip().lower()
            if key in by_email:
                raise ValueError(
                    f"batch upsert got {key} twice; HubSpot would reject the whole batch"
                )
            by_email[key] = props
        if not by_email:
            return {}
        emails = list(by_email)
        payload = {
            "inputs": [
                {
                    "id": email,
                    "idProperty": "email",
                    "objectWriteTraceId": _trace_id(index),
                    "properties": dict(by_email[email]),
                }
                for index, email in enumerate(emails)
            ]
        }
        body = self._request(
            "POST", f"{CONTACTS}/batch/upsert", operation="batch_upsert_contacts", json_body=payload
        ).body
        return _upsert_results(body, emails)

    def batch_update_contacts_by_id(
        self, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> UpdateOutcome:
        """Update existing contacts by HubSpot id; never creates one.

        Results are matched by record id (and `objectWriteTraceId`), never by an echoed email.
        An id HubSpot does not know (the contact was deleted or merged away) comes back as
        missing, whether HubSpot answers a 207 OBJECT_NOT_FOUND item or a 404 for the batch.
        """
        if len(inputs) > BATCH_LIMIT:
            raise ValueError(
                f"batch update takes at most {BATCH_LIMIT} contacts, got {len(inputs)}"
            )
        if not inputs:
            return UpdateOutcome()
        payload = {
            "inputs": [
                {"id": contact_id, "objectWriteTraceId": contact_id, "properties": dict(props)}
                for contact_id, props in inputs
            ]
        }
        try:
            body = self._request(
                "POST",
                f"{CONTACTS}/batch/update",
                operation="batch_update_contacts",
                json_body=payload,
            ).body
        except HubSpotNotFoundError:
            if len(inputs) == 1:
                return UpdateOutcome(missing=frozenset({inputs[0][0]}))
            middle = len(inputs) // 2
            left = self.batch_update_contacts_by_id(inputs[:middle])
            right = self.batch_update_contacts_by_id(inputs[middle:])
            return UpdateOutcome(
                left.updated | right.updated,
                left.missing | right.missing,
                {**left.failed, **right.failed},
            )
        return _update_outcome(body, [contact_id for contact_id, _ in inputs])

    def iter_contacts(
        self, properties: Sequence[str], *, page_size: int = 100
    ) -> Iterator[Contact]:
        """Every contact, paging with HubSpot's opaque `after` cursor."""
        if not 1 <= page_size <= LIST_PAGE_LIMIT:
            raise ValueError(f"page_size must be 1..{LIST_PAGE_LIMIT}, got {page_size}")
        after: str | None = None
        while True:
            params: dict[str, Any] = {
                "limit": page_size,
                "properties": ",".join(_with_email(properties)),
            }
            if after:
                params["after"] = after
            body = self._request("GET", CONTACTS, operation="list_contacts", params=params).body
            for item in body.get("results") or []:
                yield Contact.from_api(item)
            after = _next_after(body)
            if not after:
                return

    def search_contacts(
        self,
        filter_groups: Sequence[Mapping[str, Any]],
        properties: Sequence[str],
        *,
        page_size: int = 200,
    ) -> Iterator[Contact]:
        """Every contact matching `filter_groups`, in ascending id order, even beyond 10,000.

        HubSpot stops a search at 10,000 results, so before the cap the search restarts with
        `hs_object_id GT <last id>` added to every filter group.
        """
        if not 1 <= page_size <= SEARCH_PAGE_LIMIT:
            raise ValueError(f"page_size must be 1..{SEARCH_PAGE_LIMIT}, got {page_size}")
        groups = [dict(group) for group in filter_groups]
        last_id: str | None = None  # the last contact yielded
        floor_id: str | None = None  # this partition holds ids above it
        after: str | None = None
        while True:
            payload: dict[str, Any] = {
                "filterGroups": _partitioned(groups, floor_id) if floor_id else groups,
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "properties": list(
                    dict.fromkeys([*_with_email(properties), "hs_additional_emails"])
                ),
                "limit": page_size,
                "after": after or "0",  # HubSpot's schema requires it, even for the first page
            }
            body = self._request(
                "POST",
                f"{CONTACTS}/search",
                operation="search_contacts",
                json_body=payload,
                search=True,
            ).body
            results = body.get("results") or []
            for item in results:
                contact = Contact.from_api(item)
                last_id = contact.id or last_id
                yield contact
            after = _next_after(body)
            if not after or not results:
                return
            if _offset(after) + page_size > SEARCH_RESULT_CAP:
                floor_id, after = last_id, None  # the next page would pass the cap: restart above

    # -- transport ----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        search: bool = False,
    ) -> _Reply:
        """Send with budget, retries and error mapping; return the successful reply."""
        url = f"{self.base_url}{path}"
        retries = 0
        network_retry = False
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":"))
        headers = {"Content-Type": "application/json"} if data is not None else None
        while True:
            self.budget.acquire(search=search, operation=operation)
            self.stats.record_call(operation)
            started = time.monotonic()
            try:
                response = self._session.request(
                    method, url, data=data, params=params, headers=headers, timeout=self.timeout
                )
            except RETRYABLE_EXCEPTIONS as exc:
                self.stats.record_error()
                self._log(method, url, f"{type(exc).__name__}", started, retries)
                # A TLS failure (bad certificate, wrong scheme) will not heal by waiting.
                if retries >= self.max_retries or isinstance(exc, requests.exceptions.SSLError):
                    raise self._scrub(
                        hs_errors.connection_failed(
                            exc, operation=operation, retries=retries, base_url=self.base_url
                        )
                    ) from None
                self._retry_pause(self.backoff.delay(retries))
                retries += 1
                network_retry = True
                continue
            self.budget.observe(response.headers, absorb_remaining=response.status_code != 429)
            self.stats.observe(response.headers)
            self._log(method, url, str(response.status_code), started, retries)
            status = response.status_code
            if status < 300:
                body = _json_or_none(response)
                if body is not None:
                    return _Reply(status, body, network_retry)
                status = 502  # a success with an unreadable body is a broken response; retry it
                network_retry = True  # and treat it like a lost reply (a create may have landed)
            else:
                self.stats.record_error()
            body = hs_errors.parse_body(response.text)
            error = self._handle_failure(status, body, response.headers, operation, retries, search)
            if error is not None:
                # create_* read this: a 409 after a lost reply means our earlier attempt landed.
                error.after_network_retry = network_retry  # type: ignore[attr-defined]
                raise self._scrub(error)
            retries += 1

    def _handle_failure(
        self,
        status: int,
        body: dict[str, Any],
        headers: Mapping[str, str],
        operation: str,
        retries: int,
        search: bool,
    ) -> HubSpotError | None:
        """Wait before a retry and return None, or return the error to raise."""
        if status == 429:
            self.stats.record_rate_limited()
            wait = rate_limit_wait(
                body, headers, search=search, window_seconds=self.budget.window_seconds
            )
            if wait.daily:
                self.budget.exhaust_daily()  # the other threads stop before sending, too
                return hs_errors.from_response(status, body, headers, operation=operation)
            if retries >= self.max_retries:
                return hs_errors.from_response(
                    status, body, headers, operation=operation, retries=retries
                )
            # Everyone waits: the budget is shared, so the next acquire (ours too) sleeps it out.
            self.budget.penalize(wait.seconds, search=search)
            self.stats.record_retry()
            return None
        if status in RETRYABLE_STATUSES and retries < self.max_retries:
            self._retry_pause(status_wait(status, headers, self.backoff, retries))
            return None
        return hs_errors.from_response(status, body, headers, operation=operation, retries=retries)

    def _retry_pause(self, seconds: float) -> None:
        self.stats.record_retry()
        self._sleep(seconds)

    def _scrub(self, error: HubSpotError) -> HubSpotError:
        """Belt and braces: no exception may ever carry the token, whatever HubSpot echoed."""
        if self._token:
            error.message = _redact(error.message, self._token)
            error.body = _redact(error.body, self._token)
            error.args = (str(error),)
        return error

    def _log(self, method: str, url: str, outcome: str, started: float, retries: int) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.0f ms (retry %d) headers=%s",
                method,
                url,
                outcome,
                (time.monotonic() - started) * 1000,
                retries,
                redacted_headers(self._session.headers),
            )


def redacted_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Headers fit for a log line: credentials replaced by ***."""
    secret = {"authorization", "cookie", "set-cookie", "x-api-key"}
    return {k: ("***" if k.lower() in secret else str(v)) for k, v in headers.items()}


def _redact(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {k: _redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secret) for v in value]
    return value


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _with_email(properties: Sequence[str]) -> list[str]:
    """Always ask for email: results are matched by it, never by position."""
    return list(dict.fromkeys(["email", *properties]))


def _next_after(body: Mapping[str, Any]) -> str | None:
    after = ((body.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after not in (None, "") else None


def _offset(after: str) -> int:
    """Search's `after` is an integer offset; anything else is treated as already at the cap."""
    return int(after) if after.isdigit() else SEARCH_RESULT_CAP


def _partitioned(groups: list[dict[str, Any]], last_id: str) -> list[dict[str, Any]]:
    """Every filter group ANDed with hs_object_id > last_id (filters in a group are ANDed)."""
    above = {"propertyName": "hs_object_id", "operator": "GT", "value": last_id}
    if not groups:
        return [{"filters": [above]}]
    sizes = [len(group.get("filters") or []) + 1 for group in groups]
    if max(sizes) > SEARCH_FILTERS_PER_GROUP or sum(sizes) > SEARCH_FILTERS_TOTAL:
        raise ValueError(
            "the search matches more than 10,000 contacts and HubSpot's filter limits (6 per group, "
            "18 in all) leave no room for the hs_object_id filter that pages past 10,000: use fewer "
            "filters"
        )
    return [{**group, "filters": [*(group.get("filters") or []), above]} for group in groups]


def _already_exists(item: Mapping[str, Any]) -> bool:
    """A batch item error saying the object exists (207 on v3, inside a 200 on 2026-09)."""
    category = str(item.get("category", ""))
    return category in ("OBJECT_ALREADY_EXISTS", "CONFLICT") or "already exists" in str(
        item.get("message", "")
    )


def _trace_id(index: int) -> str:
    """The `objectWriteTraceId` of a batch's input `index` (unique within the batch)."""
    return f"syncdsl-{index}"


def _upsert_results(body: Mapping[str, Any], emails: list[str]) -> dict[str, UpsertResult]:
    """Results matched to inputs by `objectWriteTraceId`, which HubSpot echoes on each result.

    A write reply echoes only what was written, so an update carries no `email` (HUBSPOT.md §0):
    the echoed email is only a fallback for servers that do not echo trace ids.
    """
    by_trace = {_trace_id(index): email for index, email in enumerate(emails)}
    results: dict[str, UpsertResult] = {}
    unmatched: list[Mapping[str, Any]] = []
    for item in body.get("results") or []:
        email = by_trace.get(str(item.get("objectWriteTraceId"))) or Contact.from_api(item).email
        if email is not None and email in emails:
            results[email] = UpsertResult(
                id=str(item.get("id")), email=email, new=bool(item.get("new"))
            )
        else:
            unmatched.append(item)
    missing = [email for email in emails if email not in results]
    if len(unmatched) == 1 and len(missing) == 1:  # the one way to match without an email
        item = unmatched[0]
        results[missing[0]] = UpsertResult(str(item.get("id")), missing[0], bool(item.get("new")))
    for error in body.get("errors") or []:
        logger.warning(
            "HubSpot did not upsert some contacts: %s",
            error.get("message") if isinstance(error, dict) else error,
        )
    return results


def _update_outcome(body: Mapping[str, Any], ids: list[str]) -> UpdateOutcome:
    wanted = set(ids)
    updated = {
        str(item.get("objectWriteTraceId") or item.get("id"))
        for item in body.get("results") or []
        if isinstance(item, dict)
    } & wanted
    missing: set[str] = set()
    failed: dict[str, str] = {}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context = error.get("context") or {}
        named = {str(i) for key in ("ids", "objectWriteTraceId") for i in context.get(key) or []}
        if error.get("category") == "OBJECT_NOT_FOUND":
            missing |= named & wanted
        else:
            failed.update(dict.fromkeys(named & wanted, str(error.get("message", ""))))
    for contact_id in wanted - updated - missing - set(failed):
        failed[contact_id] = "HubSpot returned no result for this input"
    return UpdateOutcome(frozenset(updated), frozenset(missing - updated), failed)


def option_to_api(option: PropertyOption) -> dict[str, Any]:
    return {
        "label": option.label,
        "value": option.value,
        "displayOrder": option.display_order,
        "hidden": option.hidden,
    }


def property_to_api(prop: PropertySchema) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": prop.name,
        "label": prop.label,
        "type": prop.type,
        "fieldType": prop.field_type,
        "groupName": prop.group_name,
    }
    if prop.description:
        payload["description"] = prop.description
    if prop.options or prop.type == "enumeration":
        payload["options"] = [option_to_api(option) for option in prop.options]
    return payload


def property_from_api(item: Mapping[str, Any]) -> PropertySchema:
    """Lenient: HubSpot's GET carries fieldTypes and extras its create schema does not allow."""
    metadata = item.get("modificationMetadata") or {}
    options = tuple(
        PropertyOption(
            label=str(option.get("label") or option.get("value") or ""),
            value=str(option.get("value") or ""),
            display_order=int(option.get("displayOrder") or 0),
            hidden=bool(option.get("hidden")),
        )
        for option in item.get("options") or []
        if isinstance(option, dict)
    )
    return PropertySchema(
        name=str(item.get("name") or ""),
        label=str(item.get("label") or ""),
        type=str(item.get("type") or ""),
        field_type=str(item.get("fieldType") or ""),
        group_name=str(item.get("groupName") or ""),
        description=str(item.get("description") or ""),
        options=options,
        read_only=bool(metadata.get("readOnlyValue")) or bool(item.get("calculated")),
    )


def group_from_api(item: Mapping[str, Any]) -> PropertyGroup:
    order = item.get("displayOrder")
    return PropertyGroup(
        name=str(item.get("name") or ""),
        label=str(item.get("label") or ""),
        display_order=int(order) if isinstance(order, int) else -1,
    )
