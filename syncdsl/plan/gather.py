"""Gather what a plan needs (schema, desired contacts, state or a HubSpot refresh) and build it."""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.models import Contact
from syncdsl.lang.ir import Spec
from syncdsl.plan.build import DiffParameters, PlanInputs, build_plan, mapped_properties
from syncdsl.plan.definition import (
    BATCH_SIZE,
    MEMBER_STATUSES,
    Adoption,
    CreateContact,
    CurrentContact,
    Fingerprint,
    Plan,
    PlanOptions,
)
from syncdsl.plan.diff import Settled
from syncdsl.plan.schemadiff import diff_schema
from syncdsl.plan.settle import lookup_emails, settle
from syncdsl.records.datafiles import fingerprint, source_files
from syncdsl.records.desired import DesiredSet, build_desired
from syncdsl.records.outcome import DesiredContact
from syncdsl.records.replay import load_replay
from syncdsl.state.lockfile import bound_properties, desired_lock, read_lock
from syncdsl.state.store import ContactState, StateStore

READS_IN_FLIGHT = 8  # refresh batch reads in flight, like apply's default parallelism


@dataclass(frozen=True)
class PlanResult:
    """A plan and the desired contacts it was made from (apply writes them to the state)."""

    plan: Plan
    desired: DesiredSet


def configuration_hash(spec: Spec) -> str:
    """A hash of the .sync files and every data file they read: each file of a folder or glob
    (a part file added or removed changes it too); remote objects by their size and version tag.

    Raises:
        SourceError: a data file cannot be listed or read.
    """
    digest = hashlib.sha256()
    for path in sorted(spec.files):
        digest.update(str(Path(path).name).encode() + b"\0")
        digest.update(Path(path).read_bytes())
    for source in spec.sources:
        digest.update(f"source {source.name}\0".encode())
        for file in source_files(source):
            fingerprint(file, digest)
    return digest.hexdigest()


class _Hashing(threading.Thread):
    """`configuration_hash` on a thread of its own. A daemon: a plan that fails or is
    interrupted ends at once, without waiting for the rest of the files to be hashed."""

    def __init__(self, spec: Spec) -> None:
        super().__init__(name="syncdsl-hash", daemon=True)
        self._spec = spec
        self._digest = ""
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._digest = configuration_hash(self._spec)
        except BaseException as error:  # noqa: BLE001 - raised where the digest is wanted
            self._error = error

    def digest(self) -> str:
        """The hash; raises what `configuration_hash` raised (SourceError)."""
        self.join()
        if self._error is not None:
            raise self._error
        return self._digest


def make_plan(
    spec: Spec,
    client: HubSpotClient,
    store: StateStore,
    *,
    state_key: str,
    options: PlanOptions,
) -> PlanResult:
    """Read HubSpot's schema (and, when refreshing, its contacts), then build. Never writes."""
    calls_before = client.stats.calls
    inputs, desired = gather(spec, client, store, state_key=state_key, options=options)
    plan = build_plan(inputs)
    if inputs.refreshed and _known_state(store, state_key):
        plan = _mark_deleted(plan, store)
    estimate = replace(
        plan.estimate,
        read_calls=client.stats.calls - calls_before,  # the refresh reads as the diff consumes
        daily_remaining=client.stats.daily_remaining,
    )
    return PlanResult(replace(plan, estimate=estimate), desired)


