"""The stream service: schema bootstrap, queue, intake, dispatcher, and an orderly drain."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from syncdsl.apply.executor import apply_schema
from syncdsl.errors import SyncdslError
from syncdsl.hubspot.schema import PropertySchema
from syncdsl.hubspot.target import Target
from syncdsl.lang.ir import Spec
from syncdsl.plan.build import fill_properties
from syncdsl.plan.schemadiff import diff_schema
from syncdsl.records.mapping import MappedRecord, ProfileMapper, RecordRejected
from syncdsl.session import store_location
from syncdsl.state.backend import ConfigurationLock, PortalLease
from syncdsl.state.lockfile import bound_properties, desired_lock, lock_after, read_lock, write_lock
from syncdsl.state.locks import ApplyLock
from syncdsl.state.postgres import Leases
from syncdsl.state.store import StateStore, state_dir
from syncdsl.stream.commit import GroupCommitter
from syncdsl.stream.follow import InputFollower
from syncdsl.stream.health import Health, SenderFacts, judge
from syncdsl.stream.http import IntakeApp, IntakeHooks
from syncdsl.stream.intake import IntakeConfig, RequestPolicy, normalize_origin
from syncdsl.stream.logs import EventLog, RejectsFile
from syncdsl.stream.metrics import StreamMetrics, render_prometheus
from syncdsl.stream.queue import QUEUE_FILE, EventQueue, QueuedEvent
from syncdsl.stream.server import ConnectionLimits, IntakeServer, connection_cap
from syncdsl.stream.worker import Dispatcher

REJECTS_FILE = "stream-rejects.jsonl"


@dataclass(frozen=True)
class StreamOptions:
    """Options of `syncdsl stream` (see the command for their meaning)."""

    host: str = "127.0.0.1"
    port: int = 8787
    input: str | None = None
    ingest_token: str | None = None
    window_seconds: float = 0.25
    max_queue: int = 100_000
    max_body: int = 10 * 1024 * 1024
    parallelism: int = 4
    grace_seconds: float = 10.0
    rejects: Path | None = None
    source: str | None = None  # the default source when the configuration has several
    idle_timeout: float = 5.0  # seconds a connection may wait with no request in progress
    read_timeout: float = 30.0  # seconds a request has to arrive whole
    max_connections: int | None = None  # default: 10,000, or fewer when descriptors are few
    unhealthy_after: float = 300.0  # seconds of failing batches before intake answers 503
    allow_origins: tuple[str, ...] = ()  # web origins (scheme://host[:port]) whose posts pass


def allowed_origins(urls: tuple[str, ...]) -> tuple[str, ...]:
    """`--allow-origin` values as browsers send them in `Origin`; SyncdslError for a bad one."""
    try:
        return tuple(normalize_origin(url) for url in urls)
    except ValueError as error:
        raise SyncdslError(f"--allow-origin: {error}") from None


def default_source(spec: Spec, chosen: str | None = None) -> str | None:
    """The source events use unless they name one: the chosen one, or the only profile source
    (jsonl or parquet: events are profiles in the same shape)."""
    if chosen is not None:
        spec.source(chosen)  # KeyError when unknown; the command turns it into an error
        return chosen
    profiles = [source.name for source in spec.sources if source.nested]
    return profiles[0] if len(profiles) == 1 else None


def ensure_schema(spec: Spec, target: Target, store: StateStore) -> dict[str, PropertySchema]:
    """Property group and audience properties, as `apply` makes them; then the lock. -> schema."""
    current = read_lock(spec.root)
    wanted = desired_lock(spec, current)
    schema_diff = diff_schema(
        spec,
        properties=target.client.list_properties(),
        groups=target.client.list_property_groups(),
        current_lock=current,
        desired_lock=wanted,
        removed_decision="keep",
    )
    store.bind(target.state_key)
    apply_schema(target.client, store, schema_diff.changes)
    write_lock(spec.root, lock_after(spec, current, keep={r.key for r in schema_diff.removed}))
    return schema_diff.schema


class EventMapper:
    """Raw queued events -> contacts, with each source's mapper and the lock's property names."""

    def __init__(
        self, spec: Spec, schema: dict[str, PropertySchema], store: StateStore | None = None
    ) -> None:
        self._store = store  # remembers each person's consent between partial events
        lock = desired_lock(spec, read_lock(spec.root))
        self._rename = bound_properties(spec, lock.properties)
        self._mappers = {s.name: ProfileMapper(spec, s, schema) for s in spec.sources}
        # A full export's event lists the profile's whole membership: a segment it no longer
        # lists was left. An incremental export's event says nothing of the segments it omits.
        self._segment_properties = {
            s.name: tuple(
                self._rename[a.property] for a in spec.audiences if a.source == s.name and a.segment
            )
            for s in spec.sources
            if s.export == "full"
        }
        self.audience_properties = tuple(sorted(set(self._rename.values())))
        # fill_if_empty needs HubSpot's current value, which only a plan reads: never streamed.
        self._fill = fill_properties(spec)

    def __call__(self, event: QueuedEvent) -> MappedRecord:
        mapper = self._mappers.get(event.source)
        if mapper is None:
            raise RecordRejected(f"source {event.source!r} is no longer in the configuration")
        try:
            record = json.loads(event.payload)
        except json.JSONDecodeError as error:
            raise RecordRejected(f"stored event is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise RecordRejected("the event is not a profile object")
        mapped = self._consented(mapper, record, mapper.map(record, partial=True))
        audiences = {
            self._rename.get(name, name): status for name, status in mapped.audiences.items()
        }
        if _has_membership(record):
            # As in a batch export: a profile whose membership no longer lists a segment has
            # left it (the dispatcher sends the exit only to someone the state knows as a member).
            for prop in self._segment_properties.get(event.source, ()):
                audiences.setdefault(prop, "exited")
        properties = {k: v for k, v in mapped.properties.items() if k not in self._fill}
        return MappedRecord(mapped.email, properties, audiences, mapped.withheld)

    def _consented(
        self, mapper: ProfileMapper, record: dict[str, object], mapped: MappedRecord
    ) -> MappedRecord:
        """The event's contact under its source's consent rule. An event holding a consent value
        decides (and is remembered); one holding none follows what was last heard of the person,
        else whether it was exported before (under an allow list, someone never exported and
        never heard consenting is withheld)."""
        consent = mapper.consent
        if consent is None or self._store is None:
            return mapped
        if mapper.holds_consent(record):
            self._store.remember_consent(mapped.email, mapped.withheld)
            return mapped
        known, reason = self._store.consent_of(mapped.email)
        if not known and consent.allow is not None and self._store.get(mapped.email) is None:
            reason = "consent withheld: no consent value received for this person"
        if reason is None:
            return mapped
        exits = {name: "exited" for name in mapper.audience_properties}
        return MappedRecord(mapped.email, {}, exits, reason)


def _has_membership(record: dict[str, object]) -> bool:
    """The event carries segment membership (an attribute-only update does not)."""
    membership = record.get("segmentMembership", record.get("xdm:segmentMembership"))
    if not isinstance(membership, dict):
        return False
    return isinstance(membership.get("ups", membership.get("xdm:ups")), dict)


class StreamService:
    """Runs `syncdsl stream` in-process: `start()`, then `stop()` drains and returns.

    The caller owns `target` (the client and, with --local, the embedded HubSpot).
    """

    def __init__(
        self,
        spec: Spec,
        target: Target,
        options: StreamOptions,
        *,
        log: EventLog | None = None,
        lock: ApplyLock | None = None,
    ) -> None:
        self.spec = spec
        self.target = target
        self.options = options
        self.log = log or EventLog()
        self.metrics = StreamMetrics()
        self.queue_path = state_dir(spec.root) / QUEUE_FILE
        self.queue_name = str(self.queue_path)  # where the queue is, for people
        self.rejects = RejectsFile(options.rejects or state_dir(spec.root) / REJECTS_FILE)
        self.started_at = 0.0
        self._lock: ApplyLock | None = None
        self._held = lock  # the caller's lock on the configuration, else one taken by start()
        self._store: StateStore | None = None
        self._events: EventQueue | None = None
        self._server: IntakeServer | None = None
        self._committer: GroupCommitter | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._follower: InputFollower | None = None
        self._dispatcher: Dispatcher | None = None
        self._stopped = False
        self._shared = False  # a replica of a shared store: sends only under the portal's lease
        self._lease: ConfigurationLock | None = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._warned_rivals = False

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> str:
        """Bootstrap the schema, open the queue, start sending and intake; return the URL.

        In a shared store (PostgreSQL) every replica takes intake at once, and sends only while
        it holds the portal's lease: a standby replica waits for the lease (`_supervise`)."""
        config = self._intake_config()
        location = store_location(self.spec)
        self._shared = location.shared and not self.target.local
        if self._held is None and not self._shared:
            self._lock = ApplyLock(self.spec.root).__enter__()
        try:
            self._store = location.state()
            if self._shared:
                self.queue_name = location.describe()
                self._events = EventQueue(self.queue_path, database=location.database())
                self._lease = location.lock((self.target.base_url, self.target.client.token_digest))
                assert isinstance(self._lease, PortalLease)
                if self._lease.leases.try_acquire():  # free: send from the start, as alone
                    self._start_sending()
            else:
                self._events = EventQueue(self.queue_path)
                self._start_sending()
            self._start_server(config)
            if self.options.input is not None:
                self._follower = InputFollower(
                    self.options.input,
                    config=config,
                    events=self._events,
                    metrics=self.metrics,
                    rejects=self.rejects,
                    log=self.log,
                    on_stored=self._wake,
                )
                self._follower.start()
            if self._shared:
                self._supervisor = threading.Thread(
                    target=self._supervise, name="stream-lease", daemon=True
                )
                self._supervisor.start()
        except BaseException:
            self._close()
            raise
        self.started_at = time.monotonic()
        self.log(
            "stream_started",
            url=self.url,
            queued=self._events.depth,
            queue=self.queue_name,
            input=self.options.input,
            parallelism=self.options.parallelism,
            window_ms=round(self.options.window_seconds * 1000),
            replica=self._shared,
        )
        return self.url

    def _start_sending(self) -> None:
        """The schema (as apply makes it), then the dispatcher."""
        assert self._store is not None and self._events is not None
        schema = ensure_schema(self.spec, self.target, self._store)
        mapper = EventMapper(self.spec, schema, self._store)
        dispatcher = Dispatcher(
            audience_properties=mapper.audience_properties,
            events=self._events,
            client=self.target.client,
            store=self._store,
            map_event=mapper,
            metrics=self.metrics,
            rejects=self.rejects,
            log=self.log,
            window=self.options.window_seconds,
            parallelism=self.options.parallelism,
            update_only=self.spec.destination.mode == "update_only",
        )
        dispatcher.start()
        self._dispatcher = dispatcher

    def _wake(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def _supervise(self) -> None:
        """A replica's sending: wait for the portal's lease, send while it is held, and give
        way (stop sending at once) if it is lost; the lease expires when this process dies."""
        assert isinstance(self._lease, PortalLease)
        leases = self._lease.leases
        poll = min(1.0, leases.seconds / 5)
        while not self._stopping.is_set():
            if self._dispatcher is None and not self._take_over(leases):
                self._stopping.wait(poll)
                continue
            while not self._stopping.is_set() and not leases.lost.is_set():
                leases.lost.wait(0.1)
            if self._stopping.is_set():
                return  # stop() drains, then releases the lease
            self.log("lease_lost", level="warning")
            dispatcher, self._dispatcher = self._dispatcher, None
            if dispatcher is not None:
                dispatcher.drain(0.0)
            leases.release()

    def _take_over(self, leases: Leases) -> bool:
        """Take the lease and start sending; False when another replica holds it (or the
        database or HubSpot failed: logged, tried again)."""
        try:
            if not leases.try_acquire():
                if not self._warned_rivals and (rivals := leases.rivals()):
                    # Its intake waits for that holder: usually a configuration key mismatch.
                    self._warned_rivals = True
                    self.log(
                        "portal_held_by_another_configuration",
                        level="warning",
                        holds=rivals,
                        hint="replicas of one configuration need one store_key",
                    )
                return False
        except SyncdslError as error:  # the database is unreachable: try again
            self.log("lease_unavailable", level="warning", error=str(error))
            return False
        self.log("lease_acquired", holder=leases.holder.note)
        try:
            self._start_sending()
        except Exception as error:  # noqa: BLE001 - logged; this or another replica tries again
            self.log("sending_failed", level="error", error=f"{type(error).__name__}: {error}")
            leases.release()
            return False
        return True

    def _intake_config(self) -> IntakeConfig:
        try:
            fallback = default_source(self.spec, self.options.source)
        except KeyError:
            raise SyncdslError(
                f"--source {self.options.source!r} is not a source of this configuration (it has "
                f"{', '.join(s.name for s in self.spec.sources)})"
            ) from None
        if fallback is None:
            raise SyncdslError(
                "the configuration does not have exactly one profile source (jsonl or parquet), so events that name "
                "no source could not be mapped: choose the default with --source NAME (requests "
                'may still pick another with ?source=NAME or a "source" field)'
            )
        return IntakeConfig(
            sources=tuple(s.name for s in self.spec.sources),
            default_source=fallback,
            max_queue=self.options.max_queue,
            max_body=self.options.max_body,
            ingest_token=self.options.ingest_token,
            check_request=RequestPolicy(frozenset(allowed_origins(self.options.allow_origins))),
        )

    def _start_server(self, config: IntakeConfig) -> None:
        assert self._events is not None
        events = self._events
        self._committer = GroupCommitter(events)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stream-intake")
        hooks = IntakeHooks(
            committer=self._committer,
            metrics=self.metrics,
            on_stored=self._wake,
            health=self.health,
            queue_depth=lambda: events.depth,
            status=self.status,
            prometheus=self.prometheus,
        )
        app = IntakeApp(config, hooks, self._executor, max(128 << 20, 2 * config.max_body))
        limits = ConnectionLimits(
            idle_timeout=self.options.idle_timeout,
            read_timeout=self.options.read_timeout,
            max_connections=connection_cap(self.options.max_connections),
        )
        try:
            self._server = IntakeServer(self.options.host, self.options.port, app, limits, self.log)
        except OSError as error:
            raise SyncdslError(
                f"cannot listen on {self.options.host}:{self.options.port} "
                f"({error.strerror or error}); choose another --port"
            ) from None
        self._server.start()

    def stop(self, grace_seconds: float | None = None) -> bool:
        """Stop intake, drain within the grace period, close; True when the queue is empty."""
        if self._stopped:
            return self._events is None or self._events.depth == 0
        self._stopped = True
        grace = self.options.grace_seconds if grace_seconds is None else grace_seconds
        started = time.monotonic()
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self._follower is not None:
            self._follower.stop()
        drained = self._dispatcher.drain(grace) if self._dispatcher is not None else True
        left = self._events.depth if self._events is not None else 0
        counts = self._counts()
        self.log(
            "stream_stopped",
            drained=drained,
            left_queued=left,
            drain_seconds=round(time.monotonic() - started, 3),
            received=counts["events_received"],
            applied=counts["events_applied"],
            rejected=counts["events_rejected"],
            not_member=counts["events_not_member"],
            no_consent=counts["events_no_consent"],
        )
        self._close()
        return drained

    def _close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._committer is not None:
            self._committer.close()
            self._committer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._events is not None:
            self._events.close()
        if self._store is not None:
            self._store.close()
        if self._lease is not None:
            self._lease.__exit__(None, None, None)
            self._lease = None
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __enter__(self) -> StreamService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observability ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else ""

    @property
    def queue_depth(self) -> int:
        return self._events.depth if self._events is not None else 0

    @property
    def input_eof(self) -> bool:
        return self._follower is not None and self._follower.eof.is_set()

    def _counts(self) -> dict[str, int]:
        return {
            name: self.metrics.get(name)
            for name in (
                "events_received",
                "events_applied",
                "events_rejected",
                "events_not_member",
                "events_no_consent",
            )
        }

    def health(self) -> Health:
        """Whether the stream can send now (intake answers 503 and /healthz 503 when not)."""
        dispatcher = self._dispatcher
        if dispatcher is None and self._shared:
            # A standby replica: intake stores events, the lease holder sends them.
            facts = SenderFacts(True, None, 0, None, False, None)
        elif dispatcher is None:
            facts = SenderFacts(False, "not started", 0, None, False, None)
        else:
            # A batch fails once the client's retries are spent (minutes); the client says
            # at once that HubSpot fails, so a retrying stream is degraded from the first 5xx.
            stats = self.target.client.stats
            moments = [m for m in (dispatcher.failing_since, stats.failing_since) if m is not None]
            facts = SenderFacts(
                alive=not dispatcher.finished.is_set(),
                fatal_error=dispatcher.fatal_error,
                failures=dispatcher.failures,
                failing_seconds=time.monotonic() - min(moments) if moments else None,
                lasting=dispatcher.last_failure_lasting,
                last_error=dispatcher.last_error
                if dispatcher.failing_since is not None
                else f"{stats.last_failure} (retrying)",
            )
        return judge(facts, draining=self._stopped, unhealthy_after=self.options.unhealthy_after)

    def status(self) -> dict[str, object]:
        """The /status document (served with 503 while `healthy` is false)."""
        dispatcher = self._dispatcher
        stats = self.target.client.stats.snapshot()
        health = self.health()
        return {
            "status": health.status,
            "healthy": health.healthy,
            "reason": health.reason,
            "uptime_seconds": round(time.monotonic() - self.started_at, 3)
            if self.started_at
            else 0.0,
            "queue_depth": self.queue_depth,
            "oldest_event_age_seconds": self._oldest_age(),
            "pending_contacts": dispatcher.pending if dispatcher else 0,
            "batches_in_flight": dispatcher.in_flight if dispatcher else 0,
            "retry_in_seconds": round(dispatcher.retry_in, 3) if dispatcher else 0.0,
            "last_error": dispatcher.last_error if dispatcher else None,
            "not_member": self.metrics.get("events_not_member"),
            "no_consent": self.metrics.get("events_no_consent"),
            "metrics": self.metrics.snapshot(),
            "hubspot": {
                "api_calls": stats["calls"],
                "rate_limited": stats["rate_limited"],
                "retries": stats["retries"],
                "daily_remaining": stats["daily_remaining"],
            },
            "max_queue": self.options.max_queue,
            "sending": dispatcher is not None,  # False: a standby replica (intake only)
            "http": self._server.connections() if self._server is not None else {},
        }

    def _oldest_age(self) -> float | None:
        oldest = self._events.oldest_received() if self._events is not None else None
        return None if oldest is None else round(max(time.time() - oldest, 0.0), 3)

    def prometheus(self) -> str:
        """The /metrics document."""
        stats = self.target.client.stats.snapshot()
        dispatcher = self._dispatcher
        gauges = {
            "queue_depth": ("Events stored and not yet settled.", lambda: float(self.queue_depth)),
            "pending_contacts": (
                "Contacts coalesced and waiting for their batch.",
                lambda: float(dispatcher.pending if dispatcher else 0),
            ),
            "batches_in_flight": (
                "Batch upserts being sent now.",
                lambda: float(dispatcher.in_flight if dispatcher else 0),
            ),
        }
        client_counters = {
            "api_calls": ("HubSpot API requests sent (every attempt).", int(stats["calls"])),
            "rate_limited": ("HubSpot answers with status 429.", int(stats["rate_limited"])),
            "api_retries": ("HubSpot requests retried by the client.", int(stats["retries"])),
        }
        return render_prometheus(self.metrics, gauges, client_counters)
