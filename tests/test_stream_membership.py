"""`syncdsl stream` follows the batch export's membership rules (the plan's `audience_writes`)."""

from __future__ import annotations

from pathlib import Path

from syncdsl.state.store import StateStore
from tests.scenario import BASE_SPEC, SEGMENT, workspace
from tests.test_stream import contact, post, profile, streaming, wait_for

GREETING_SPEC = BASE_SPEC.replace(
    'city      = "{{ city | title }}"',
    'city      = "{{ city | title }}"\n'
    '    lastname  = "{% if first %}Hallo {{ first }}{% else %}Hallo{% endif %}"',
)


def test_a_member_exits_with_its_current_fields_then_gets_no_more_writes(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("ann@example.com", first="Ann", seg="realized"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "realized")
            post(service, profile("ann@example.com", first="Anna", seg="exited"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "exited")
            assert contact(ws, "ann@example.com")["firstname"] == "Anna"
            upserts = ws.emulator.count("contacts.batch_upsert")
            # A member of no audience now: an attribute-only update is not sent.
            post(service, profile("ann@example.com", first="Annie"))
            wait_for(lambda: service.metrics.get("events_not_member") == 1)
            assert ws.emulator.count("contacts.batch_upsert") == upserts
        assert contact(ws, "ann@example.com")["firstname"] == "Anna"


def test_an_attribute_update_of_a_member_is_sent(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("bob@example.com", first="Bob", seg="existing"))
            wait_for(lambda: contact(ws, "bob@example.com").get("newsletter") == "existing")
            post(service, profile("bob@example.com", first="Robert"))
            wait_for(lambda: contact(ws, "bob@example.com").get("firstname") == "Robert")
            assert contact(ws, "bob@example.com")["newsletter"] == "existing"
            assert service.metrics.get("events_not_member") == 0


def test_an_entry_without_status_is_a_member_and_identity_map_gives_the_primary(
    tmp_path: Path,
) -> None:
    spec = BASE_SPEC.replace("identity email = email", "identity email = identityMap.Email")
    event = {
        "identityMap": {
            "email": [
                {"id": "cat.old@example.com"},
                {"id": "Cat@Example.com", "primary": True},
            ]
        },
        "first": "Cat",
        "segmentMembership": {"ups": {SEGMENT: {"lastQualificationTime": "2026-12-01T00:00:00Z"}}},
    }
    with workspace(tmp_path) as ws:
        ws.write([], spec=spec)
        with streaming(ws, window_seconds=0.01) as service:
            post(service, event)
            wait_for(lambda: contact(ws, "cat@example.com").get("newsletter") == "realized")
        assert ws.emulator.contact_by_email("cat.old@example.com") is None


def test_a_partial_event_never_overwrites_what_a_template_made(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([], spec=GREETING_SPEC)
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("ann@example.com", first="Anna", seg="realized"))
            wait_for(lambda: contact(ws, "ann@example.com").get("lastname") == "Hallo Anna")
            # A membership change only: the template reads `first`, which the event lacks.
            post(service, profile("ann@example.com", seg="existing"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "existing")
            assert contact(ws, "ann@example.com")["lastname"] == "Hallo Anna"
        with StateStore.open(ws.root) as store:
            state = store.get("ann@example.com")
            assert state is not None and state.properties["lastname"] == "Hallo Anna"


def test_an_incremental_source_implies_no_exit_for_an_omitted_segment(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        '  jsonl = "profiles.jsonl"\n', '  jsonl  = "profiles.jsonl"\n  export = "incremental"\n'
    )
    with workspace(tmp_path) as ws:
        ws.write([], spec=spec)
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("dan@example.com", first="Dan", seg="realized"))
            wait_for(lambda: contact(ws, "dan@example.com").get("newsletter") == "realized")
            omitted = {"email": "dan@example.com", "first": "Daniel"}
            omitted["segmentMembership"] = {"ups": {"another-segment": {"status": "realized"}}}
            post(service, omitted)
            wait_for(lambda: contact(ws, "dan@example.com").get("firstname") == "Daniel")
            assert contact(ws, "dan@example.com")["newsletter"] == "realized"


def test_an_exit_never_recreates_a_member_deleted_by_hand(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("gus@example.com", first="Gus", seg="realized"))
            wait_for(lambda: contact(ws, "gus@example.com").get("newsletter") == "realized")
            ws.emulator.delete_contact("gus@example.com")
            post(service, profile("gus@example.com", first="Gus", seg="exited"))
            wait_for(lambda: service.metrics.get("exits_of_deleted") == 1)
            wait_for(lambda: service.queue_depth == 0)  # the batch is acknowledged after it
        assert ws.emulator.contact_by_email("gus@example.com") is None
        with StateStore.open(ws.root) as store:
            assert store.get("gus@example.com") is None


def _consent(value: str) -> dict[str, object]:
    return {"consents": {"marketing": {"email": {"val": value}}}}


def test_consent_withheld_in_the_stream_exits_a_member_and_never_sends_a_stranger(
    tmp_path: Path,
) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("ann@example.com", first="Ann", seg="realized"))
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "realized")
            # Ann opts out: she exits, and the new first name (personal data) stays here.
            post(
                service,
                {**profile("ann@example.com", first="Anna", seg="realized"), **_consent("n")},
            )
            wait_for(lambda: contact(ws, "ann@example.com").get("newsletter") == "exited")
            assert contact(ws, "ann@example.com")["firstname"] == "Ann"
            # A later event without consent fields: her opt-out is remembered, nothing is sent.
            upserts = ws.emulator.count("contacts.batch_upsert")
            post(service, profile("ann@example.com", first="Annie", seg="realized"))
            wait_for(lambda: service.metrics.get("events_no_consent") == 1)
            assert ws.emulator.count("contacts.batch_upsert") == upserts
            assert contact(ws, "ann@example.com")["firstname"] == "Ann"
            # Someone never exported who withholds consent: nothing is sent, counted apart.
            post(
                service,
                {**profile("bob@example.com", first="Bob", seg="realized"), **_consent("n")},
            )
            wait_for(lambda: service.metrics.get("events_no_consent") == 2)
            # An attribute-only event without consent fields leaves consent as it was.
            post(service, profile("cat@example.com", first="Cat", seg="realized"))
            wait_for(lambda: contact(ws, "cat@example.com").get("newsletter") == "realized")
        assert ws.emulator.contact_by_email("bob@example.com") is None


