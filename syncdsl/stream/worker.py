"""Sending: the dispatcher maps and coalesces queued events; workers upsert batches in parallel.

One dispatcher thread owns the coalescer, the queue cursor, the state store and every ack, so
settling a batch needs no locks. Workers only talk to HubSpot, through the one shared client (and
so within its one rate budget). Events leave the queue only once HubSpot accepted or rejected
them; a batch that fails after the client's own retries goes back to the coalescer and is tried
again after a backoff, so at worst an event is sent twice (upserts make that harmless).
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from syncdsl.apply.executor import BatchOutcome, write_batch
from syncdsl.errors import HubSpotAuthError, HubSpotError, HubSpotScopeError
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.plan.definition import ContactChange, ExitContact, UpdateContact, ValueChange
from syncdsl.plan.diff import audience_writes
from syncdsl.records.mapping import MappedRecord, RecordRejected
from syncdsl.state.store import ContactState, StateStore
from syncdsl.stream.batcher import Coalescer, PendingContact
from syncdsl.stream.logs import EventLog, RejectsFile
from syncdsl.stream.metrics import StreamMetrics
from syncdsl.stream.queue import EventQueue, QueuedEvent

MapEvent = Callable[[QueuedEvent], MappedRecord]
RETRY_BASE = 0.5
RETRY_CAP = 30.0
IDLE_POLL = 0.5  # a safety net; intake wakes the dispatcher as soon as it stores events
READ_CHUNK = 500
MAX_HELD_EVENTS = 50_000  # events read into memory and not yet settled (bursts on few emails)
#: Failures that retrying cannot cure (a revoked token, a missing scope); internal errors too.
LASTING_FAILURES = (HubSpotAuthError, HubSpotScopeError)


@dataclass(frozen=True)
class _Settled:
    """A worker's answer for one batch: an outcome, or the error that outlasted the retries."""

    batch: list[PendingContact]
    outcome: BatchOutcome | None
    error: Exception | None


_WAKE = object()


def _changes(batch: list[PendingContact]) -> list[ContactChange]:
    """The batch as plan changes: an exit of a known member goes by id (never recreated), and
    so does every write in update_only."""
    return [
        (ExitContact if c.exit_id else UpdateContact)(
            c.email,
            tuple(ValueChange(name, None, value) for name, value in c.values.items()),
            hubspot_id=c.exit_id or c.hubspot_id,
            by_id=c.hubspot_id is not None,
        )
        for c in batch
    ]