def gather(
    spec: Spec,
    client: HubSpotClient,
    store: StateStore,
    *,
    state_key: str,
    options: PlanOptions,
) -> tuple[PlanInputs, DesiredSet]:
    """Every read a plan needs: HubSpot's schema, the lock, the data files (staged), and what is
    known of HubSpot's contacts: the state, or a refresh whose reads stream as the diff iterates.

    The desired set is returned open, for the caller to close (apply records it in the state).
    """
    groups = client.list_property_groups()
    properties = client.list_properties()
    current_lock = read_lock(spec.root)
    schema_diff = diff_schema(
        spec,
        properties=properties,
        groups=groups,
        current_lock=current_lock,
        desired_lock=desired_lock(spec, current_lock),
        removed_decision=options.removed_decision,
    )
    replay = load_replay(spec, options.rejects_replay)
    # The files' hash (for the saved plan's staleness check) is computed while they are read:
    # hashlib leaves the GIL, so it takes the core the reading leaves idle.
    hashed = _Hashing(spec)
    desired = build_desired(spec, schema_diff.schema, replay=replay.records)
    rename = bound_properties(spec, schema_diff.audience_properties)
    audience_props = tuple(sorted(set(schema_diff.audience_properties.values())))
    removed_props = tuple(r.property for r in schema_diff.removed)
    known_state = _known_state(store, state_key)
    # An interrupted apply of a refreshed plan held changes only HubSpot knows of (exits, drift):
    # its resume must refresh too, or they would be lost.
    refresh = options.refresh or not known_state or store.refresh_pending
    current: Iterable[CurrentContact]
    wanted: Iterable[DesiredContact] = desired
    settled = Settled()
    protected = frozenset(r.email for r in desired.rejected if r.email)
    if refresh:
        # Only members are exported: HubSpot's view of anyone else (a member there, to exit)
        # comes from the member searches.
        current = _read_hubspot(
            client,
            store if known_state else None,
            desired.member_emails(),
            mapped_properties(spec),
            audience_props + removed_props,
            frozenset(prop.name for prop in properties),
            is_member=lambda email: _is_member(desired.get(email)),
        )
    else:
        # Incremental: what equals the state is settled in SQL; the diff sees the rest.
        parameters = DiffParameters.of(spec, schema_diff, options)
        settlement = settle(
            desired,
            store,
            audience_properties=parameters.audience_properties,
            counted_properties=parameters.counted_properties,
            carried=parameters.carried,
            protected=protected,
            rename=rename,
            fill=parameters.fill,
        )
        wanted, current, settled = settlement.desired, settlement.current, settlement.settled
        if spec.destination.mode == "update_only" or parameters.fill:
            # What HubSpot holds, for just the emails whose writes depend on it: the ones the
            # state never saw (update_only: do they exist?) and, for fill_if_empty, the ones
            # with a value the state knows nothing of. A batch read per 100.
            found = _look_up(
                client,
                lookup_emails(desired, fill=bool(parameters.fill)),
                mapped_properties(spec),
                audience_props + removed_props,
                frozenset(prop.name for prop in properties),
            )
            current = _overlay(current, found, parameters.fill)
    inputs = PlanInputs(
        spec=spec,
        options=options,
        schema=schema_diff,
        desired=(_renamed(contact, rename) for contact in wanted),
        current=current,
        refreshed=refresh,
        rejected=tuple(desired.rejected),
        protected=protected,
        settled=settled,
        counts=tuple(desired.counts),
        warnings=(*replay.warnings, *desired.warnings),
        tracked=_tracked(store, known_state),
        fingerprint=Fingerprint(
            configuration=hashed.digest(),
            lineage=store.lineage,
            serial=store.serial,
            base_url=state_key,
        ),
    )
    return inputs, desired


def _tracked(store: StateStore, known_state: bool) -> int:
    """The contacts the state tracks, for the new-contact guard; resuming an apply that did not
    finish, as many as when it began (a first apply stays a first apply)."""
    interrupted = store.interrupted_tracked
    if interrupted is not None:
        return interrupted
    return store.count() if known_state else 0


def _known_state(store: StateStore, state_key: str) -> bool:
    """Whether the state describes this HubSpot (else the plan refreshes from HubSpot)."""
    return store.base_url == state_key and not store.is_empty()


def _mark_deleted(plan: Plan, store: StateStore) -> Plan:
    """A create for a contact the state knows means it was deleted (or merged away) in HubSpot."""
    known: set[str] = set()
    creates = (change.email for change in plan.contact_changes.first_of("create", None))
    for batch in _chunks(creates, 10_000):
        known.update(store.get_many(batch))
    if not known:
        return plan
    changes = plan.contact_changes.map(
        lambda c: replace(c, drift=True) if isinstance(c, CreateContact) and c.email in known else c
    )
    return replace(plan, contact_changes=changes)


def _renamed(contact: DesiredContact, rename: dict[str, str]) -> DesiredContact:
    """The contact with its audience statuses under the properties the lock binds them to."""
    return replace(contact, audiences={rename.get(k, k): v for k, v in contact.audiences.items()})


def _from_state(store: StateStore) -> Iterator[CurrentContact]:
    for row in store.iter_contacts():
        yield CurrentContact(
            row.email, row.hubspot_id, row.properties, row.audiences, dirty=row.dirty
        )


def _is_member(contact: DesiredContact | None) -> bool:
    return contact is not None and any(s in MEMBER_STATUSES for s in contact.audiences.values())


