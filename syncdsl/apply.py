"""Execute a plan: schema first, then contacts in batches of 100, journaled batch by batch.

The executor holds no diff logic: it dispatches on change type. Every batch HubSpot accepts is
recorded in the state store at once, so a crash loses at most the batches in flight, and running
apply again resumes (upserts are idempotent).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field

from syncdsl.desired import SourceCounts
from syncdsl.errors import (
    HubSpotConflictError,
    HubSpotError,
    HubSpotValidationError,
    PlanError,
)
from syncdsl.hubspot import HubSpotClient, UpsertResult
from syncdsl.ir import Spec
from syncdsl.lockfile import lock_after, read_lock, write_lock
from syncdsl.plan import (
    BATCH_SIZE,
    ContactChange,
    Plan,
    PropertyChange,
    Rejection,
)
from syncdsl.planner import adoption_states
from syncdsl.schema import PropertySchema
from syncdsl.state import ContactState, StateStore

Progress = Callable[[int], None]
_EMAIL_IN_MESSAGE = re.compile(r"[^\s\"'<>,;:\[\]()]+@[^\s\"'<>,;:\[\]()]+")


@dataclass
class ApplyReport:
    """What apply did. Counts reconcile: created + updated + exited + rejected_by_hubspot = sent."""

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
            "rejected": [asdict(r) for r in self.rejected],
            "inputs": [asdict(counts) for counts in self.inputs],
            "schema_changes": self.schema_changes,
            "api_calls": self.api_calls,
            "batches": self.batches,
            "elapsed_seconds": round(self.elapsed, 3),
            "calls_per_second": round(self.rate, 2),
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class BatchOutcome:
    accepted: dict[str, UpsertResult]
    rejected: list[tuple[ContactChange, str]]


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
    changes: Sequence[ContactChange],
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
                    in_flight[pool.submit(upsert_batch, client, batch)] = batch
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


def _batches(changes: Sequence[ContactChange]) -> Iterator[list[ContactChange]]:
    for start in range(0, len(changes), BATCH_SIZE):
        yield list(changes[start : start + BATCH_SIZE])


def upsert_batch(client: HubSpotClient, batch: list[ContactChange]) -> BatchOutcome:
    """Upsert one batch (≤ 100); on a 400 isolate the bad inputs (named ones first, then bisection).

    Shared by apply and stream. Returns what HubSpot accepted (by email) and what it rejected.
    """
    try:
        results = client.batch_upsert_contacts_by_email([(c.email, c.properties) for c in batch])
    except (HubSpotValidationError, HubSpotConflictError) as error:
        # A whole-batch 409 (one input conflicts with another record) is isolated like a 400.
        if len(batch) == 1:
            return BatchOutcome({}, [(batch[0], _reason(error, batch[0].email))])
        named = _named_inputs(batch, error)
        if named and len(named) < len(batch):
            rest = [c for c in batch if c.email not in named]
            outcome = upsert_batch(client, rest)
            return BatchOutcome(
                outcome.accepted,
                outcome.rejected
                + [(c, _reason(error, c.email)) for c in batch if c.email in named],
            )
        middle = len(batch) // 2
        left, right = upsert_batch(client, batch[:middle]), upsert_batch(client, batch[middle:])
        return BatchOutcome({**left.accepted, **right.accepted}, left.rejected + right.rejected)
    # A 207 leaves failed inputs out of the results: they are rejected, never silently dropped.
    missing = [
        (c, "HubSpot returned no result for this input (207 partial failure)")
        for c in batch
        if c.email not in results
    ]
    return BatchOutcome(results, missing)


def _item_list(error: HubSpotError) -> list[dict[str, object]]:
    items = getattr(error, "errors", None) or error.body.get("errors") or []
    return [item for item in items if isinstance(item, dict)]


def _reason(error: HubSpotError, email: str) -> str:
    """HubSpot's own words for one input: its item errors naming the email, else the whole message."""
    if isinstance(error, HubSpotConflictError):
        said = str(error.body.get("message") or error.message)
        return (
            f"{said} (409 conflict: another contact already holds this email, perhaps as a "
            "secondary address; merge the contacts in HubSpot or fix the email, then run again)"
        )
    items = [
        str(item.get("message", "")) for item in _item_list(error) if email in json.dumps(item)
    ]
    items = [text for text in items if text]
    if items:
        return "; ".join(dict.fromkeys(items))
    return str(error.body.get("message") or error.message)


def _named_inputs(batch: list[ContactChange], error: HubSpotError) -> set[str]:
    """Emails of this batch that HubSpot's 400/409 names (e.g. "Email address x@y is invalid")."""
    emails = {c.email for c in batch}
    text = error.message + " " + " ".join(str(e) for e in _item_list(error))
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
    report.batches += 1
    for change in accepted:
        if change.action == "create" or outcome.accepted[change.email].new:
            report.created += 1
        elif change.action == "exit":
            report.exited += 1
        else:
            report.updated += 1
    for change, reason in outcome.rejected:
        file, _, line = (change.provenance[0] if change.provenance else "").rpartition(":")
        report.rejected.append(
            Rejection(
                "hubspot",
                file,
                int(line) if line.isdigit() else 0,
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
    """Apply a whole plan: schema, adoptions (state only), then contacts."""
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
