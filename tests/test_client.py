"""HubSpotClient against the local emulator: typed calls, matching, paging, search past 10,000, faults."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from syncdsl.emulator import Emulator
from syncdsl.errors import DailyLimitError
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema

TOKEN = "pat-local-emulator"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=11, search_per_second=50) as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[HubSpotClient]:
    budget = RateBudget(limit=100, search_per_second=50)
    with HubSpotClient(emulator.base_url, TOKEN, budget=budget, backoff_base=0.01) as hubspot:
        yield hubspot


def test_property_calls_round_trip(client: HubSpotClient, emulator: Emulator) -> None:
    group = client.create_property_group(PropertyGroup("syncdsl", "syncdsl audiences", 3))
    assert group == PropertyGroup("syncdsl", "syncdsl audiences", 3)
    assert "syncdsl" in {g.name for g in client.list_property_groups()}

    status = PropertySchema(
        "aud_status",
        "Audience status",
        "enumeration",
        "select",
        group_name="syncdsl",
        options=(PropertyOption("Realized", "realized"),),
    )
    assert client.create_property(status).option_values == ("realized",)
    patched = client.update_property(
        "aud_status",
        label="Status",
        options=(PropertyOption("Realized", "realized"), PropertyOption("Exited", "exited", 1)),
    )
    assert (patched.label, patched.option_values) == ("Status", ("realized", "exited"))
    assert emulator.get_property("aud_status")["label"] == "Status"  # type: ignore[index]

    more = [
        PropertySchema(f"aud_n{i}", f"N{i}", "number", "number", group_name="syncdsl")
        for i in range(3)
    ]
    assert [p.name for p in client.batch_create_properties(more)] == ["aud_n0", "aud_n1", "aud_n2"]
    by_name = {p.name: p for p in client.list_properties()}
    assert {"aud_status", "aud_n0", "email"} <= set(by_name)
    assert by_name["hs_object_id"].read_only and not by_name["email"].read_only
    assert client.get_property("aud_n1").type == "number"


def test_upsert_matches_shuffled_results_by_email(
    client: HubSpotClient, emulator: Emulator
) -> None:
    inputs = [(f"User{i}@Example.com", {"firstname": f"F{i}"}) for i in range(100)]
    first = client.batch_upsert_contacts_by_email(inputs)
    again = client.batch_upsert_contacts_by_email(inputs[:10])

    assert len(first) == 100 and all(r.new for r in first.values())
    for i in range(100):
        email = f"user{i}@example.com"
        stored = emulator.contact_by_email(email)
        assert stored is not None and stored["firstname"] == f"F{i}"
        assert first[email].id == stored["hs_object_id"] and first[email].email == email
    assert all(not r.new for r in again.values())
    assert {k: r.id for k, r in again.items()} == {k: first[k].id for k in again}


def test_batch_read_leaves_out_unknown_emails(client: HubSpotClient, emulator: Emulator) -> None:
    emulator.seed_contacts([{"email": "a@x.io", "city": "Oslo"}, {"email": "b@x.io"}])
    found = client.batch_read_contacts_by_email(["A@x.io", "b@x.io", "ghost@x.io"], ["city"])
    assert sorted(found) == ["a@x.io", "b@x.io"]
    assert found["a@x.io"].properties["city"] == "Oslo"
    assert found["b@x.io"].properties.get("city") is None
    assert client.batch_read_contacts_by_email(["ghost@x.io"], ["city"]) == {}


def test_list_paging_returns_every_contact_once(client: HubSpotClient, emulator: Emulator) -> None:
    ids = emulator.seed_contacts({"email": f"p{i}@x.io"} for i in range(250))
    seen = [c.id for c in client.iter_contacts(["city"], page_size=100)]
    assert sorted(seen) == sorted(ids)
    assert emulator.count("contacts.list") == 3


def test_search_beyond_ten_thousand_results_partitions_by_id(
    client: HubSpotClient, emulator: Emulator
) -> None:
    cities = ["Oslo", "Bergen", "Tromso"]
    ids = emulator.seed_contacts(
        {"email": f"s{i}@x.io", "city": cities[i % 3]} for i in range(10_600)
    )
    oslo_or_bergen = [
        {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Oslo"}]},
        {"filters": [{"propertyName": "city", "operator": "EQ", "value": "Bergen"}]},
    ]
    expected = [i for n, i in enumerate(ids) if n % 3 != 2]
    found = [c.id for c in client.search_contacts([], ["city"])]
    assert found == sorted(ids, key=int)  # every contact once, ascending: beyond the 10k cap
    assert len(found) == 10_600

    some = [(c.id, c.properties["city"]) for c in client.search_contacts(oslo_or_bergen, ["city"])]
    assert [i for i, _ in some] == sorted(expected, key=int)
    assert {city for _, city in some} == {"Oslo", "Bergen"}
    assert emulator.count("contacts.search", status=400) == 0


def test_a_faulty_hubspot_still_ends_in_exactly_the_right_state() -> None:
    # seed 2: among the first 30 requests, one 5xx and one reset after the write was applied
    with Emulator(
        seed=2, fail_rate=0.05, reset_rate=0.01, window_limit=19, window_seconds=1.0
    ) as emu:
        budget = RateBudget(limit=19, window_seconds=1.0)
        with HubSpotClient(
            emu.base_url, TOKEN, budget=budget, backoff_base=0.01, backoff_cap=0.2
        ) as client:
            batches = [
                [
                    (
                        f"c{b * 100 + i}@x.io",
                        {"firstname": f"n{b}-{i}", "city": "Oslo" if i % 2 else "Rome"},
                    )
                    for i in range(100)
                ]
                for b in range(30)
            ]
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(client.batch_upsert_contacts_by_email, batches))

        assert sum(len(r) for r in results) == 3000
        contacts = {c["email"]: c for c in emu.all_contacts()}
        assert len(contacts) == 3000
        for batch in batches:
            for email, props in batch:
                assert {k: contacts[email][k] for k in props} == props
        faults = emu.count(status=0) + sum(emu.count(status=s) for s in (500, 502, 503))
        assert emu.count(status=0) >= 1 and faults >= 2 and client.stats.retries >= faults
        # The shared budget keeps four threads inside 19/s. HubSpot counts arrivals, not sends, so
        # on a loaded machine one request's delay can exceed the budget's slack: allow one 429.
        assert emu.count(status=429) <= 1


def test_headers_teach_a_wrong_tier_the_real_limit() -> None:
    with (
        Emulator(seed=2, window_limit=6, window_seconds=1.0) as emu,
        HubSpotClient(emu.base_url, TOKEN, tier="enterprise", backoff_base=0.01) as client,
    ):
        for _ in range(9):
            client.list_property_groups()
        assert (client.budget.limit, client.budget.window_seconds) == (6, 1.0)
        assert client.stats.rate_limited == emu.count(status=429) <= 1


def test_daily_limit_stops_before_sending() -> None:
    with Emulator(seed=3, daily_limit=3) as emu:
        with HubSpotClient(emu.base_url, TOKEN) as client:
            for _ in range(3):
                client.list_property_groups()
            with pytest.raises(DailyLimitError):
                client.list_property_groups()
        assert emu.count() == 3
