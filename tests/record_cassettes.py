"""Record the HubSpot client's cassettes (cassettes/hubspot/*.yaml) against a seeded local emulator.

Re-record after changing what the client sends (the replay tests match method, host, path, query
and body, not the port):

    .venv/bin/python tests/record_cassettes.py            # every scenario
    .venv/bin/python tests/record_cassettes.py e401 e409  # some of them

The Authorization header is filtered out; tests/test_cassettes.py fails if a token slipped in.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vcr

from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "hubspot"
TOKEN = "pat-local-emulator"
WRONG_TOKEN = "pat-na1-not-the-right-token"
MATCH_ON = ["method", "scheme", "host", "path", "query", "body"]


CANONICAL_URL = "http://127.0.0.1:8799"
_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _Normaliser:
    """Makes re-recording reproducible: a fixed port, timestamps and correlation ids, no Date."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._counter = itertools.count(1)

    def _uuid(self, match: re.Match[str]) -> str:
        if match.group(0) not in self._ids:
            self._ids[match.group(0)] = f"00000000-0000-4000-8000-{next(self._counter):012d}"
        return self._ids[match.group(0)]

    def text(self, text: str) -> str:
        text = _URL.sub(CANONICAL_URL, text)
        text = _TIMESTAMP.sub("2026-01-01T00:00:00.000Z", text)
        return _UUID.sub(self._uuid, text)

    def request(self, request: Any) -> Any:
        request.uri = _URL.sub(CANONICAL_URL, request.uri)
        return request

    def response(self, response: dict[str, Any]) -> dict[str, Any]:
        body = self.text(response["body"]["string"].decode()).encode()
        response["body"]["string"] = body
        headers = {
            k: [self.text(v) for v in values]
            for k, values in response["headers"].items()
            if k.lower() not in ("date", "server")
        }
        headers["Content-Length"] = [str(len(body))]
        response["headers"] = headers
        return response


def cassette_vcr(record_mode: str) -> vcr.VCR:
    normaliser = _Normaliser()
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=MATCH_ON,
        filter_headers=["authorization"],
        decode_compressed_response=True,
        before_record_request=normaliser.request,
        before_record_response=normaliser.response,
    )


@dataclass(frozen=True)
class Scenario:
    """One cassette: the emulator it is recorded against and the client calls it holds."""

    run: Callable[[HubSpotClient], Any]
    emulator: dict[str, Any] = field(default_factory=dict)
    token: str = TOKEN
    prepare: Callable[[Any], None] | None = None  # gets the Emulator before recording


def _properties(client: HubSpotClient) -> Any:
    group = client.create_property_group(PropertyGroup("syncdsl", "syncdsl audiences"))
    created = client.create_property(
        PropertySchema(
            "aud_vip",
            "VIP",
            "enumeration",
            "select",
            group_name="syncdsl",
            options=(PropertyOption("Realized", "realized"),),
        )
    )
    patched = client.update_property(
        "aud_vip",
        label="VIP audience",
        options=(PropertyOption("Realized", "realized"), PropertyOption("Exited", "exited", 1)),
    )
    batch = client.batch_create_properties(
        [
            PropertySchema("aud_score", "Score", "number", "number", group_name="syncdsl"),
            PropertySchema("aud_since", "Since", "date", "date", group_name="syncdsl"),
        ]
    )
    return {
        "group": group,
        "created": created,
        "patched": patched,
        "batch": batch,
        "got": client.get_property("aud_score"),
        "groups": client.list_property_groups(),
        "all": client.list_properties(),
    }


def _contacts(client: HubSpotClient) -> Any:
    upserted = client.batch_upsert_contacts_by_email(
        [
            ("Ada@Example.com", {"firstname": "Ada", "city": "London"}),
            ("bob@example.com", {"firstname": "Bob"}),
            ("cy@example.com", {"lastname": "Young"}),
        ]
    )
    again = client.batch_upsert_contacts_by_email([("ada@example.com", {"city": "Paris"})])
    listed = list(client.iter_contacts(["firstname", "city"], page_size=2))
    found = list(
        client.search_contacts(
            [{"filters": [{"propertyName": "firstname", "operator": "HAS_PROPERTY"}]}],
            ["firstname"],
        )
    )
    return {"upserted": upserted, "again": again, "listed": listed, "found": found}


def _batch_read_207(client: HubSpotClient) -> Any:
    client.batch_upsert_contacts_by_email([("ada@example.com", {"firstname": "Ada"})])
    return client.batch_read_contacts_by_email(
        ["ADA@example.com", "ghost@example.com"], ["firstname"]
    )


def _invalid_email(client: HubSpotClient) -> Any:
    return client.batch_upsert_contacts_by_email([("ok@example.com", {}), ("not-an-email@", {})])


def _conflict(client: HubSpotClient) -> Any:
    prop = PropertySchema("aud_dup", "Dup", "string", "text", group_name="contactinformation")
    client.create_property(prop)
    return client.create_property(prop)


def _rate_limited(client: HubSpotClient) -> Any:
    return [client.list_property_groups() for _ in range(2)]


SCENARIOS: dict[str, Scenario] = {
    "properties": Scenario(_properties),
    "contacts": Scenario(_contacts),
    "batch_read_207": Scenario(_batch_read_207),
    "e400_invalid_email": Scenario(_invalid_email),
    "e401": Scenario(lambda c: c.list_properties(), token=WRONG_TOKEN),
    "e403": Scenario(
        lambda c: c.batch_upsert_contacts_by_email([("a@example.com", {})]),
        emulator={"scopes": ["crm.objects.contacts.read", "crm.schemas.contacts.read"]},
    ),
    "e409": Scenario(_conflict),
    # The emulator's 1-per-second window is already used up: one 429, a wait, then the retry.
    "e429": Scenario(
        _rate_limited,
        emulator={"window_limit": 1, "window_seconds": 1.0},
        prepare=lambda emulator: emulator.limiter.admit(search=False),
    ),
}


def record(names: list[str]) -> None:
    from syncdsl.emulator import Emulator

    CASSETTES.mkdir(parents=True, exist_ok=True)
    for name in names:
        scenario = SCENARIOS[name]
        path = CASSETTES / f"{name}.yaml"
        path.unlink(missing_ok=True)
        with Emulator(seed=1234, **scenario.emulator) as emulator:
            if scenario.prepare is not None:
                scenario.prepare(emulator)
            client = HubSpotClient(
                emulator.base_url, scenario.token, max_retries=2, api_version="v3"
            )
            with cassette_vcr("once").use_cassette(path.name):
                try:
                    scenario.run(client)
                except Exception as exc:  # noqa: BLE001 - error scenarios end in the error they record
                    print(f"{name}: {type(exc).__name__}: {exc}")
            client.close()
        print(f"recorded {path.relative_to(CASSETTES.parent.parent)} ({path.stat().st_size} bytes)")


def replay_client(
    name: str, sleep: Callable[[float], None], clock: Callable[[], float]
) -> HubSpotClient:
    """A client for replaying `name`: the host matches the recording; the port is never checked."""
    scenario = SCENARIOS[name]
    budget = RateBudget.for_tier("free", clock=clock, sleep=sleep)
    return HubSpotClient(
        "http://127.0.0.1:9",
        scenario.token,
        budget=budget,
        sleep=sleep,
        max_retries=2,
        api_version="v3",  # the cassettes were recorded on v3 paths
    )


if __name__ == "__main__":
    record(sys.argv[1:] or list(SCENARIOS))
