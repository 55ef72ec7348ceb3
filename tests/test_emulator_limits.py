"""The emulator's rate limits, fault injection, persistence, properties API and CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from syncdsl.cli import app
from syncdsl.emulator import Emulator
from syncdsl.errors import StateError

TOKEN = "pat-test-token"
PROPERTIES = "/crm/v3/properties/contacts"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
SEARCH = "/crm/v3/objects/contacts/search"


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        yield http


def get(session: requests.Session, emulator: Emulator, path: str) -> requests.Response:
    return session.get(emulator.base_url + path)


def post(session: requests.Session, emulator: Emulator, path: str, body: Any) -> requests.Response:
    return session.post(emulator.base_url + path, json=body)


# --- rate limits ---------------------------------------------------------------------------


def test_rolling_window_429_body_and_headers(session: requests.Session) -> None:
    with Emulator(token=TOKEN, window_seconds=0.5, window_limit=5, daily_limit=1000) as emulator:
        answers = [get(session, emulator, PROPERTIES) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    first, limited = answers[0], answers[-1]
    assert first.headers["X-HubSpot-RateLimit-Max"] == "5"
    assert first.headers["X-HubSpot-RateLimit-Remaining"] == "4"
    assert first.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "500"
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "1000"
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "999"
    assert answers[4].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    body = limited.json()
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert limited.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert "Retry-After" not in limited.headers
    assert limited.headers["X-HubSpot-Correlation-Id"] == body["correlationId"]


def test_window_frees_up_as_it_rolls(session: requests.Session) -> None:
    clock = {"now": 100.0}
    emulator = Emulator(token=TOKEN, window_seconds=10, window_limit=2)
    emulator.limiter._clock = lambda: clock["now"]  # a fake clock instead of sleeping
    with emulator:
        assert [get(session, emulator, PROPERTIES).status_code for _ in range(3)] == [200, 200, 429]
        clock["now"] += 10.01
        assert get(session, emulator, PROPERTIES).status_code == 200


def test_daily_limit_429(session: requests.Session) -> None:
    with Emulator(token=TOKEN, daily_limit=3) as emulator:
        codes = [get(session, emulator, PROPERTIES).status_code for _ in range(3)]
        limited = get(session, emulator, PROPERTIES)
        search = post(session, emulator, SEARCH, {})
    assert codes == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["policyName"] == "DAILY"
    assert limited.json()["message"] == "You have reached your daily limit."
    assert limited.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert search.status_code == 429 and search.json()["policyName"] == "DAILY"


def test_search_has_its_own_secondly_limit_and_no_headers(session: requests.Session) -> None:
    with Emulator(token=TOKEN, window_limit=2, search_per_second=3) as emulator:
        searches = [post(session, emulator, SEARCH, {}) for _ in range(4)]
        others = [get(session, emulator, PROPERTIES).status_code for _ in range(2)]
    assert [s.status_code for s in searches] == [200, 200, 200, 429]
    assert others == [200, 200]  # search is exempt from the rolling window
    body = searches[-1].json()
    assert body == {
        "status": "error",
        "message": "You have reached your secondly limit.",
        "correlationId": body["correlationId"],
        "category": "RATE_LIMITS",
    }
    assert not [h for h in searches[0].headers if h.lower().startswith("x-hubspot-ratelimit")]
    assert "X-HubSpot-Correlation-Id" in searches[0].headers


def test_rate_limits_off_and_reset_counters(session: requests.Session) -> None:
    with Emulator(token=TOKEN, window_limit=1, rate_limits=False) as emulator:
        answers = [get(session, emulator, PROPERTIES) for _ in range(5)]
        assert {a.status_code for a in answers} == {200}
        assert answers[-1].headers["X-HubSpot-RateLimit-Remaining"] == "1"  # never runs down
        assert emulator.count("properties.list") == 5
        emulator.reset_counters()
        assert emulator.count() == 0


# --- faults --------------------------------------------------------------------------------


def _fault_run(seed: int) -> list[int]:
    with Emulator(token=TOKEN, fail_rate=0.3, reset_rate=0.2, seed=seed, rate_limits=False) as em:
        for index in range(40):
            try:
                with requests.Session() as http:  # a fresh connection after any reset
                    http.headers["Authorization"] = f"Bearer {TOKEN}"
                    post(
                        http,
                        em,
                        UPSERT,
                        {
                            "inputs": [
                                {
                                    "id": f"f{index}@example.com",
                                    "idProperty": "email",
                                    "properties": {},
                                }
                            ]
                        },
                    )
            except requests.ConnectionError:
                pass
        return [record.status for record in em.requests]


def test_faults_are_repeatable_with_a_seed() -> None:
    first, second = _fault_run(3), _fault_run(3)
    assert first == second
    assert {500, 502, 503} & set(first) and 0 in first and 200 in first
    assert first != _fault_run(4)


def test_server_errors_do_not_apply_and_resets_sometimes_do() -> None:
    with Emulator(token=TOKEN, fail_rate=0.5, reset_rate=0.5, seed=11, rate_limits=False) as em:
        outcomes = []
        for index in range(30):
            email = f"r{index}@example.com"
            try:
                with requests.Session() as http:
                    http.headers["Authorization"] = f"Bearer {TOKEN}"
                    status = post(
                        http,
                        em,
                        UPSERT,
                        {"inputs": [{"id": email, "idProperty": "email", "properties": {}}]},
                    ).status_code
            except requests.ConnectionError:
                status = 0
            outcomes.append((status, em.contact_by_email(email) is not None))
    assert all(not applied for status, applied in outcomes if status >= 500)
    applied_on_reset = {applied for status, applied in outcomes if status == 0}
    assert applied_on_reset == {True, False}


def test_faults_skip_unauthenticated_requests() -> None:
    with Emulator(token=TOKEN, fail_rate=1.0, seed=1) as emulator:
        assert requests.get(emulator.base_url + PROPERTIES).status_code == 401


# --- persistence ---------------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path, session: requests.Session) -> None:
    state = tmp_path / "portal.json"
    with Emulator(token=TOKEN, state_file=state) as emulator:
        post(
            session,
            emulator,
            PROPERTIES,
            {
                "name": "vip",
                "label": "VIP",
                "type": "enumeration",
                "fieldType": "select",
                "groupName": "contactinformation",
                "options": [{"label": "Yes", "value": "yes", "hidden": False}],
            },
        )
        post(
            session,
            emulator,
            UPSERT,
            {
                "inputs": [
                    {"id": "keep@example.com", "idProperty": "email", "properties": {"vip": "yes"}}
                ]
            },
        )
    assert json.loads(state.read_text())["version"] == 1
    with Emulator(token=TOKEN, state_file=state) as again:
        contact = again.contact_by_email("keep@example.com")
        created = again.seed_contacts([{"email": "next@example.com"}])
        assert again.get_property("vip") is not None
    assert contact is not None and contact["vip"] == "yes"
    assert created == [str(int(contact["hs_object_id"]) + 1)]
    assert not list(tmp_path.glob(".portal.json.*"))  # no temporary files left behind


# --- properties and groups -----------------------------------------------------------------


def _definition(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "favorite_food",
        "label": "Favorite Food",
        "type": "string",
        "fieldType": "text",
        "groupName": "contactinformation",
    } | overrides


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, rate_limits=False) as running:
        yield running


def test_standard_properties_are_seeded(emulator: Emulator, session: requests.Session) -> None:
    names = {p["name"] for p in get(session, emulator, PROPERTIES).json()["results"]}
    assert {
        "email",
        "firstname",
        "lastname",
        "phone",
        "mobilephone",
        "company",
        "city",
        "state",
        "country",
        "zip",
        "jobtitle",
        "website",
        "lifecyclestage",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
        "hs_email_domain",
    } <= names
    stage = get(session, emulator, PROPERTIES + "/lifecyclestage").json()
    assert [o["value"] for o in stage["options"]][:3] == [
        "subscriber",
        "lead",
        "marketingqualifiedlead",
    ]
    groups = get(session, emulator, PROPERTIES + "/groups").json()["results"]
    assert "contactinformation" in {g["name"] for g in groups}


def test_create_property_then_409(emulator: Emulator, session: requests.Session) -> None:
    created = post(session, emulator, PROPERTIES, _definition())
    assert created.status_code == 201
    assert created.headers["Location"].endswith("/crm/v3/properties/contacts/favorite_food")
    assert created.json()["hubspotDefined"] is False
    again = post(session, emulator, PROPERTIES, _definition())
    assert again.status_code == 409
    assert get(session, emulator, PROPERTIES + "/nope").status_code == 404


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "Favorite"},
        {"name": "9lives"},
        {"name": "a-b"},
        {"name": "x" * 101},
        {"type": "string", "fieldType": "number"},
        {"type": "date", "fieldType": "text"},
        {"type": "enumeration", "fieldType": "select"},
        {"groupName": "no_such_group"},
        {"label": ""},
    ],
)
def test_invalid_property_definitions_are_400(
    emulator: Emulator, session: requests.Session, overrides: dict[str, Any]
) -> None:
    response = post(session, emulator, PROPERTIES, _definition(**overrides))
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_batch_create_properties_207_for_failures(
    emulator: Emulator, session: requests.Session
) -> None:
    body = {"inputs": [_definition(name="one"), _definition(name="email"), _definition(name="B")]}
    response = post(session, emulator, PROPERTIES + "/batch/create", body)
    assert response.status_code == 207
    payload = response.json()
    assert [r["name"] for r in payload["results"]] == ["one"]
    assert {e["category"] for e in payload["errors"]} == {
        "OBJECT_ALREADY_EXISTS",
        "VALIDATION_ERROR",
    }


def test_patch_property_and_read_only_definitions(
    emulator: Emulator, session: requests.Session
) -> None:
    post(
        session,
        emulator,
        PROPERTIES,
        _definition(
            type="enumeration",
            fieldType="select",
            options=[{"label": "A", "value": "a", "hidden": False}],
        ),
    )
    patched = session.patch(
        emulator.base_url + PROPERTIES + "/favorite_food",
        json={
            "label": "Food",
            "options": [
                {"label": "A", "value": "a", "hidden": False},
                {"label": "B", "value": "b", "hidden": False},
            ],
        },
    )
    assert patched.status_code == 200
    assert [o["value"] for o in patched.json()["options"]] == ["a", "b"]
    assert emulator.get_property("favorite_food")["label"] == "Food"  # type: ignore[index]
    hubspot_defined = session.patch(
        emulator.base_url + PROPERTIES + "/firstname", json={"label": "Given name"}
    )
    assert hubspot_defined.status_code == 400


def test_groups_create_and_conflict(emulator: Emulator, session: requests.Session) -> None:
    group = {"name": "syncdsl_audiences", "label": "syncdsl audiences", "displayOrder": -1}
    created = post(session, emulator, PROPERTIES + "/groups", group)
    assert created.status_code == 201
    assert created.json() == group | {"archived": False}
    assert post(session, emulator, PROPERTIES + "/groups", group).status_code == 409
    assert emulator.count("groups.create", status=201) == 1


def test_direct_access_edits(emulator: Emulator) -> None:
    emulator.seed_contacts([{"email": "e@example.com", "firstname": "E"}])
    emulator.set_contact_property("E@example.com", "firstname", None)
    emulator.set_contact_property("e@example.com", "lifecyclestage", "customer")
    contact = emulator.contact_by_email("e@example.com")
    assert contact is not None and "firstname" not in contact
    assert contact["lifecyclestage"] == "customer"
    with pytest.raises(ValueError):
        emulator.set_contact_property("e@example.com", "lifecyclestage", "champion")
    emulator.delete_contact("e@example.com")
    assert emulator.all_contacts() == []
    emulator.delete_property("jobtitle")
    assert emulator.get_property("jobtitle") is None


# --- CLI -----------------------------------------------------------------------------------


def test_cli_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["emulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--token",
        "--tier",
        "--fail-rate",
        "--reset-rate",
        "--state",
        "--window-seconds",
        "--window-limit",
        "--latency",
        "--seed",
        "--scopes",
    ):
        assert option in result.output


def test_cli_rejects_an_unknown_tier() -> None:
    result = CliRunner().invoke(app, ["emulator", "--tier", "platinum"])
    assert result.exit_code == 1
    assert "unknown tier 'platinum'" in result.output


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "portal.json"
    state.write_text("{not json", encoding="utf-8")
    with pytest.raises(StateError, match="Fix or delete the file"):
        Emulator(state_file=state)
