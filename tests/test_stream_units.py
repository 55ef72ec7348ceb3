"""Stream building blocks on their own: the coalescer, the durable queue, quantiles."""

from __future__ import annotations

import math
from pathlib import Path

from syncdsl.stream.batcher import Coalescer, PendingContact
from syncdsl.stream.metrics import quantile
from syncdsl.stream.queue import EventQueue, InputOffset


def pending(email: str, event_id: int, **values: str) -> PendingContact:
    audiences = {k: v for k, v in values.items() if k == "newsletter"}
    properties = {k: v for k, v in values.items() if k != "newsletter"}
    return PendingContact(email, "profiles", properties, audiences, [event_id], [0.0], ["{}"])


def test_a_batch_goes_at_100_contacts_or_when_the_window_ends() -> None:
    coalescer = Coalescer(window=0.25)
    for i in range(99):
        coalescer.add(pending(f"c{i}@x.io", i), now=10.0)
    assert not coalescer.due(10.1, set())
    assert coalescer.due(10.25, set())  # the oldest contact's window ended
    coalescer.add(pending("c99@x.io", 99), now=10.1)
    assert coalescer.due(10.1, set())  # 100 contacts
    assert [c.email for c in coalescer.take(set())][:2] == ["c0@x.io", "c1@x.io"]
    assert len(coalescer) == 0


def test_contacts_in_flight_wait_and_absorb_later_events() -> None:
    coalescer = Coalescer(window=0.0)
    coalescer.add(pending("a@x.io", 1, firstname="Old", city="Rome"), now=0.0)
    coalescer.add(pending("a@x.io", 2, firstname="New"), now=0.0)
    assert coalescer.take({"a@x.io"}) == []  # its email is in a batch in flight
    assert not coalescer.due(5.0, {"a@x.io"})
    (merged,) = coalescer.take(set())
    assert merged.properties == {"firstname": "New", "city": "Rome"}
    assert merged.event_ids == [1, 2]


def test_a_failed_batch_comes_back_first_and_newer_values_still_win() -> None:
    coalescer = Coalescer(window=1.0)
    coalescer.add(pending("a@x.io", 1, firstname="Sent", newsletter="realized"), now=0.0)
    (failed,) = coalescer.take(set())
    coalescer.add(pending("b@x.io", 3, firstname="B"), now=0.5)
    coalescer.add(pending("a@x.io", 4, newsletter="exited"), now=0.6)
    coalescer.restore([failed], now=0.7)
    batch = coalescer.take(set())
    assert [c.email for c in batch] == ["a@x.io", "b@x.io"]
    assert batch[0].values == {"firstname": "Sent", "newsletter": "exited"}
    assert batch[0].event_ids == [1, 4]


def test_queue_survives_reopening_and_deletes_only_what_is_settled(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = EventQueue(path)
    queue.append(
        [("profiles", '{"email": "a@x.io"}'), ("profiles", '{"email": "b@x.io"}')],
        offset=InputOffset("/feed", 42),
    )
    first = queue.read_after(0, 10)
    assert [e.payload for e in first] == ['{"email": "a@x.io"}', '{"email": "b@x.io"}']
    assert queue.delete([first[0].id]) == 1
    queue.close()
    reopened = EventQueue(path)
    assert reopened.depth == 1
    assert [e.id for e in reopened.read_after(0, 10)] == [first[1].id]
    assert reopened.offset("/feed") == 42 and reopened.offset("/other") == 0
    reopened.close()


def test_nearest_rank_quantiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.99), quantile(values, 1.0)) == (50, 99, 100)
    assert math.isnan(quantile([], 0.5))


def test_a_withheld_event_drops_the_values_waiting_before_it() -> None:
    coalescer = Coalescer(window=0.0)
    coalescer.add(pending("a@example.com", 1, firstname="Ann", newsletter="realized"), 0.0)
    withheld = pending("a@example.com", 2, newsletter="exited")
    withheld.withheld = True
    assert coalescer.add(withheld, 0.1)
    later = pending("a@example.com", 3, city="Oslo")
    assert coalescer.add(later, 0.2)  # consent given again: later values are sent
    (merged,) = coalescer.take(set())
    assert merged.values == {"newsletter": "exited", "city": "Oslo"} and not merged.withheld