def test_update_only_stream_updates_known_contacts_and_never_creates(tmp_path: Path) -> None:
    spec = BASE_SPEC.replace(
        'tier  = "professional"', 'tier  = "professional"\n  mode  = "update_only"'
    )
    with workspace(tmp_path) as ws:
        ws.write([{"email": "ann@example.com", "first": "Ann", "seg": "realized"}])
        ws.apply()  # upsert: the state knows Ann and her HubSpot id
        ws.write([], spec=spec)
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("ann@example.com", first="Anna", seg="realized"))
            wait_for(lambda: contact(ws, "ann@example.com").get("firstname") == "Anna")
            post(service, profile("new@example.com", first="New", seg="realized"))
            wait_for(lambda: service.metrics.get("events_not_in_hubspot") == 1)
        assert ws.emulator.contact_by_email("new@example.com") is None
        assert ws.emulator.count("contacts.batch_upsert") == 1  # the apply's, before the stream


def test_strict_opt_in_in_the_stream_sends_only_who_said_yes(tmp_path: Path) -> None:
    strict = BASE_SPEC.replace(
        "  identity email = email\n", '  identity email = email\n  consent_allow  = ["y"]\n'
    )
    with workspace(tmp_path) as ws:
        ws.write([], spec=strict)
        with streaming(ws, window_seconds=0.01) as service:
            post(service, profile("quiet@example.com", first="Q", seg="realized"))
            wait_for(lambda: service.metrics.get("events_no_consent") == 1)
            post(
                service, {**profile("yes@example.com", first="Y", seg="realized"), **_consent("y")}
            )
            wait_for(lambda: contact(ws, "yes@example.com").get("newsletter") == "realized")
            # Said yes once: an attribute-only event later is sent.
            post(service, profile("yes@example.com", first="Yvonne", seg="realized"))
            wait_for(lambda: contact(ws, "yes@example.com").get("firstname") == "Yvonne")
        assert ws.emulator.contact_by_email("quiet@example.com") is None
