"""The HubSpot CRM client (v3, 2026-03 or 2026-09): every call syncdsl makes goes through it."""

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
from syncdsl.hubspot.models import ClientStats, Contact, ContactWrite, UpsertResult, WriteReply
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import (
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUSES,
    Backoff,
    rate_limit_wait,
    status_wait,
)
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.hubspot.tiers import API_VERSIONS, DEFAULT_API_VERSION

logger = logging.getLogger("syncdsl.hubspot")

USER_AGENT = f"syncdsl/{__version__} (+python-requests)"
BATCH_LIMIT = 100
LIST_PAGE_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
SEARCH_FILTERS_PER_GROUP = 6
SEARCH_FILTERS_TOTAL = 18
SECONDARY_EMAILS = "hs_additional_emails"


@dataclass(frozen=True)
class ApiPaths:
    """Where one API version keeps contacts and contact properties.

    v3: `/crm/v3/objects/contacts`; date versions: `/crm/objects/2026-09/contacts` and
    `/crm/properties/2026-09/contacts` (HUBSPOT.md §0).
    """

    version: str

    @classmethod
    def of(cls, version: str) -> ApiPaths:
        if version not in API_VERSIONS:
            raise ValueError(
                f"unknown HubSpot API version {version!r}: use one of {', '.join(API_VERSIONS)}"
            )
        return cls(version)

    @property
    def contacts(self) -> str:
        if self.version == "v3":
            return "/crm/v3/objects/contacts"
        return f"/crm/objects/{self.version}/contacts"

    @property
    def properties(self) -> str:
        if self.version == "v3":
            return "/crm/v3/properties/contacts"
        return f"/crm/properties/{self.version}/contacts"

    @property
    def groups(self) -> str:
        return f"{self.properties}/groups"


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
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.paths = ApiPaths.of(api_version)
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
        return (
            f"HubSpotClient(base_url={self.base_url!r}, api_version={self.paths.version!r}, "
            f"budget={self.budget!r})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- properties ---------------------------------------------------------------------------

    def list_properties(self) -> list[PropertySchema]:
        body = self._request("GET", self.paths.properties, operation="list_properties").body
        return [property_from_api(item) for item in body.get("results") or []]

    def get_property(self, name: str) -> PropertySchema:
        """One property; HubSpotNotFoundError when the account has none of that name."""
        path = f"{self.paths.properties}/{quote(name, safe='')}"
        return property_from_api(self._request("GET", path, operation="get_property").body)

    def create_property(self, prop: PropertySchema) -> PropertySchema:
        try:
            reply = self._request(
                "POST",
                self.paths.properties,
                operation="create_property",
                json_body=property_to_api(prop),
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
                f"{self.paths.properties}/batch/create",
                operation="batch_create_properties",
                json_body=payload,
            )
        except HubSpotConflictError as exc:
            if not getattr(exc, "after_network_retry", False):
                raise
            wanted = {prop.name for prop in chunk}
            return {p.name: p for p in self.list_properties() if p.name in wanted}
        results = {p.name: p for p in map(property_from_api, reply.body.get("results") or [])}
        # 207 (v3) or 200 (2026-09) with item errors: the other inputs were created.
        errors = [e for e in reply.body.get("errors") or [] if isinstance(e, dict)]
        exists = [e for e in errors if _says_exists(e)]
        if len(exists) < len(errors):
            raise hs_errors.from_response(
                400,
                {
                    "category": "VALIDATION_ERROR",
                    "message": "some properties were not created",
                    "errors": [e for e in errors if not _says_exists(e)],
                },
                {},
                operation="batch_create_properties",
            )
        if exists:
            # Created by someone else since the plan: the caller reads them back, like a 409.
            raise hs_errors.from_response(
                409,
                {
                    "category": "OBJECT_ALREADY_EXISTS",
                    "message": "; ".join(str(e.get("message") or "") for e in exists),
                    "errors": exists,
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
        path = f"{self.paths.properties}/{quote(name, safe='')}"
        return property_from_api(
            self._request("PATCH", path, operation="update_property", json_body=patch).body
        )

    def list_property_groups(self) -> list[PropertyGroup]:
        body = self._request("GET", self.paths.groups, operation="list_property_groups").body
        return [group_from_api(item) for item in body.get("results") or []]

    def create_property_group(self, group: PropertyGroup) -> PropertyGroup:
        payload = {"name": group.name, "label": group.label, "displayOrder": group.display_order}
        try:
            reply = self._request(
                "POST", self.paths.groups, operation="create_property_group", json_body=payload
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
        """Contacts keyed by lowercased email; emails HubSpot does not know are simply absent."""
        if len(emails) > BATCH_LIMIT:
            raise ValueError(f"batch read takes at most {BATCH_LIMIT} emails, got {len(emails)}")
        wanted = list(dict.fromkeys(email.strip().lower() for email in emails))
        if not wanted:
            return {}
        payload = {
            "inputs": [{"id": email} for email in wanted],
            "idProperty": "email",
            "properties": _with_email(properties),
            "propertiesWithHistory": [],
        }
        try:
            body = self._request(
                "POST",
                f"{self.paths.contacts}/batch/read",
                operation="batch_read_contacts",
                json_body=payload,
            ).body
        except HubSpotNotFoundError:
            return {}  # HubSpot may answer 404 when none of the emails exist
        found: dict[str, Contact] = {}
        requested = set(wanted)
        for item in body.get("results") or []:
            contact = Contact.from_api(item)
            # HubSpot resolves a secondary address to its contact, returned with its primary email.
            for email in (contact.email, *contact.additional_emails):
                if email in requested:
                    found.setdefault(email, contact)
        return found

    def batch_upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> dict[str, UpsertResult]:
        """Create or update contacts by email (idempotent, so safely retried); keyed by lowercased email.

        A 400 (one bad email or property fails the whole batch) raises HubSpotValidationError, a
        whole-batch 409 HubSpotConflictError. Inputs HubSpot answered with an item error are absent.
        """
        writes = [
            ContactWrite(str(index), email.strip().lower(), props)
            for index, (email, props) in enumerate(inputs)
        ]
        reply = self.upsert_contacts(writes)
        return {result.email: result for result in reply.results.values()}

    def upsert_contacts(self, writes: Sequence[ContactWrite]) -> WriteReply:
        """Batch upsert by email (≤ 100), each input traced by its `trace_id`; matched by trace id."""
        _check_batch(writes, key=lambda write: write.email, what="batch upsert")
        if not writes:
            return WriteReply()
        payload = {
            "inputs": [
                {
                    "id": write.email,
                    "idProperty": "email",
                    "objectWriteTraceId": write.trace_id,
                    "properties": dict(write.properties),
                }
                for write in writes
            ]
        }
        body = self._request(
            "POST",
            f"{self.paths.contacts}/batch/upsert",
            operation="batch_upsert_contacts",
            json_body=payload,
        ).body
        return _write_reply(body, writes)

    def update_contacts_by_id(self, writes: Sequence[ContactWrite]) -> WriteReply:
        """Batch update by HubSpot id (≤ 100; every write has `hubspot_id`); matched by trace id.

        An id HubSpot does not have (deleted, merged away) is in `not_found`, never an error:
        nothing is created in its place. A whole-batch 404 is split until each missing id is named.
        """
        _check_batch(writes, key=lambda write: write.hubspot_id or "", what="batch update")
        if not writes:
            return WriteReply()
        if any(not write.hubspot_id for write in writes):
            raise ValueError("update_contacts_by_id needs a hubspot_id on every write")
        payload = {
            "inputs": [
                {
                    "id": write.hubspot_id,
                    "objectWriteTraceId": write.trace_id,
                    "properties": dict(write.properties),
                }
                for write in writes
            ]
        }
        try:
            body = self._request(
                "POST",
                f"{self.paths.contacts}/batch/update",
                operation="batch_update_contacts",
                json_body=payload,
            ).body
        except HubSpotNotFoundError:
            if len(writes) == 1:
                return WriteReply(not_found=frozenset({writes[0].trace_id}))
            middle = len(writes) // 2
            return _merge_replies(
                self.update_contacts_by_id(writes[:middle]),
                self.update_contacts_by_id(writes[middle:]),
            )
        return _write_reply(body, writes)

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
            body = self._request(
                "GET", self.paths.contacts, operation="list_contacts", params=params
            ).body
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
                "properties": _with_email(properties),
                "limit": page_size,
                "after": after or "0",  # HubSpot's schema requires it, even for the first page
            }
            body = self._request(
                "POST",
                f"{self.paths.contacts}/search",
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
                self.stats.record_failing(
                    f"HubSpot did not answer {operation}: {type(exc).__name__}"
                )
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
                    self.stats.record_answered()
                    return _Reply(status, body, network_retry)
                status = 502  # a success with an unreadable body is a broken response; retry it
                network_retry = True  # and treat it like a lost reply (a create may have landed)
            else:
                self.stats.record_error()
            if status >= 500:
                self.stats.record_failing(f"HubSpot answered {operation} with {status}")
            elif status != 429:  # a 429 says nothing of HubSpot's health
                self.stats.record_answered()
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
    """Always ask for email and the secondary addresses: a read by email matches either."""
    return list(dict.fromkeys(["email", SECONDARY_EMAILS, *properties]))


def _says_exists(error: Mapping[str, Any]) -> bool:
    """A property batch create item error saying the name is taken (category or words)."""
    category = str(error.get("category") or "").upper()
    message = str(error.get("message") or "").lower()
    return category in ("OBJECT_ALREADY_EXISTS", "CONFLICT") or "already exists" in message


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


def _check_batch(
    writes: Sequence[ContactWrite], *, key: Callable[[ContactWrite], str], what: str
) -> None:
    if len(writes) > BATCH_LIMIT:
        raise ValueError(f"{what} takes at most {BATCH_LIMIT} contacts, got {len(writes)}")
    seen: set[str] = set()
    for write in writes:
        if key(write) in seen:
            raise ValueError(f"{what} got {key(write)} twice; HubSpot would reject the whole batch")
        seen.add(key(write))
    if len({write.trace_id for write in writes}) != len(writes):
        raise ValueError(f"{what} needs a distinct trace id per input")


def _write_reply(body: Mapping[str, Any], writes: Sequence[ContactWrite]) -> WriteReply:
    """Match results and item errors to inputs by objectWriteTraceId.

    A HubSpot that does not echo trace ids is matched by record id (updates) or, failing that, by
    an echoed email; one unmatched result for one unmatched input is matched too.
    """
    by_trace = {write.trace_id: write for write in writes}
    by_id = {write.hubspot_id: write for write in writes if write.hubspot_id}
    by_email = {write.email: write for write in writes}
    results: dict[str, UpsertResult] = {}
    unmatched: list[Mapping[str, Any]] = []
    for item in body.get("results") or []:
        if not isinstance(item, dict):
            continue
        write = by_trace.get(str(item.get("objectWriteTraceId") or "")) or by_id.get(
            str(item.get("id") or "")
        )
        if write is None:
            write = by_email.get(Contact.from_api(item).email or "")
        if write is None or write.trace_id in results:
            unmatched.append(item)
            continue
        results[write.trace_id] = UpsertResult(
            str(item.get("id")), write.email, bool(item.get("new"))
        )
    not_found, errors = _item_errors(body, writes, by_trace, by_id)
    rest = [w for w in writes if w.trace_id not in results and w.trace_id not in errors]
    rest = [w for w in rest if w.trace_id not in not_found]
    if len(unmatched) == 1 and len(rest) == 1:
        item = unmatched[0]
        results[rest[0].trace_id] = UpsertResult(
            str(item.get("id")), rest[0].email, bool(item.get("new"))
        )
    return WriteReply(results, frozenset(not_found), errors)


def _item_errors(
    body: Mapping[str, Any],
    writes: Sequence[ContactWrite],
    by_trace: Mapping[str, ContactWrite],
    by_id: Mapping[str, ContactWrite],
) -> tuple[set[str], dict[str, str]]:
    """Per-input errors (207 in v3, inside the 200 in 2026-09): not-found ids, and the others."""
    not_found: set[str] = set()
    errors: dict[str, str] = {}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context = error.get("context") or {}
        traces = [str(t) for t in context.get("objectWriteTraceId") or [] if str(t) in by_trace]
        traces += [by_id[str(i)].trace_id for i in context.get("ids") or [] if str(i) in by_id]
        traces += [by_id[str(i)].trace_id for i in context.get("id") or [] if str(i) in by_id]
        if not traces and len(writes) == 1:
            traces = [writes[0].trace_id]
        missing = str(error.get("category") or "").upper() == "OBJECT_NOT_FOUND"
        for trace in dict.fromkeys(traces):
            if missing:
                not_found.add(trace)
            else:
                errors[trace] = str(error.get("message") or error.get("category") or "rejected")
        if not traces:
            logger.warning("HubSpot reported an error for no known input: %s", error.get("message"))
    return not_found, errors


def _merge_replies(left: WriteReply, right: WriteReply) -> WriteReply:
    return WriteReply(
        {**left.results, **right.results},
        left.not_found | right.not_found,
        {**left.errors, **right.errors},
    )


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