def _read_hubspot(
    client: HubSpotClient,
    store: StateStore | None,
    emails: Iterable[str],
    mapped: tuple[str, ...],
    audience_props: tuple[str, ...],
    existing: frozenset[str],
    is_member: Callable[[str], bool] = lambda email: False,
) -> Iterator[CurrentContact]:
    """Refresh: every audience's current members (search), then every desired contact (batch
    read, 100 a call), yielded in ascending email order as the merge join needs.

    `emails` (the desired members) ascend. Only the HubSpot members are held in memory; desired
    contacts stream through. Only properties HubSpot has are requested or searched (one that is
    missing has no values). A HubSpot member one of whose secondary emails is a desired member
    is that desired contact (`is_member` says which): it is never yielded under its own email.
    """
    wanted = _requested(mapped, audience_props, existing)
    members: dict[str, CurrentContact] = {}
    merged = _MergedContacts()
    for prop in (name for name in audience_props if name in existing):
        filters = [
            {
                "filters": [
                    {"propertyName": prop, "operator": "IN", "values": sorted(MEMBER_STATUSES)}
                ]
            }
        ]
        for member in client.search_contacts(filters, wanted):
            if member.email:
                members[member.email] = _current(
                    member.email, member.id, member.properties, mapped, audience_props
                )
            if any(is_member(email) for email in member.additional_emails):
                merged.resolved_ids.add(member.id)  # its batch read may come batches later
    if store is not None:
        _confirm_with_state(client, store, members, wanted, mapped, audience_props)
    others = iter(sorted(members))  # members, to interleave with the desired contacts
    pending = next(others, None)
    for batch, contacts in _batch_reads(client, emails, wanted):
        found = {
            email: merged.resolve(
                email,
                contact,
                _current(email, contact.id, contact.properties, mapped, audience_props),
            )
            for email, contact in contacts.items()
        }
        while pending is not None and pending <= batch[-1]:
            if members[pending].hubspot_id not in merged.resolved_ids:
                found.setdefault(pending, members[pending])  # a batch-read value wins
            pending = next(others, None)
        yield from _known(found, store)
    rest: dict[str, CurrentContact] = {}
    while pending is not None:
        if members[pending].hubspot_id not in merged.resolved_ids:
            rest[pending] = members[pending]
        pending = next(others, None)
    yield from _known(rest, store)


def _requested(
    mapped: tuple[str, ...], audience_props: tuple[str, ...], existing: frozenset[str]
) -> list[str]:
    """The properties to read of a contact: the email, the mapped ones and the audiences, the
    ones HubSpot has (a missing one has no values)."""
    return [name for name in dict.fromkeys(("email", *mapped, *audience_props)) if name in existing]


def _look_up(
    client: HubSpotClient,
    emails: Iterable[str],
    mapped: tuple[str, ...],
    audience_props: tuple[str, ...],
    existing: frozenset[str],
) -> Iterator[CurrentContact]:
    """update_only: the contacts HubSpot holds for `emails` (ascending), read 100 a call; one
    found through a secondary email is that contact."""
    wanted = _requested(mapped, audience_props, existing)
    for batch, contacts in _batch_reads(client, emails, wanted):
        for email in batch:
            contact = contacts.get(email)
            if contact is not None:
                current = _current(email, contact.id, contact.properties, mapped, audience_props)
                primary = contact.email if contact.email and contact.email != email else None
                yield replace(current, resolves_to=primary)


def _overlay(
    state: Iterable[CurrentContact], hubspot: Iterable[CurrentContact], fill: frozenset[str]
) -> Iterator[CurrentContact]:
    """The state's contacts and the ones just read from HubSpot, ascending by email: a contact
    in both is the state's, with HubSpot's values of the fill_if_empty properties."""
    for _, group in itertools.groupby(
        heapq.merge(
            ((c.email, 0, c) for c in state),
            ((c.email, 1, c) for c in hubspot),
            key=lambda item: (item[0], item[1]),
        ),
        key=lambda item: item[0],
    ):
        contacts = [contact for _, _, contact in group]
        if len(contacts) == 1:
            yield contacts[0]
            continue
        known, read = contacts
        values = {name: read.properties.get(name) for name in fill}
        yield replace(
            known,
            properties={**known.properties, **values},
            read_from_hubspot=frozenset(fill),
        )