class Dispatcher:
    """Reads the queue in order, coalesces per email, keeps `parallelism` batches in flight."""

    def __init__(
        self,
        *,
        events: EventQueue,
        client: HubSpotClient,
        store: StateStore,
        map_event: MapEvent,
        audience_properties: tuple[str, ...],
        metrics: StreamMetrics,
        rejects: RejectsFile,
        log: EventLog,
        window: float,
        parallelism: int,
        update_only: bool = False,
    ) -> None:
        self.events = events
        self.client = client
        self.store = store
        self.map_event = map_event
        self.audience_properties = audience_properties
        self.update_only = update_only
        # An event says nothing of the audiences it omits: their statuses carry forward.
        self._carried = frozenset(audience_properties)
        self.metrics = metrics
        self.rejects = rejects
        self.log = log
        self.parallelism = parallelism
        self.coalescer = Coalescer(window=window)
        self.max_pending = 100 * (2 * parallelism + 1)
        self._inbox: queue.Queue[object] = queue.Queue()
        self._jobs: queue.Queue[list[PendingContact] | None] = queue.Queue()
        self._busy: set[str] = set()  # emails in batches in flight
        self._in_flight = 0
        self._cursor = 0
        self._held = 0  # events mapped into the coalescer or in flight, not yet settled
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None  # the latest batch failure, for /status
        self.fatal_error: str | None = None  # why the dispatcher loop stopped, when it failed
        self.failing_since: float | None = None  # monotonic; set from a failure to a success
        self.last_failure_lasting = False  # the latest failure will not pass by itself
        self._stop_at: float | None = None  # set by drain(): flush until then
        self._wake_pending = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-dispatcher", daemon=True)
        self._workers = [
            threading.Thread(target=self._work, name=f"stream-upsert-{i}", daemon=True)
            for i in range(parallelism)
        ]
        self.finished = threading.Event()

    # -- control ----------------------------------------------------------------------------
    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._thread.start()

    def wake(self) -> None:
        """New events are in the queue (called by intake)."""
        if not self._wake_pending.is_set():
            self._wake_pending.set()
            self._inbox.put(_WAKE)

    def drain(self, grace_seconds: float) -> bool:
        """Flush everything pending until done or the grace period ends; True when all was sent."""
        self._stop_at = time.monotonic() + max(grace_seconds, 0.0)
        self._inbox.put(_WAKE)
        self.finished.wait(grace_seconds + 5.0)
        for _ in self._workers:
            self._jobs.put(None)
        return self.events.depth == 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def retry_in(self) -> float:
        """Seconds until batches are sent again after a failure (0 when not backing off)."""
        return max(self._retry_at - time.monotonic(), 0.0)

    @property
    def failures(self) -> int:
        """Batch failures since the last batch HubSpot answered."""
        return self._failures

    @property
    def pending(self) -> int:
        return len(self.coalescer)

    # -- workers ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._jobs.get()
            if batch is None:
                return
            try:
                outcome = write_batch(self.client, _changes(batch))
                self._inbox.put(_Settled(batch, outcome, None))
            except Exception as error:  # noqa: BLE001 - the batch is retried, whatever failed
                self._inbox.put(_Settled(batch, None, error))

    # -- the dispatcher loop --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._done():
                self._fill()
                self._send()
                self._wait_and_settle()
        except Exception as error:  # noqa: BLE001 - logged; events stay queued for the next start
            self.fatal_error = f"{type(error).__name__}: {error}"
            self.log("dispatcher_failed", level="error", error=self.fatal_error)
        finally:
            self.finished.set()

    def _done(self) -> bool:
        if self._stop_at is None:
            return False
        if time.monotonic() >= self._stop_at:
            return True
        return self._in_flight == 0 and len(self.coalescer) == 0 and not self._has_unread()

    def _has_unread(self) -> bool:
        return bool(self.events.read_after(self._cursor, 1))

    def _fill(self) -> None:
        """Map and coalesce unread events while there is room; settle mapping rejects at once."""
        rejected: list[int] = []
        now = time.monotonic()
        while len(self.coalescer) < self.max_pending and self._held < MAX_HELD_EVENTS:
            chunk = self.events.read_after(self._cursor, min(READ_CHUNK, self.max_pending))
            if not chunk:
                break
            for event in chunk:
                self._cursor = event.id
                mapped = self._map_or_reject(event)
                if mapped is None:
                    rejected.append(event.id)
                    continue
                contact = PendingContact(
                    mapped.email,
                    event.source,
                    dict(mapped.properties),
                    dict(mapped.audiences),
                    [event.id],
                    [event.received],
                    [event.payload],
                    withheld=mapped.withheld is not None,
                )
                self._held += 1
                if self.coalescer.add(contact, now):
                    self.metrics.add("events_coalesced")
            if len(chunk) < READ_CHUNK:
                break
        if rejected:
            self.events.delete(rejected)
            self.metrics.add("events_rejected", len(rejected))

    def _map_or_reject(self, event: QueuedEvent) -> MappedRecord | None:
        """The event's contact, or None once it is in the rejects file: whatever one event does
        (a refusal, or any error the mapping raises on it), the events after it go on."""
        try:
            return self.map_event(event)
        except RecordRejected as error:
            reason = error.reason
        except Exception as error:  # noqa: BLE001 - one bad event must never stop the sender
            reason = f"the event could not be mapped ({type(error).__name__}: {error})"
            self.log("event_unmappable", level="warning", event_id=event.id, error=reason)
        self.rejects.write(
            stage="mapping", source=event.source, reason=reason, record=event.payload
        )
        return None

    def _send(self) -> None:
        now = time.monotonic()
        flush = self._stop_at is not None
        while (
            self._in_flight < self.parallelism
            and now >= self._retry_at
            and self.coalescer.due(now, self._busy, flush=flush)
        ):
            batch = self._worth_sending(self.coalescer.take(self._busy))
            if not batch:
                continue
            self._busy.update(c.email for c in batch)
            self._in_flight += 1
            self._jobs.put(batch)

    def _worth_sending(self, batch: list[PendingContact]) -> list[PendingContact]:
        """Apply the plan's exit rule (`audience_writes`) to each contact against the state.

        A contact that is a member of no audience, and no member to exit, is not sent at all
        (counted as not_member); `exited` is dropped for someone the state never saw as a member;
        a contact left with nothing to send is settled (events_skipped): no contact is created
        just to hold an email.
        """
        keep: list[PendingContact] = []
        idle: list[int] = []
        outsiders: list[int] = []
        withheld: list[int] = []
        absent: list[int] = []  # update_only: no HubSpot contact the state knows of
        for contact in batch:
            known = self.store.get(contact.email)
            before = known.audiences if known is not None else {}
            writes = audience_writes(
                contact.audiences, before, self.audience_properties, carried=self._carried
            )
            if writes is None:
                (withheld if contact.withheld else outsiders).extend(contact.event_ids)
                continue
            contact.audiences = {
                prop: status
                for prop, status in writes.items()
                if prop in contact.audiences or status != before.get(prop)
            }
            leaving = all(status == "exited" for status in writes.values())
            contact.exit_id = known.hubspot_id if leaving and known is not None else None
            if self.update_only:
                if known is None or known.hubspot_id is None:
                    absent.extend(contact.event_ids)
                    continue
                contact.hubspot_id = known.hubspot_id
            if contact.values:
                keep.append(contact)
            else:
                idle.extend(contact.event_ids)
        for ids, counter in (
            (idle, "events_skipped"),
            (outsiders, "events_not_member"),
            (withheld, "events_no_consent"),
            (absent, "events_not_in_hubspot"),
        ):
            if ids:
                self.events.delete(ids)
                self._held -= len(ids)
                self.metrics.add(counter, len(ids))
        return keep

    def _wait_and_settle(self) -> None:
        timeout = self._timeout()
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            if item is _WAKE:
                self._wake_pending.clear()
            elif isinstance(item, _Settled):
                self._settle(item)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _timeout(self) -> float:
        now = time.monotonic()
        moments = [now + IDLE_POLL]
        if self._in_flight < self.parallelism:
            due = self.coalescer.next_due(self._busy)
            if due is not None:
                moments.append(max(due, self._retry_at))
        if self._stop_at is not None:
            moments.append(self._stop_at)
        return max(min(moments) - now, 0.0)

    # -- settling a batch ---------------------------------------------------------------------
    def _settle(self, settled: _Settled) -> None:
        self._in_flight -= 1
        self._busy.difference_update(c.email for c in settled.batch)
        if settled.outcome is None:
            self._retry_later(settled.batch, settled.error)
            return
        outcome = settled.outcome
        accepted = [c for c in settled.batch if c.email in outcome.accepted]
        rejected = {change.email: reason for change, reason in outcome.rejected}
        # Exits of members deleted in HubSpot by hand: not recreated, forgotten in the state.
        gone = {change.email for change in outcome.deleted}
        if gone:
            self.store.forget(gone)
            self.metrics.add("exits_of_deleted", len(gone))
        unanswered = [
            c
            for c in settled.batch
            if c.email not in outcome.accepted and c.email not in rejected and c.email not in gone
        ]
        self.store.record(
            ContactState(
                c.email, outcome.accepted[c.email].id, dict(c.properties), dict(c.audiences)
            )
            for c in accepted
        )
        finished = time.time()
        self.metrics.observe_latencies(finished - t for c in accepted for t in c.received)
        for contact in settled.batch:
            if contact.email in rejected:
                for raw in contact.raw:
                    self.rejects.write(
                        stage="hubspot",
                        source=contact.source,
                        email=contact.email,
                        reason=f"HubSpot rejected {contact.email}: {rejected[contact.email]}",
                        record=raw,
                    )
        done_ids = [
            i
            for c in settled.batch
            if c.email in outcome.accepted or c.email in rejected or c.email in gone
            for i in c.event_ids
        ]
        self.events.delete(done_ids)
        self._held -= len(done_ids)
        self.metrics.add("events_applied", sum(len(c.event_ids) for c in accepted))
        self.metrics.add(
            "events_rejected", sum(len(c.event_ids) for c in settled.batch if c.email in rejected)
        )
        self.metrics.add("batches_sent")
        self.metrics.observe_batch(len(settled.batch))
        self._failures = 0
        self.failing_since = None
        if unanswered:
            self._retry_later(unanswered, None)

    def _retry_later(self, batch: list[PendingContact], error: Exception | None) -> None:
        """Keep the events queued and back off: HubSpot is down, limited or refusing for now."""
        self.coalescer.restore(batch, time.monotonic())
        self._failures += 1
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.last_failure_lasting = isinstance(error, LASTING_FAILURES) or (
            error is not None and not isinstance(error, HubSpotError)
        )
        delay = min(RETRY_CAP, RETRY_BASE * 2 ** min(self._failures - 1, 16))
        delay *= random.uniform(0.5, 1.0)
        self._retry_at = time.monotonic() + delay
        self.metrics.add("batch_failures")
        reason = "HubSpot did not answer for every contact" if error is None else str(error)
        kind = type(error).__name__ if error is not None else "Unanswered"
        if error is not None and not isinstance(error, HubSpotError):
            kind = f"internal {kind}"
        self.last_error = f"{kind}: {reason}"
        self.log(
            "batch_failed",
            level="warning",
            contacts=len(batch),
            error=kind,
            message=reason,
            retry_in_seconds=round(delay, 2),
        )
