"""The HubSpot CRM client (v3, 2026-03 or 2026-09): every call syncdsl makes goes through it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack
from urllib.parse import quote

from syncdsl.errors import HubSpotConflictError, HubSpotNotFoundError
from syncdsl.hubspot import errors as hs_errors
from syncdsl.hubspot.convert import (
    group_from_api,
    option_to_api,
    property_from_api,
    property_to_api,
)
from syncdsl.hubspot.models import Contact, ContactWrite, UpsertResult, WriteReply
from syncdsl.hubspot.replies import BATCH_LIMIT, check_batch, merge_replies, write_reply
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema
from syncdsl.hubspot.tiers import API_VERSIONS, DEFAULT_API_VERSION
from syncdsl.hubspot.transport import Transport, TransportOptions

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


class HubSpotClient(Transport):
    """Typed, thread-safe calls to HubSpot's contacts and contact-properties APIs.

    One client is shared by every worker thread: requests are pooled (`pool_size` connections),
    paced by one `RateBudget`, and retried on 429/423/477/5xx and network failures with capped
    exponential backoff and full jitter; 400/401/403/404/409 are raised at once as syncdsl errors
    (`syncdsl.hubspot.transport`).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        api_version: str = DEFAULT_API_VERSION,
        **transport: Unpack[TransportOptions],
    ) -> None:
        """`transport`: `Transport`'s options (tier, budget, session, retries, timeout, pool,
        sleep)."""
        super().__init__(base_url, token, **transport)
        self.paths = ApiPaths.of(api_version)

    def __repr__(self) -> str:
        return (
            f"HubSpotClient(base_url={self.base_url!r}, api_version={self.paths.version!r}, "
            f"budget={self.budget!r})"
        )

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
        check_batch(writes, key=lambda write: write.email, what="batch upsert")
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
        return write_reply(body, writes)

    def update_contacts_by_id(self, writes: Sequence[ContactWrite]) -> WriteReply:
        """Batch update by HubSpot id (≤ 100; every write has `hubspot_id`); matched by trace id.

        An id HubSpot does not have (deleted, merged away) is in `not_found`, never an error:
        nothing is created in its place. A whole-batch 404 is split until each missing id is named.
        """
        check_batch(writes, key=lambda write: write.hubspot_id or "", what="batch update")
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
            return merge_replies(
                self.update_contacts_by_id(writes[:middle]),
                self.update_contacts_by_id(writes[middle:]),
            )
        return write_reply(body, writes)

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
