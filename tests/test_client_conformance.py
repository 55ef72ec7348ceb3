"""Every request the client sends, and every response it gets, checked against HubSpot's OpenAPI specs.

The specs are HubSpot's (proprietary, never copied here): they are read from `../shared/hubspot-openapi`
beside the repository, and the tests skip when that folder is absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from syncdsl.emulator import Emulator
from syncdsl.errors import HubSpotError
from syncdsl.hubspot.client import ApiPaths, HubSpotClient
from syncdsl.hubspot.models import ContactWrite
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.schema import PropertyGroup, PropertyOption, PropertySchema

SPECS = Path(__file__).resolve().parent.parent / ".." / "shared" / "hubspot-openapi"
# The API versions the client is checked on, and the spec files of each.
SPEC_FILES = {
    version: {
        "contacts": f"crm-contacts-{version}.json",
        "properties": f"crm-properties-{version}.json",
    }
    for version in ("v3", "2026-09")
}
pytestmark = pytest.mark.skipif(
    not all((SPECS / n).is_file() for names in SPEC_FILES.values() for n in names.values()),
    reason=f"HubSpot's OpenAPI specs are not at {SPECS} (they are never copied into the repository)",
)
HUBSPOT = (
    "https://api.hubapi.com"  # the specs' server; requests are re-addressed to it to be matched
)


def load_spec(filename: str) -> Any:
    from openapi_core import OpenAPI

    document = json.loads((SPECS / filename).read_text())
    # The specs declare the error response as `*/*`, which openapi-core leaves undecoded; HubSpot
    # sends it as JSON, so check it as JSON (in memory only; the files are untouched).
    error = document.get("components", {}).get("responses", {}).get("Error", {})
    if "*/*" in error.get("content", {}):
        error["content"] = {"application/json": error["content"]["*/*"]}
    # The specs type search `sorts` items as strings, but HubSpot wants {propertyName, direction}
    # objects and ignores strings (HubSpot/hubspot-api-ruby#257, HubSpot/hubspot-api-nodejs#559):
    # check our sorts against the shape HubSpot documents instead.
    search = document.get("components", {}).get("schemas", {}).get("PublicObjectSearchRequest")
    if search is not None:
        search["properties"]["sorts"]["items"] = {
            "type": "object",
            "required": ["propertyName"],
            "additionalProperties": False,
            "properties": {
                "propertyName": {"type": "string"},
                "direction": {"type": "string", "enum": ["ASCENDING", "DESCENDING"]},
            },
        }
    return OpenAPI.from_dict(document)


def drive_the_client(base_url: str, session: requests.Session, version: str) -> None:
    """Every client call, and every error HubSpot (here the emulator) can answer them with."""
    client = HubSpotClient(
        base_url,
        "pat-local-emulator",
        session=session,
        backoff_base=0.01,
        api_version=version,
        budget=RateBudget(limit=100, search_per_second=50),
    )
    client.list_properties()
    client.get_property("email")
    client.list_property_groups()
    client.create_property_group(PropertyGroup("syncdsl", "syncdsl audiences"))
    status = PropertySchema(
        "aud_status",
        "Status",
        "enumeration",
        "select",
        group_name="syncdsl",
        options=(PropertyOption("Realized", "realized"),),
    )
    client.create_property(status)
    client.update_property(
        "aud_status",
        label="Audience status",
        description="set by syncdsl",
        options=(PropertyOption("Realized", "realized"), PropertyOption("Exited", "exited")),
    )
    client.batch_create_properties(
        [PropertySchema("aud_score", "Score", "number", "number", group_name="syncdsl")]
    )
    written = client.batch_upsert_contacts_by_email(
        [(f"u{i}@example.com", {"firstname": f"U{i}", "aud_status": "realized"}) for i in range(5)]
    )
    updated = client.update_contacts_by_id(
        [
            ContactWrite(
                "t0", "u0@example.com", {"lastname": "Zero"}, written["u0@example.com"].id
            ),
            ContactWrite("t1", "gone@example.com", {"lastname": "Gone"}, "987654321"),
        ]
    )  # 207 on v3, 200 with the error inside on 2026-09
    assert set(updated.results) == {"t0"} and updated.not_found == {"t1"}
    client.batch_read_contacts_by_email(
        ["u1@example.com", "ghost@example.com"], ["firstname"]
    )  # 207 on v3, 200 with the error inside on 2026-09
    list(client.iter_contacts(["firstname"], page_size=2))
    list(
        client.search_contacts(
            [
                {
                    "filters": [
                        {"propertyName": "aud_status", "operator": "EQ", "value": "realized"}
                    ]
                },
                {
                    "filters": [
                        {"propertyName": "email", "operator": "IN", "values": ["u1@example.com"]}
                    ]
                },
            ],
            ["firstname"],
            page_size=2,
        )
    )
    failing = [
        lambda: client.get_property("no_such_property"),  # 404
        lambda: client.create_property(status),  # 409
        lambda: client.batch_upsert_contacts_by_email([("not-an-email", {})]),  # 400
        lambda: client.batch_upsert_contacts_by_email(
            [("a@example.com", {"no_such_property": "1"})]
        ),
        lambda: HubSpotClient(
            base_url, "pat-wrong", session=session, max_retries=0, api_version=version
        ).list_properties(),  # 401
    ]
    for call in failing:
        with pytest.raises(HubSpotError):
            call()


@pytest.fixture(scope="module", params=list(SPEC_FILES))
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def exchanges(version: str) -> Iterator[list[requests.Response]]:
    seen: list[requests.Response] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response))
    with Emulator(seed=21, search_per_second=50) as emulator:
        drive_the_client(emulator.base_url, session, version)
    # A portal whose app lacks the write scopes (403), and one that is out of budget (429s).
    with (
        Emulator(seed=22, scopes=["crm.objects.contacts.read"]) as emulator,
        pytest.raises(HubSpotError),
    ):
        HubSpotClient(
            emulator.base_url, "pat-local-emulator", session=session, api_version=version
        ).batch_upsert_contacts_by_email([("a@example.com", {})])
    with Emulator(seed=23, window_limit=1, window_seconds=0.2) as emulator:
        emulator.limiter.admit(search=False)
        HubSpotClient(
            emulator.base_url,
            "pat-local-emulator",
            session=session,
            tier="enterprise",
            api_version=version,
        ).list_property_groups()
    session.close()
    yield seen


def documented_429(response: requests.Response) -> requests.Response:
    """HubSpot's real 429 bodies carry errorType/policyName instead of the spec's required
    `category` (HUBSPOT.md §2.3, hubspot-api-python#117); check the rest of them as an Error."""
    body = response.json() if response.status_code == 429 else {}
    if "category" in body or body.get("errorType") != "RATE_LIMIT" or not body.get("policyName"):
        return response
    copy = requests.Response()
    copy.__dict__.update(response.__dict__)
    copy._content = json.dumps({**body, "category": "RATE_LIMITS"}).encode()
    return copy


def openapi_pair(response: requests.Response) -> tuple[Any, Any, str]:
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    prepared = response.request.copy()
    prepared.url = HUBSPOT + response.request.path_url
    which = "properties" if "/properties/" in prepared.url else "contacts"
    label = f"{prepared.method} {response.request.path_url} -> {response.status_code}"
    return (
        RequestsOpenAPIRequest(prepared),
        RequestsOpenAPIResponse(documented_429(response)),
        f"{which}: {label}",
    )


@pytest.fixture(scope="module")
def specs(version: str) -> dict[str, Any]:
    return {name: load_spec(filename) for name, filename in SPEC_FILES[version].items()}


def describe(error: Exception) -> str:
    causes = [str(error)]
    cause = error.__cause__
    while cause is not None:
        causes.append(str(getattr(cause, "schema_errors", "")) or str(cause))
        cause = cause.__cause__
    return " / ".join(c[:400] for c in causes if c)


def test_the_traffic_covers_every_call_and_error(
    exchanges: list[requests.Response], version: str
) -> None:
    statuses = {response.status_code for response in exchanges}
    assert {200, 201, 400, 401, 403, 404, 409, 429} <= statuses
    # v3 answers item errors with a 207; 2026-09 has no 207 (the errors come inside the 200).
    assert (207 in statuses) == (version == "v3")
    paths = {response.request.path_url.split("?")[0] for response in exchanges}
    api = ApiPaths.of(version)
    assert {
        f"{api.contacts}/batch/upsert",
        f"{api.contacts}/batch/read",
        f"{api.contacts}/batch/update",
        f"{api.contacts}/search",
        api.contacts,
        f"{api.properties}/batch/create",
        api.groups,
    } <= paths


def test_every_request_matches_hubspots_spec(
    exchanges: list[requests.Response], specs: dict[str, Any]
) -> None:
    from openapi_core.validation.request.validators import (
        V30RequestBodyValidator,
        V30RequestParametersValidator,
    )

    problems = []
    for response in exchanges:
        request, _, label = openapi_pair(response)
        spec = specs[label.split(":")[0]].spec
        # Security is not checked: the specs model private-app auth as a "private-app" header,
        # while HubSpot (and its docs) take `Authorization: Bearer`.
        for validator in (V30RequestBodyValidator(spec), V30RequestParametersValidator(spec)):
            problems += [f"{label}: {describe(e)}" for e in validator.iter_errors(request)]
    assert not problems, "\n".join(problems)


def test_every_response_matches_hubspots_spec(
    exchanges: list[requests.Response], specs: dict[str, Any]
) -> None:
    from openapi_core.validation.response.validators import V30ResponseDataValidator

    problems = []
    for exchange in exchanges:
        request, response, label = openapi_pair(exchange)
        spec = specs[label.split(":")[0]].spec
        problems += [
            f"{label}: {describe(e)}"
            for e in V30ResponseDataValidator(spec).iter_errors(request, response)
        ]
    assert not problems, "\n".join(problems)
