"""Micro-batching: coalesce events per email within a window; batches of up to 100 contacts."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field

from syncdsl.plan.definition import BATCH_SIZE


@dataclass
class PendingContact:
    """One contact waiting to be sent: its merged values and the events they came from."""

    email: str
    source: str
    properties: dict[str, str]
    audiences: dict[str, str]
    event_ids: list[int]
    received: list[float]  # wall-clock receipt time of each event, for latency
    raw: list[str] = field(default_factory=list)  # the events' payloads, for the rejects file
    since: float = 0.0  # monotonic time it started waiting (opens its window)
    exit_id: str | None = None  # set when this write only exits a member the state knows
    withheld: bool = False  # the latest event's consent withholds the person: nothing personal
    hubspot_id: str | None = None  # update_only: the contact it updates, by id

    @property
    def values(self) -> dict[str, str]:
        """Everything sent to HubSpot: mapped properties and audience statuses."""
        return {**self.properties, **self.audiences}

    def absorb(self, later: PendingContact) -> None:
        """Merge a later event's contact into this one: later values win, property by property;
        a later event whose consent withholds the person drops the values not sent yet."""
        if later.withheld:
            self.properties.clear()
        self.withheld = later.withheld
        self.properties.update(later.properties)
        self.audiences.update(later.audiences)
        self.event_ids.extend(later.event_ids)
        self.received.extend(later.received)
        self.raw.extend(later.raw)
        self.source = later.source


class Coalescer:
    """Contacts waiting for their batch, oldest first; one entry per email.

    A contact whose email is in a batch in flight stays here (absorbing later events) until that
    batch settles, so two batches never race for one email and the later value always lands last.
    """

    def __init__(self, *, window: float, batch_size: int = BATCH_SIZE) -> None:
        self.window = window
        self.batch_size = batch_size
        self._pending: OrderedDict[str, PendingContact] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, contact: PendingContact, now: float) -> bool:
        """Queue a contact; return True when it merged into one already waiting (coalesced)."""
        waiting = self._pending.get(contact.email)
        if waiting is not None:
            waiting.absorb(contact)
            return True
        contact.since = now
        self._pending[contact.email] = contact
        return False

    def restore(self, contacts: list[PendingContact], now: float) -> None:
        """Put back a batch that could not be sent: ahead of the rest, newer values still win."""
        for contact in reversed(contacts):
            newer = self._pending.pop(contact.email, None)
            if newer is not None:
                contact.absorb(newer)
            contact.since = min(contact.since, now)
            self._pending[contact.email] = contact
            self._pending.move_to_end(contact.email, last=False)

    def _eligible(self, busy: Collection[str]) -> list[PendingContact]:
        return [c for email, c in self._pending.items() if email not in busy]

    def due(self, now: float, busy: Collection[str], *, flush: bool = False) -> bool:
        """A batch should go now: enough contacts, the oldest one's window ended, or flushing."""
        eligible = self._eligible(busy)
        if not eligible:
            return False
        return flush or len(eligible) >= self.batch_size or eligible[0].since + self.window <= now

    def next_due(self, busy: Collection[str]) -> float | None:
        """When the oldest eligible contact's window ends (None when nothing is eligible)."""
        eligible = self._eligible(busy)
        return eligible[0].since + self.window if eligible else None

    def take(self, busy: Collection[str]) -> list[PendingContact]:
        """Remove and return the next batch: up to `batch_size` eligible contacts, oldest first."""
        batch = self._eligible(busy)[: self.batch_size]
        for contact in batch:
            del self._pending[contact.email]
        return batch
