"""Execute a plan: schema first, then contacts in batches of 100, journaled batch by batch.

The executor holds no diff logic: it dispatches on change type. Every batch HubSpot accepts is
recorded in the state store at once, so a crash loses at most the batches in flight, and running
apply again resumes (upserts are idempotent).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from syncdsl.errors import HubSpotConflictError, HubSpotError, HubSpotValidationError, PlanError
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.models import ContactWrite, UpsertResult
from syncdsl.hubspot.schema import PropertySchema
from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import BATCH_SIZE, ContactChange, Plan, PropertyChange
from syncdsl.plan.gather import adoption_states
from syncdsl.records.outcome import Origin, SourceCounts
from syncdsl.records.rejection import Rejection
from syncdsl.state.lockfile import lock_after, read_lock, write_lock
from syncdsl.state.store import ContactState, StateStore

Progress = Callable[[int], None]
_EMAIL_IN_MESSAGE = re.compile(r"[^\s\"'<>,;:\[\]()]+@[^\s\"'<>,;:\[\]()]+")


@dataclass
class ApplyReport:
    """What apply did. Counts reconcile:
    created + updated + exited + rejected_by_hubspot + deleted = sent."""

    created: int = 0
    updated: int = 0
    exited: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    inputs: list[SourceCounts] = field(default_factory=list)
    schema_changes: int = 0
    api_calls: int = 0
    batches: int = 0
    elapsed: float = 0.0
    stopped: str | None = None  # why apply stopped early (daily limit, ...): rerun to resume
    deleted: list[str] = field(default_factory=list)  # exited members HubSpot no longer holds

    def stopped_error(self) -> PlanError | None:
        if self.stopped is None:
            return None
        return PlanError(
            f"apply stopped: {self.stopped}\nEvery batch HubSpot accepted is saved in the state; "
            "run `syncdsl apply` again to resume where it stopped."
        )

    @property
    def rate(self) -> float:
        return self.api_calls / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "created": self.created,
            "updated": self.updated,
            "exited": self.exited,
            "unchanged": self.unchanged,
            "rejected": [r.to_dict() for r in self.rejected],
            "inputs": [asdict(counts) for counts in self.inputs],
            "schema_changes": self.schema_changes,
            "api_calls": self.api_calls,
            "batches": self.batches,
            "elapsed_seconds": round(self.elapsed, 3),
            "calls_per_second": round(self.rate, 2),
            "stopped": self.stopped,
            "deleted_in_hubspot": list(self.deleted),
        }


@dataclass(frozen=True)
class BatchOutcome:
    """What HubSpot did with one batch: accepted (by email), rejected with its reason, and exits
    of contacts it no longer holds (deleted by hand: never recreated)."""

    accepted: dict[str, UpsertResult]
    rejected: list[tuple[ContactChange, str]]
    deleted: list[ContactChange] = field(default_factory=list)

    def plus(self, other: BatchOutcome) -> BatchOutcome:
        return BatchOutcome(
            {**self.accepted, **other.accepted},
            self.rejected + other.rejected,
            self.deleted + other.deleted,
        )


_NOTHING = BatchOutcome({}, [])


def apply_schema(
    client: HubSpotClient, store: StateStore, changes: Sequence[PropertyChange]
) -> int:
    """Property group, then audience properties (one batch create), then updates (PATCH)."""
    done = 0
    for change in changes:
        if change.action == "create_group" and change.group is not None:
            try:
                client.create_property_group(change.group)
            except HubSpotConflictError:
                pass  # created since the plan (another run, or by hand): what we wanted exists
            store.record_schema(change.name, "group", {"label": change.group.label})
            done += 1
    creates = [c.definition for c in changes if c.action == "create_property" and c.definition]
    if creates:
        _create_properties(client, creates)
        for prop in creates:
            store.record_schema(prop.name, "property", {"label": prop.label, "type": prop.type})
        done += len(creates)
    for change in changes:
        updated = change.definition
        if updated is None or change.action not in ("add_options", "relabel"):
            continue
        if change.action == "add_options":
            client.update_property(updated.name, options=updated.options)
        else:
            client.update_property(updated.name, label=updated.label)
        store.record_schema(
            updated.name, "property", {"label": updated.label, "type": updated.type}
        )
        done += 1
    return done


def _create_properties(client: HubSpotClient, creates: list[PropertySchema]) -> None:
    """Batch create; when some appeared since the plan (409), create only the still-missing ones.

    One that appeared must be the same kind of property, or the plan no longer holds.
    """
    try:
        client.batch_create_properties(creates)
        return
    except HubSpotConflictError:
        pass
    existing = {prop.name: prop for prop in client.list_properties()}
    for prop in creates:
        have = existing.get(prop.name)
        if have is None:
            client.create_property(prop)
        elif (have.type, have.field_type) != (prop.type, prop.field_type):
            raise PlanError(
                f"HubSpot property {prop.name!r} was created by someone else since the plan, as "
                f"{have.type}/{have.field_type}; make a new plan"
            )


def apply_contacts(
    client: HubSpotClient,
    store: StateStore,
    changes: Iterable[ContactChange],
    *,
    audience_properties: frozenset[str],
    parallelism: int = 8,
    progress: Progress | None = None,
    report: ApplyReport,
) -> None:
    """Upsert changes in batches of 100 with several batches in flight; journal each accepted one."""
    batches = _batches(changes)
    in_flight: dict[Future[BatchOutcome], list[ContactChange]] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="upsert") as pool:
        try:
            while True:
                while report.stopped is None and len(in_flight) < parallelism:
                    batch = next(batches, None)
                    if batch is None:
                        break
                    # Write-ahead: should we die before this batch is journaled, the next plan
                    # resends its contacts instead of trusting their old state.
                    store.mark_dirty([change.email for change in batch])
                    in_flight[pool.submit(write_batch, client, batch)] = batch
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except HubSpotError as error:
                        # Rate limits outlasted, HubSpot down, token revoked...: stop sending,
                        # keep what was accepted (journaled), report, and let a rerun resume.
                        report.stopped = str(error)
                        continue
                    _journal(store, batch, outcome, report, audience_properties)
                    if progress:
                        progress(len(batch))
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise


def _batches(changes: Iterable[ContactChange]) -> Iterator[list[ContactChange]]:
    """The changes 100 at a time, read as they are sent (a plan's changes may be on disk)."""
    remaining = iter(changes)
    while batch := list(itertools.islice(remaining, BATCH_SIZE)):
        yield batch


def write_batch(client: HubSpotClient, batch: list[ContactChange]) -> BatchOutcome:
    """Write one batch (≤ 100), shared by apply and stream.

    An exit of a contact whose HubSpot id is known is a batch update by id, so a contact deleted
    by hand in HubSpot is never recreated holding only `exited`; everything else is upserted by
    email. Either way, a whole-batch 400 or 409 is isolated to the inputs that caused it.
    """
    by_id = [c for c in batch if _by_id(c)]
    rest = [c for c in batch if not _by_id(c)]
    upserted = _isolated(lambda part: _upsert(client, part), rest, client) if rest else _NOTHING
    if not by_id:
        return upserted
    return upserted.plus(_isolated(lambda part: _update_by_id(client, part), by_id, client))


def _by_id(change: ContactChange) -> bool:
    """Exits of known members, and emails HubSpot holds as another contact's secondary address,
    are written to the contact by id."""
    return change.hubspot_id is not None and (
        change.is_destructive or change.resolved_via is not None or change.by_id
    )


def _isolated(
    send: Callable[[list[ContactChange]], BatchOutcome],
    batch: list[ContactChange],
    client: HubSpotClient,
) -> BatchOutcome:
    """Send a batch; on a whole-batch 400 or 409 isolate the inputs that caused it (the ones
    HubSpot's message names first, then bisection), send the rest, and reject only those.

    HubSpot fails a whole batch for one bad input (400: a bad value, a validation rule) or for
    one input that conflicts with another record (409).
    """
    try:
        return send(batch)
    except (HubSpotValidationError, HubSpotConflictError) as error:
        if len(batch) == 1:
            only = batch[0]
            if (
                isinstance(error, HubSpotConflictError)
                and only.hubspot_id
                and not only.resolved_via
            ):
                return _known_contact_conflict(client, only, error)
            return BatchOutcome({}, [(only, _reason(error, only.email))])
        named = _named_inputs(batch, error)
        if named and len(named) < len(batch):
            outcome = _isolated(send, [c for c in batch if c.email not in named], client)
            return outcome.plus(
                BatchOutcome({}, [(c, _reason(error, c.email)) for c in batch if c.email in named])
            )
        middle = len(batch) // 2
        left = _isolated(send, batch[:middle], client)
        return left.plus(_isolated(send, batch[middle:], client))


def _known_contact_conflict(
    client: HubSpotClient, change: ContactChange, error: HubSpotError
) -> BatchOutcome:
    """A 409 upserting a contact syncdsl wrote before: its email is now a secondary address
    (a merge). Written by id when it still belongs to the contact syncdsl knows; when it now
    belongs to another contact (merged into it), that is for a refresh to decide, since the other
    contact may be a desired one too: rejected, saying so."""
    holder = client.batch_read_contacts_by_email([change.email], []).get(change.email)
    if holder is not None and holder.id == change.hubspot_id:
        return write_batch(client, [replace(change, resolved_via=holder.email or change.email)])
    reason = _reason(error, change.email)
    if holder is not None:
        reason += (
            f"; {change.email} is now a secondary email of contact {holder.id} "
            f"({holder.email}): run `syncdsl plan --refresh` to plan the write to that contact"
        )
    return BatchOutcome({}, [(change, reason)])


def _upsert(client: HubSpotClient, batch: list[ContactChange]) -> BatchOutcome:
    """One batch upsert by email; inputs answered with an item error (in a 207, or inside the
    200 on 2026-09) or with no result are rejected, never silently dropped."""
    reply = client.upsert_contacts(
        [ContactWrite(str(i), c.email, c.properties) for i, c in enumerate(batch)]
    )
    accepted: dict[str, UpsertResult] = {}
    rejected: list[tuple[ContactChange, str]] = []
    for index, change in enumerate(batch):
        result = reply.results.get(str(index))
        if result is not None:
            accepted[change.email] = replace(result, email=change.email)
        else:
            reason = reply.errors.get(str(index), "HubSpot returned no result for this input")
            rejected.append((change, reason))
    return BatchOutcome(accepted, rejected)


def _update_by_id(client: HubSpotClient, batch: list[ContactChange]) -> BatchOutcome:
    """One batch update by HubSpot id; an id HubSpot no longer has is `deleted`, never created."""
    reply = client.update_contacts_by_id(
        [ContactWrite(str(i), c.email, c.properties, c.hubspot_id) for i, c in enumerate(batch)]
    )
    accepted: dict[str, UpsertResult] = {}
    rejected: list[tuple[ContactChange, str]] = []
    deleted: list[ContactChange] = []
    for index, change in enumerate(batch):
        trace = str(index)
        if trace in reply.results:
            accepted[change.email] = replace(reply.results[trace], email=change.email, new=False)
        elif trace in reply.not_found and change.is_destructive:
            deleted.append(change)  # a member deleted by hand: never recreated to hold `exited`
        elif trace in reply.not_found:
            rejected.append(
                (
                    change,
                    f"HubSpot no longer has contact {change.hubspot_id} (deleted or merged into "
                    "another since it was read): run `syncdsl plan --refresh`",
                )
            )
        else:
            rejected.append((change, reply.errors.get(trace, "HubSpot returned no result")))
    return BatchOutcome(accepted, rejected, deleted)


_CONFLICT_ADVICE = (
    " (another HubSpot contact already holds this email, e.g. as a secondary address after a "
    "merge: merge the two contacts in HubSpot, or fix the email in the source)"
)


def _item_errors(error: HubSpotError) -> list[dict[str, Any]]:
    if isinstance(error, HubSpotValidationError):
        return error.errors
    items = error.body.get("errors") if isinstance(error.body, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _reason(error: HubSpotError, email: str) -> str:
    """HubSpot's own words for one input: its item errors naming the email, else the whole message;
    for a conflict, what to do."""
    items = [
        str(item.get("message", "")) for item in _item_errors(error) if email in json.dumps(item)
    ]
    items = [text for text in items if text]
    reason = (
        "; ".join(dict.fromkeys(items))
        if items
        else str(error.body.get("message") or error.message)
    )
    return reason + (_CONFLICT_ADVICE if isinstance(error, HubSpotConflictError) else "")


def _named_inputs(batch: list[ContactChange], error: HubSpotError) -> set[str]:
    """Emails of this batch that HubSpot's error names (e.g. "Email address x@y is invalid")."""
    emails = {c.email for c in batch}
    text = error.message + " " + " ".join(str(e) for e in _item_errors(error))
    return {m.lower().rstrip(".") for m in _EMAIL_IN_MESSAGE.findall(text)} & emails


def _journal(
    store: StateStore,
    batch: list[ContactChange],
    outcome: BatchOutcome,
    report: ApplyReport,
    audience_properties: frozenset[str],
) -> None:
    accepted = [c for c in batch if c.email in outcome.accepted]
    states = []
    for change in accepted:
        mapped, statuses = _split({**change.settled, **change.properties}, audience_properties)
        states.append(
            ContactState(change.email, outcome.accepted[change.email].id, mapped, statuses)
        )
    store.record(states)
    if outcome.deleted:
        # Deleted (or merged away) in HubSpot by hand: not recreated, and forgotten in the state.
        store.forget(change.email for change in outcome.deleted)
        report.deleted.extend(change.email for change in outcome.deleted)
    report.batches += 1
    for change in accepted:
        if outcome.accepted[change.email].new:  # HubSpot says whether the upsert created it
            report.created += 1
        elif change.is_destructive:
            report.exited += 1
        else:
            report.updated += 1
    for change, reason in outcome.rejected:
        origin = change.provenance[0] if change.provenance else Origin("", 0)
        report.rejected.append(
            Rejection(
                "hubspot",
                origin.file,
                origin.line,
                f"HubSpot rejected {change.email}: {reason}",
                change.email,
            )
        )


def _split(
    values: object, audience_properties: frozenset[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Split a contact's values into mapped properties and audience statuses."""
    mapped: dict[str, str] = {}
    statuses: dict[str, str] = {}
    for name, value in dict(values).items():  # type: ignore[call-overload]
        (statuses if name in audience_properties else mapped)[name] = value
    return mapped, statuses


def record_lock(spec: Spec, plan: Plan, report: ApplyReport) -> None:
    """Write syncdsl.lock after an apply. A removed audience leaves it only once its decision
    (exit or forget) was carried out in full."""
    keep = {
        r.key for r in plan.removed_audiences if r.decision == "keep" or report.stopped is not None
    }
    write_lock(spec.root, lock_after(spec, read_lock(spec.root), keep=keep))


def execute(
    plan: Plan,
    client: HubSpotClient,
    store: StateStore,
    *,
    parallelism: int = 8,
    progress: Progress | None = None,
) -> ApplyReport:
    """Apply a whole plan: schema, adoptions (state only), then contacts.

    Raises PlanError, before anything is sent, when a guard refused the plan.
    """
    refusal = plan.refusal()
    if refusal is not None:
        raise refusal
    started = time.monotonic()
    calls_before = client.stats.calls
    report = ApplyReport(
        unchanged=plan.unchanged, rejected=list(plan.rejected), inputs=list(plan.inputs)
    )
    audience_properties = frozenset(
        plan.audience_properties + tuple(r.property for r in plan.removed_audiences)
    )
    store.begin_apply(refreshed=plan.refreshed)
    try:
        report.schema_changes = apply_schema(client, store, plan.property_changes)
        if plan.adoptions:
            store.record(adoption_states(plan.adoptions))
        apply_contacts(
            client,
            store,
            plan.contact_changes,
            audience_properties=audience_properties,
            parallelism=parallelism,
            progress=progress,
            report=report,
        )
        if report.stopped is None:
            store.mark_applied()
    finally:
        report.elapsed = time.monotonic() - started
        report.api_calls = client.stats.calls - calls_before
    return report
