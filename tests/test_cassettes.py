"""Replay the client's recorded HubSpot conversations (cassettes/hubspot) with record_mode="none"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from record_cassettes import CASSETTES, SCENARIOS, TOKEN, WRONG_TOKEN, cassette_vcr, replay_client

from syncdsl.errors import (
    HubSpotAuthError,
    HubSpotConflictError,
    HubSpotScopeError,
    HubSpotValidationError,
)
from syncdsl.hubspot.client import HubSpotClient
from tests.fakes import FakeTime


def replay(name: str) -> tuple[Any, HubSpotClient, FakeTime]:
    fake = FakeTime()
    client = replay_client(name, fake.sleep, fake.clock)
    with cassette_vcr("none").use_cassette(f"{name}.yaml") as cassette:
        result = SCENARIOS[name].run(client)
        assert cassette.all_played, "every recorded request was made again"
    return result, client, fake


def replay_error(name: str, error_type: type[Exception]) -> tuple[Any, HubSpotClient]:
    fake = FakeTime()
    client = replay_client(name, fake.sleep, fake.clock)
    with cassette_vcr("none").use_cassette(f"{name}.yaml"), pytest.raises(error_type) as caught:
        SCENARIOS[name].run(client)
    return caught.value, client


def test_every_scenario_has_a_small_cassette() -> None:
    files = {path.stem: path for path in CASSETTES.glob("*.yaml")}
    assert set(files) == set(SCENARIOS)
    # properties.yaml holds the emulator's standard contact properties (about 45 kB).
    assert all(path.stat().st_size < 64_000 for path in files.values())


@pytest.mark.parametrize("path", sorted(CASSETTES.glob("*.yaml")), ids=lambda p: p.name)
def test_no_cassette_holds_a_token(path: Path) -> None:
    text = path.read_text()
    for secret in (TOKEN, WRONG_TOKEN, "Bearer", "bearer ", "authorization:", "Authorization:"):
        assert secret not in text, f"{path.name} contains {secret!r}"


def test_property_calls_replay() -> None:
    result, client, _ = replay("properties")
    assert result["group"].name == "syncdsl"
    assert result["patched"].label == "VIP audience"
    assert result["patched"].option_values == ("realized", "exited")
    assert [p.name for p in result["batch"]] == ["aud_score", "aud_since"]
    assert result["got"].type == "number"
    by_name = {p.name: p for p in result["all"]}
    assert {"aud_vip", "aud_score", "email", "lifecyclestage"} <= set(by_name)
    assert by_name["hs_object_id"].read_only
    assert client.stats.calls == 7 and client.stats.errors == 0


def test_contact_calls_replay() -> None:
    result, _, _ = replay("contacts")
    assert sorted(result["upserted"]) == ["ada@example.com", "bob@example.com", "cy@example.com"]
    assert all(r.new for r in result["upserted"].values())
    assert result["again"]["ada@example.com"].new is False
    assert result["again"]["ada@example.com"].id == result["upserted"]["ada@example.com"].id
    assert len(result["listed"]) == 3  # two pages of two
    assert {c.email for c in result["found"]} == {"ada@example.com", "bob@example.com"}


def test_batch_read_207_leaves_out_the_missing_email() -> None:
    result, _, _ = replay("batch_read_207")
    assert list(result) == ["ada@example.com"]
    assert result["ada@example.com"].properties["firstname"] == "Ada"


def test_invalid_email_400() -> None:
    error, client = replay_error("e400_invalid_email", HubSpotValidationError)
    assert "not-an-email@" in str(error) and "VALIDATION_ERROR" in str(error)
    assert error.errors and error.correlation_id and error.correlation_id in str(error)
    assert client.stats.calls == 1


def test_bad_token_401() -> None:
    error, _ = replay_error("e401", HubSpotAuthError)
    assert "401 INVALID_AUTHENTICATION" in str(error) and "token = env(...)" in str(error)
    assert WRONG_TOKEN not in str(error) and WRONG_TOKEN not in repr(error.body)


def test_missing_scope_403() -> None:
    error, _ = replay_error("e403", HubSpotScopeError)
    assert error.missing_scopes == ["crm.objects.contacts.write"]
    assert "Settings > Integrations > Private apps" in str(error)


def test_duplicate_property_409() -> None:
    error, client = replay_error("e409", HubSpotConflictError)
    assert error.status == 409 and "aud_dup" in str(error)
    assert client.stats.calls == 2


def test_429_then_success_replays_with_a_wait() -> None:
    result, client, fake = replay("e429")
    assert len(result) == 2 and all(result)
    assert client.stats.rate_limited == 1
    assert sum(fake.sleeps) >= 1.0  # the window the 429's headers named
