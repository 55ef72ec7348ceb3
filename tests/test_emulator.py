"""The emulator's contacts API over HTTP: auth, upsert, batch read/create/update, values, search."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from syncdsl.emulator import Emulator

TOKEN = "pat-test-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
READ = "/crm/v3/objects/contacts/batch/read"
CREATE = "/crm/v3/objects/contacts/batch/create"
UPDATE = "/crm/v3/objects/contacts/batch/update"
SEARCH = "/crm/v3/objects/contacts/search"


@pytest.fixture()
def emulator() -> Iterator[Emulator]:
    with Emulator(token=TOKEN, seed=7, rate_limits=False) as running:
        yield running


@pytest.fixture()
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        yield http


def call(
    session: requests.Session,
    emulator: Emulator,
    method: str,
    path: str,
    body: Any = None,
    **params: Any,
) -> requests.Response:
    return session.request(method, emulator.base_url + path, json=body, params=params or None)


def upsert_inputs(emails: list[str], **properties: str) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "id": e,
                "idProperty": "email",
                "objectWriteTraceId": e,
                "properties": dict(properties),
            }
            for e in emails
        ]
    }


# --- auth and scopes ---------------------------------------------------------------------


def test_missing_token_is_401_with_hubspot_body(emulator: Emulator) -> None:
    response = requests.get(emulator.base_url + "/crm/v3/properties/contacts")
    assert response.status_code == 401
    assert response.headers["x-hubspot-auth-failure"] == "401 Unauthorized"
    body = response.json()
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["status"] == "error"
    assert body["correlationId"] == response.headers["X-HubSpot-Correlation-Id"]


def test_wrong_token_is_401(emulator: Emulator) -> None:
    response = requests.get(
        emulator.base_url + "/crm/v3/objects/contacts",
        headers={"Authorization": "Bearer pat-wrong"},
    )
    assert response.status_code == 401
    assert response.json()["category"] == "INVALID_AUTHENTICATION"
    assert emulator.count("contacts.list", status=401) == 1


def test_missing_scope_is_403_naming_required_scopes(session: requests.Session) -> None:
    with Emulator(token=TOKEN, scopes=["crm.objects.contacts.read"]) as limited:
        response = call(
            session,
            limited,
            "POST",
            "/crm/v3/properties/contacts",
            {
                "name": "x",
                "label": "X",
                "type": "string",
                "fieldType": "text",
                "groupName": "contactinformation",
            },
        )
        reading = call(session, limited, "GET", "/crm/v3/properties/contacts")
    assert response.status_code == 403
    body = response.json()
    assert body["category"] == "MISSING_SCOPES"
    assert body["errors"][0]["context"]["requiredGranularScopes"] == ["crm.schemas.contacts.write"]
    assert reading.status_code == 200  # contacts.read is enough to read property definitions


def test_malformed_json_is_400(emulator: Emulator, session: requests.Session) -> None:
    response = session.post(
        emulator.base_url + UPSERT, data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


# --- batch upsert --------------------------------------------------------------------------


def test_upsert_creates_then_updates_with_new_flag(
    emulator: Emulator, session: requests.Session
) -> None:
    first = call(
        session, emulator, "POST", UPSERT, upsert_inputs(["Ann@Example.com"], firstname="Ann")
    )
    assert first.status_code == 200
    [created] = first.json()["results"]
    assert created["new"] is True
    assert created["properties"]["email"] == "ann@example.com"

    second = call(
        session,
        emulator,
        "POST",
        UPSERT,
        upsert_inputs(["ann@example.com", "bob@example.com"], lastname="Smith"),
    )
    # Write replies echo only what was written: the update carries no email, only its trace id.
    by_email = {r["objectWriteTraceId"]: r for r in second.json()["results"]}
    assert "email" not in by_email["ann@example.com"]["properties"]
    assert by_email["bob@example.com"]["properties"]["email"] == "bob@example.com"
    assert by_email["ann@example.com"]["new"] is False
    assert by_email["ann@example.com"]["id"] == created["id"]
    assert by_email["bob@example.com"]["new"] is True
    stored = emulator.contact_by_email("ANN@example.com")
    assert stored is not None
    assert (stored["firstname"], stored["lastname"]) == ("Ann", "Smith")
    assert stored["hs_email_domain"] == "example.com"


def test_upsert_results_are_shuffled(emulator: Emulator, session: requests.Session) -> None:
    emails = [f"user{i:02d}@example.com" for i in range(30)]
    response = call(session, emulator, "POST", UPSERT, upsert_inputs(emails, firstname="U"))
    returned = [r["properties"]["email"] for r in response.json()["results"]]
    assert sorted(returned) == emails
    assert returned != emails


def test_one_invalid_email_fails_the_whole_upsert(
    emulator: Emulator, session: requests.Session
) -> None:
    emails = ["good@example.com", "harsh@gmail.con", "also good@example.com"]
    response = call(session, emulator, "POST", UPSERT, upsert_inputs(emails, firstname="X"))
    assert response.status_code == 400
    body = response.json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert "Email address harsh@gmail.con is invalid" in body["message"]
    codes = {(e["code"], e["context"]["id"][0]) for e in body["errors"]}
    assert codes == {
        ("INVALID_EMAIL", "harsh@gmail.con"),
        ("INVALID_EMAIL", "also good@example.com"),
    }
    assert emulator.all_contacts() == []


@pytest.mark.parametrize(
    "email",
    [
        "plain",
        "a@b",
        "a@@b.com",
        "a b@c.com",
        "a@-x.com",
        "a@x.c",
        "a@x.c0m",
        ".a@x.com",
        "a..b@x.com",
        "a@x..com",
        "x" * 65 + "@x.com",
        "a@" + "x" * 250 + ".com",
        "a\t@x.com",
    ],
)
def test_email_validation_is_strict(
    emulator: Emulator, session: requests.Session, email: str
) -> None:
    response = call(session, emulator, "POST", UPSERT, upsert_inputs([email]))
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_EMAIL"


def test_more_than_100_inputs_is_400(emulator: Emulator, session: requests.Session) -> None:
    emails = [f"u{i}@example.com" for i in range(101)]
    response = call(session, emulator, "POST", UPSERT, upsert_inputs(emails))
    assert response.status_code == 400
    assert "at most 100" in response.json()["message"]
    assert call(session, emulator, "POST", UPSERT, upsert_inputs(emails[:100])).status_code == 200


def test_same_email_twice_in_one_batch_is_400(
    emulator: Emulator, session: requests.Session
) -> None:
    response = call(
        session, emulator, "POST", UPSERT, upsert_inputs(["dup@example.com", "DUP@example.com"])
    )
    assert response.status_code == 400
    assert response.json()["context"]["ids"] == ["dup@example.com"]
    assert emulator.all_contacts() == []


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"no_such_property": "x"}, "PROPERTY_DOESNT_EXIST"),
        ({"lifecyclestage": "champion"}, "INVALID_OPTION"),
        ({"hs_object_id": "5"}, "READ_ONLY_VALUE"),
        ({"createdate": "2024-01-01"}, "READ_ONLY_VALUE"),
    ],
)
def test_bad_values_fail_the_batch(
    emulator: Emulator, session: requests.Session, properties: dict[str, str], code: str
) -> None:
    body = {
        "inputs": [
            {"id": "a@example.com", "idProperty": "email", "properties": {}},
            {"id": "b@example.com", "idProperty": "email", "properties": properties},
        ]
    }
    response = call(session, emulator, "POST", UPSERT, body)
    assert response.status_code == 400
    [detail] = response.json()["errors"]
    assert detail["code"] == code
    assert detail["context"]["id"] == ["b@example.com"]
    assert emulator.all_contacts() == []


def _typed_property(emulator: Emulator, name: str, type_: str, field_type: str) -> None:
    emulator.create_property(
        {
            "name": name,
            "label": name,
            "type": type_,
            "fieldType": field_type,
            "groupName": "contactinformation",
        }
    )


@pytest.mark.parametrize(
    ("type_", "field_type", "value", "code", "stored"),
    [
        ("date", "date", "1700000000000", "INVALID_DATE", None),
        ("date", "date", "2024-02-30", "INVALID_DATE", None),
        ("date", "date", "1704067200000", None, "2024-01-01"),
        ("date", "date", "2024-01-01", None, "2024-01-01"),
        ("datetime", "date", "1704067200123", None, "2024-01-01T00:00:00.123Z"),
        ("datetime", "date", "yesterday", "INVALID_DATE", None),
        ("number", "number", "12.5", None, "12.5"),
        ("number", "number", "twelve", "INVALID_INTEGER", None),
        ("bool", "booleancheckbox", "true", None, "true"),
        ("bool", "booleancheckbox", "yes", "INVALID_BOOLEAN", None),
    ],
)
def test_values_are_checked_against_the_property_type(
    emulator: Emulator,
    session: requests.Session,
    type_: str,
    field_type: str,
    value: str,
    code: str | None,
    stored: str | None,
) -> None:
    _typed_property(emulator, "typed_value", type_, field_type)
    response = call(
        session, emulator, "POST", UPSERT, upsert_inputs(["t@example.com"], typed_value=value)
    )
    if code is None:
        assert response.status_code == 200
        contact = emulator.contact_by_email("t@example.com")
        assert contact is not None and contact["typed_value"] == stored
    else:
        assert response.status_code == 400
        assert response.json()["errors"][0]["code"] == code


def test_empty_string_clears_a_value(emulator: Emulator, session: requests.Session) -> None:
    emulator.seed_contacts([{"email": "c@example.com", "firstname": "C", "city": "Oslo"}])
    call(session, emulator, "POST", UPSERT, upsert_inputs(["c@example.com"], city=""))
    contact = emulator.contact_by_email("c@example.com")
    assert contact is not None and "city" not in contact and contact["firstname"] == "C"


def test_multi_checkbox_leading_semicolon_appends(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.create_property(
        {
            "name": "tags",
            "label": "Tags",
            "type": "enumeration",
            "fieldType": "checkbox",
            "groupName": "contactinformation",
            "options": [{"label": v, "value": v, "hidden": False} for v in ("a", "b", "c")],
        }
    )
    emulator.seed_contacts([{"email": "m@example.com", "tags": "a"}])
    call(session, emulator, "POST", UPSERT, upsert_inputs(["m@example.com"], tags=";b;c"))
    assert emulator.contact_by_email("m@example.com")["tags"] == "a;b;c"  # type: ignore[index]
    call(session, emulator, "POST", UPSERT, upsert_inputs(["m@example.com"], tags="c"))
    assert emulator.contact_by_email("m@example.com")["tags"] == "c"  # type: ignore[index]


# --- batch read / create / update, list, get ---------------------------------------------


def test_batch_read_207_lists_missing_emails_in_one_error(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.seed_contacts([{"email": "here@example.com", "firstname": "H"}])
    body = {
        "idProperty": "email",
        "properties": ["firstname", "lastname"],
        "inputs": [
            {"id": "HERE@example.com"},
            {"id": "gone1@example.com"},
            {"id": "gone2@example.com"},
        ],
    }
    response = call(session, emulator, "POST", READ, body)
    assert response.status_code == 207
    payload = response.json()
    [found] = payload["results"]
    assert found["properties"]["firstname"] == "H"
    assert "lastname" not in found["properties"]  # requested but empty: left out
    assert payload["numErrors"] == 1
    [problem] = payload["errors"]
    assert problem["category"] == "OBJECT_NOT_FOUND"
    assert problem["context"]["ids"] == ["gone1@example.com", "gone2@example.com"]


def test_batch_read_all_found_is_200(emulator: Emulator, session: requests.Session) -> None:
    [contact_id] = emulator.seed_contacts([{"email": "r@example.com"}])
    response = call(
        session, emulator, "POST", READ, {"inputs": [{"id": contact_id}], "properties": ["email"]}
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["properties"] == {"email": "r@example.com"}


def test_batch_create_with_existing_email_is_409_for_the_whole_batch(
    emulator: Emulator, session: requests.Session
) -> None:
    [existing] = emulator.seed_contacts([{"email": "taken@example.com"}])
    body = {
        "inputs": [
            {"properties": {"email": "fresh@example.com"}},
            {"properties": {"email": "Taken@example.com"}},
        ]
    }
    response = call(session, emulator, "POST", CREATE, body)
    assert response.status_code == 409
    assert response.json()["category"] == "CONFLICT"
    assert response.json()["message"] == f"Contact already exists. Existing ID: {existing}"
    assert emulator.contact_by_email("fresh@example.com") is None
    created = call(
        session,
        emulator,
        "POST",
        CREATE,
        {"inputs": [{"properties": {"email": "fresh@example.com"}}]},
    )
    assert created.status_code == 201


def test_batch_update_by_id_and_missing_ids(emulator: Emulator, session: requests.Session) -> None:
    [contact_id] = emulator.seed_contacts([{"email": "u@example.com"}])
    body = {
        "inputs": [
            {"id": contact_id, "properties": {"jobtitle": "CTO"}},
            {"id": "999999", "properties": {"jobtitle": "CEO"}},
        ]
    }
    response = call(session, emulator, "POST", UPDATE, body)
    assert response.status_code == 207
    assert response.json()["errors"][0]["context"]["ids"] == ["999999"]
    assert emulator.contact_by_email("u@example.com")["jobtitle"] == "CTO"  # type: ignore[index]


def test_list_pages_by_limit_and_after(emulator: Emulator, session: requests.Session) -> None:
    emulator.seed_contacts([{"email": f"p{i}@example.com"} for i in range(25)])
    seen: list[str] = []
    after = None
    while True:
        params = {"limit": 10, "properties": "email"} | ({"after": after} if after else {})
        page = call(session, emulator, "GET", "/crm/v3/objects/contacts", **params).json()
        seen += [r["properties"]["email"] for r in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            break
    assert sorted(seen) == sorted(f"p{i}@example.com" for i in range(25))
    assert len(seen) == 25
    too_big = call(session, emulator, "GET", "/crm/v3/objects/contacts", limit=101)
    assert too_big.status_code == 400


def test_get_by_id_and_by_email(emulator: Emulator, session: requests.Session) -> None:
    [contact_id] = emulator.seed_contacts([{"email": "g@example.com", "firstname": "G"}])
    by_id = call(session, emulator, "GET", f"/crm/v3/objects/contacts/{contact_id}")
    assert by_id.json()["properties"]["firstname"] == "G"
    by_email = call(
        session,
        emulator,
        "GET",
        "/crm/v3/objects/contacts/G@example.com",
        idProperty="email",
        properties="email",
    )
    assert by_email.json()["id"] == contact_id
    missing = call(session, emulator, "GET", "/crm/v3/objects/contacts/424242")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND"


def test_date_versioned_paths_work(emulator: Emulator, session: requests.Session) -> None:
    response = call(
        session,
        emulator,
        "POST",
        "/crm/objects/2026-03/contacts/batch/upsert",
        upsert_inputs(["v@example.com"]),
    )
    assert response.status_code == 200
    assert (
        call(session, emulator, "GET", "/crm/properties/2026-03/contacts/email").status_code == 200
    )


# --- search --------------------------------------------------------------------------------


@pytest.fixture()
def people(emulator: Emulator) -> list[str]:
    return emulator.seed_contacts(
        [
            {"email": "a@example.com", "firstname": "Ann", "lifecyclestage": "lead"},
            {"email": "b@example.com", "firstname": "Bob", "lifecyclestage": "customer"},
            {"email": "c@example.com", "lifecyclestage": "lead"},
            {"email": "d@example.com", "firstname": "dan"},
        ]
    )


def search_emails(
    session: requests.Session, emulator: Emulator, *filters: dict[str, Any], **extra: Any
) -> list[str]:
    body = {
        "filterGroups": [{"filters": list(filters)}] if filters else [],
        "properties": ["email"],
        "limit": 100,
        **extra,
    }
    response = call(session, emulator, "POST", SEARCH, body)
    assert response.status_code == 200, response.text
    return [r["properties"]["email"] for r in response.json()["results"]]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"}, "ac"),
        ({"propertyName": "email", "operator": "EQ", "value": "B@EXAMPLE.COM"}, "b"),
        ({"propertyName": "lifecyclestage", "operator": "NEQ", "value": "lead"}, "bd"),
        ({"propertyName": "firstname", "operator": "IN", "values": ["ann", "DAN"]}, "ad"),
        ({"propertyName": "firstname", "operator": "NOT_IN", "values": ["ann"]}, "bcd"),
        ({"propertyName": "firstname", "operator": "HAS_PROPERTY"}, "abd"),
        ({"propertyName": "firstname", "operator": "NOT_HAS_PROPERTY"}, "c"),
        ({"propertyName": "hs_object_id", "operator": "GT", "value": "2"}, "cd"),
        ({"propertyName": "hs_object_id", "operator": "GTE", "value": "2"}, "bcd"),
        ({"propertyName": "hs_object_id", "operator": "LT", "value": "2"}, "a"),
        ({"propertyName": "hs_object_id", "operator": "LTE", "value": "2"}, "ab"),
    ],
)
def test_search_operators(
    emulator: Emulator,
    session: requests.Session,
    people: list[str],
    filter_: dict[str, Any],
    expected: str,
) -> None:
    assert people == ["1", "2", "3", "4"]
    assert search_emails(session, emulator, filter_) == [f"{x}@example.com" for x in expected]


def test_search_numeric_compare_is_not_lexical(
    emulator: Emulator, session: requests.Session
) -> None:
    emulator.seed_contacts([{"email": f"n{i}@example.com"} for i in range(12)])
    found = search_emails(
        session, emulator, {"propertyName": "hs_object_id", "operator": "GT", "value": "9"}
    )
    assert found == ["n9@example.com", "n10@example.com", "n11@example.com"]


def test_search_groups_are_or_and_sorts_apply(
    emulator: Emulator, session: requests.Session, people: list[str]
) -> None:
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Bob"}]},
            {
                "filters": [
                    {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"},
                    {"propertyName": "firstname", "operator": "HAS_PROPERTY"},
                ]
            },
        ],
        "sorts": [{"propertyName": "email", "direction": "DESCENDING"}],
        "properties": ["email"],
    }
    results = call(session, emulator, "POST", SEARCH, body).json()["results"]
    assert [r["properties"]["email"] for r in results] == ["b@example.com", "a@example.com"]


def test_search_paging_total_and_limits(emulator: Emulator, session: requests.Session) -> None:
    emulator.seed_contacts([{"email": f"s{i}@example.com"} for i in range(5)])
    first = call(session, emulator, "POST", SEARCH, {"limit": 2}).json()
    assert first["total"] == 5 and len(first["results"]) == 2
    assert first["paging"]["next"]["after"] == "2"
    last = call(session, emulator, "POST", SEARCH, {"limit": 2, "after": "4"}).json()
    assert len(last["results"]) == 1 and "paging" not in last
    assert call(session, emulator, "POST", SEARCH, {"limit": 201}).status_code == 400
    assert call(session, emulator, "POST", SEARCH, {"limit": 200}).status_code == 200
    assert call(session, emulator, "POST", SEARCH, {"after": "abc"}).status_code == 400


def test_search_caps_paging_at_10000(emulator: Emulator, session: requests.Session) -> None:
    emulator.seed_contacts([{"email": f"big{i}@example.com"} for i in range(10_050)])
    page = call(session, emulator, "POST", SEARCH, {"limit": 200, "after": "9800"}).json()
    assert page["total"] == 10_050
    assert page["paging"]["next"]["after"] == "10000"
    beyond = call(session, emulator, "POST", SEARCH, {"limit": 200, "after": "10000"})
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"
    partition = search_emails(
        session, emulator, {"propertyName": "hs_object_id", "operator": "GT", "value": "10000"}
    )
    assert len(partition) == 50


def test_search_rejects_unknown_property_and_too_many_sorts(
    emulator: Emulator, session: requests.Session
) -> None:
    unknown = {
        "filterGroups": [{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "x"}]}]
    }
    assert call(session, emulator, "POST", SEARCH, unknown).status_code == 400
    two_sorts = {
        "sorts": [
            {"propertyName": "email", "direction": "ASCENDING"},
            {"propertyName": "firstname", "direction": "ASCENDING"},
        ]
    }
    assert call(session, emulator, "POST", SEARCH, two_sorts).status_code == 400


def test_search_id_ranges_combine_with_other_filters_and_groups(
    emulator: Emulator, session: requests.Session, people: list[str]
) -> None:
    body = {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "hs_object_id", "operator": "GTE", "value": "2"},
                    {"propertyName": "hs_object_id", "operator": "LT", "value": "4"},
                    {"propertyName": "lifecyclestage", "operator": "EQ", "value": "lead"},
                ]
            },
            {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": "1"}]},
            {"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": "99"}]},
        ],
        "properties": ["email"],
    }
    response = call(session, emulator, "POST", SEARCH, body).json()
    assert [r["properties"]["email"] for r in response["results"]] == [
        "a@example.com",
        "c@example.com",
    ]
    assert response["total"] == 2


def test_get_by_email_with_url_encoded_characters(
    emulator: Emulator, session: requests.Session
) -> None:
    [contact_id] = emulator.seed_contacts([{"email": "first+tag@example.com"}])
    response = call(
        session,
        emulator,
        "GET",
        "/crm/v3/objects/contacts/first%2Btag%40example.com",
        idProperty="email",
    )
    assert response.status_code == 200
    assert response.json()["id"] == contact_id


def test_object_write_trace_ids_are_echoed(emulator: Emulator, session: requests.Session) -> None:
    body = upsert_inputs(["t1@example.com", "t2@example.com"])
    for index, item in enumerate(body["inputs"]):
        item["objectWriteTraceId"] = f"trace-{index}"
    results = call(session, emulator, "POST", UPSERT, body).json()["results"]
    traced = {r["properties"]["email"]: r["objectWriteTraceId"] for r in results}
    assert traced == {"t1@example.com": "trace-0", "t2@example.com": "trace-1"}


def test_concurrent_upserts_never_duplicate_a_contact(emulator: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    emails = [f"race{i}@example.com" for i in range(50)]

    def upsert_all(worker: int) -> int:
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            response = http.post(
                emulator.base_url + UPSERT, json=upsert_inputs(emails, city=f"c{worker}")
            )
            assert response.raw.version == 11  # HTTP/1.1: keep-alive for pooled clients
            return sum(r["new"] for r in response.json()["results"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        created = sum(pool.map(upsert_all, range(16)))
    assert created == 50
    assert len(emulator.all_contacts()) == 50


@pytest.mark.parametrize("prefix", ["/crm/v3/objects/contacts", "/crm/objects/2026-09/contacts"])
def test_a_person_edits_and_deletes_one_contact_by_hand(
    emulator: Emulator, session: requests.Session, prefix: str
) -> None:
    (contact_id,) = emulator.seed_contacts([{"email": "ann@example.com", "firstname": "Ann"}])
    by_email = call(session, emulator, "GET", f"{prefix}/ann@example.com", idProperty="email")
    assert by_email.status_code == 200 and by_email.json()["id"] == contact_id
    edited = call(
        session, emulator, "PATCH", f"{prefix}/{contact_id}", {"properties": {"firstname": "Anna"}}
    )
    assert edited.status_code == 200
    assert (emulator.contact_by_email("ann@example.com") or {})["firstname"] == "Anna"
    bad = call(session, emulator, "PATCH", f"{prefix}/{contact_id}", {"properties": {"nope": "x"}})
    assert bad.status_code == 400 and bad.json()["category"] == "VALIDATION_ERROR"
    assert call(session, emulator, "DELETE", f"{prefix}/{contact_id}").status_code == 204
    assert emulator.contact_by_email("ann@example.com") is None
    gone = call(session, emulator, "GET", f"{prefix}/{contact_id}")
    assert gone.status_code == 404 and gone.json()["category"] == "OBJECT_NOT_FOUND"