def _confirm_with_state(
    client: HubSpotClient,
    store: StateStore,
    members: dict[str, CurrentContact],
    wanted: list[str],
    mapped: tuple[str, ...],
    audience_props: tuple[str, ...],
) -> None:
    """Batch-read the members search and the state disagree on, and correct `members`.

    Search is not read-your-writes (HUBSPOT.md §0): moments after a write it may miss a member
    syncdsl just wrote, or show its values from before (a member just exited still "realized").
    Concluding from search alone would lose an exit or plan one twice, so the members the state
    holds that search did not return, and the ones whose audience values search shows otherwise
    than the state's, are read by email: the batch read says what HubSpot holds (a contact
    deleted by hand is simply not found). Where they agree, nothing is read.
    """
    known = store.get_many(list(members)) if members else {}
    disputed = [
        email
        for email, member in members.items()
        if email in known
        and any(member.audiences.get(p) != known[email].audiences.get(p) for p in audience_props)
    ]
    unsearched = [
        row.email
        for row in store.iter_contacts()
        if row.email not in members
        and any(row.audiences.get(prop) in MEMBER_STATUSES for prop in audience_props)
    ]
    for batch in _chunks(sorted({*disputed, *unsearched}), BATCH_SIZE):
        found = client.batch_read_contacts_by_email(batch, wanted)
        for email in batch:
            contact = found.get(email)
            if contact is not None and contact.email == email:
                members[email] = _current(
                    email, contact.id, contact.properties, mapped, audience_props
                )
            elif contact is None:
                members.pop(email, None)  # gone from HubSpot since search indexed it


class _MergedContacts:
    """Desired emails that HubSpot resolves through secondary addresses (hs_additional_emails).

    Only contacts holding secondary emails are tracked, so memory stays small.
    """

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}  # contact id -> the first desired email resolving to it
        self.resolved_ids: set[str] = set()  # contacts a desired secondary email writes to

    def resolve(self, email: str, contact: Contact, current: CurrentContact) -> CurrentContact:
        if not contact.additional_emails:
            return current
        owner = self._owners.setdefault(contact.id, email)
        resolves_to = contact.email if contact.email != email else None
        if resolves_to is not None:
            self.resolved_ids.add(contact.id)
        return replace(
            current,
            resolves_to=resolves_to,
            collides_with=owner if owner != email else None,
        )


def _batch_reads(
    client: HubSpotClient, emails: Iterable[str], wanted: list[str]
) -> Iterator[tuple[list[str], dict[str, Contact]]]:
    """Batch reads by email, several in flight (the client's budget paces them), in order."""
    with ThreadPoolExecutor(max_workers=READS_IN_FLIGHT, thread_name_prefix="read") as pool:
        in_flight: deque[tuple[list[str], Future[dict[str, Contact]]]] = deque()
        for batch in _chunks(emails, BATCH_SIZE):
            in_flight.append(
                (batch, pool.submit(client.batch_read_contacts_by_email, batch, wanted))
            )
            if len(in_flight) >= READS_IN_FLIGHT:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()


def _chunks(emails: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for email in emails:
        batch.append(email)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _known(found: dict[str, CurrentContact], store: StateStore | None) -> Iterator[CurrentContact]:
    """`found` in email order, each with what the state last applied (for drift)."""
    known = store.get_many(list(found)) if store is not None and found else {}
    for email in sorted(found):
        yield _with_last_applied(found[email], known.get(email))


def _current(
    email: str,
    hubspot_id: str,
    properties: dict[str, str | None],
    mapped: tuple[str, ...],
    audience_props: tuple[str, ...],
) -> CurrentContact:
    return CurrentContact(
        email=email,
        hubspot_id=hubspot_id,
        properties={name: properties.get(name) for name in mapped},
        audiences={name: properties.get(name) for name in audience_props},
        read_from_hubspot=frozenset(mapped),
    )


def _with_last_applied(contact: CurrentContact, state: ContactState | None) -> CurrentContact:
    if state is None:
        return contact
    return replace(contact, last_applied={**state.properties, **state.audiences})


def adoption_states(adoptions: Iterable[Adoption]) -> Iterator[ContactState]:
    return (ContactState(a.email, a.hubspot_id, a.properties, a.audiences) for a in adoptions)


def read_current(spec: Spec, client: HubSpotClient) -> list[CurrentContact]:
    """HubSpot's current values of the managed properties, for every desired contact and member."""
    properties = client.list_properties()
    schema = {prop.name: prop for prop in properties}
    lock = desired_lock(spec, read_lock(spec.root))
    audience_props = tuple(sorted({entry.property for entry in lock.audiences.values()}))
    mapped = mapped_properties(spec)
    with build_desired(spec, schema) as desired:
        return list(
            _read_hubspot(
                client,
                None,
                desired.emails(),
                mapped,
                audience_props,
                frozenset(schema),
                # a member merged into a desired one is that contact, not a second row
                is_member=lambda email: _is_member(desired.get(email)),
            )
        )
