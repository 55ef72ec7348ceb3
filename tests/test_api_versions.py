"""Issue 12: API versions, trace-id matching, updates by id, secondary emails (client side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncdsl.emulator import Emulator
from syncdsl.errors import SpecError
from syncdsl.hubspot.client import ApiPaths, HubSpotClient
from syncdsl.hubspot.models import ContactWrite
from syncdsl.hubspot.replies import write_reply
from syncdsl.lang.load import load_spec


def test_paths_follow_the_api_version() -> None:
    assert ApiPaths.of("v3").contacts == "/crm/v3/objects/contacts"
    assert ApiPaths.of("2026-09").contacts == "/crm/objects/2026-09/contacts"
    assert ApiPaths.of("2026-09").groups == "/crm/properties/2026-09/contacts/groups"
    with pytest.raises(ValueError, match="2026-09"):
        ApiPaths.of("v4")


def test_update_results_without_email_are_matched_by_trace_id() -> None:
    writes = [
        ContactWrite("t1", "a@x.io", {"firstname": "A"}),
        ContactWrite("t2", "b@x.io", {"firstname": "B"}),
    ]
    body = {
        "results": [
            {"id": "9", "objectWriteTraceId": "t2", "new": False, "properties": {"firstname": "B"}},
            {"id": "8", "objectWriteTraceId": "t1", "new": False, "properties": {"firstname": "A"}},
        ]
    }
    reply = write_reply(body, writes)
    assert {t: (r.id, r.email) for t, r in reply.results.items()} == {
        "t1": ("8", "a@x.io"),
        "t2": ("9", "b@x.io"),
    }


@pytest.mark.parametrize("version", ["v3", "2026-09"])
def test_update_by_id_reports_a_deleted_contact_as_not_found(version: str) -> None:
    with Emulator(seed=3) as emulator:
        kept, gone = emulator.seed_contacts([{"email": "k@x.io"}, {"email": "g@x.io"}])
        emulator.delete_contact("g@x.io")
        with HubSpotClient(emulator.base_url, "pat-local-emulator", api_version=version) as c:
            reply = c.update_contacts_by_id(
                [
                    ContactWrite("a", "k@x.io", {"firstname": "K"}, hubspot_id=kept),
                    ContactWrite("b", "g@x.io", {"firstname": "G"}, hubspot_id=gone),
                ]
            )
        assert set(reply.results) == {"a"} and reply.not_found == frozenset({"b"})
        assert emulator.contact_by_email("k@x.io")["firstname"] == "K"  # type: ignore[index]
        assert emulator.contact_by_email("g@x.io") is None  # never recreated


def test_api_version_is_validated_with_a_did_you_mean(tmp_path: Path) -> None:
    text = 'destination hubspot {\n  token = env("T")\n  api_version = "2026-9"\n}\n'
    (tmp_path / "x.sync").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec([tmp_path / "x.sync"])
    message = str(caught.value)
    assert "x.sync:3:17" in message and "unknown HubSpot API version `2026-9`" in message
    assert "2026-09" in message


def test_api_packs_must_be_zero_one_or_two(tmp_path: Path) -> None:
    text = 'destination hubspot {\n  token = env("T")\n  api_packs = 3\n}\n'
    (tmp_path / "x.sync").write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec([tmp_path / "x.sync"])
    assert "x.sync:3:15" in str(caught.value) and "0, 1 or 2" in str(caught.value)
