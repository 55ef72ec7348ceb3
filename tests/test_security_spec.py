"""A configuration is untrusted input: where its token may go, which files it may read.

(CI plans pull requests, so a spec must not be able to send the token elsewhere or read the
machine's secrets into a plan.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncdsl.cli import app
from syncdsl.errors import SpecError
from syncdsl.lang.endpoint import api_base_problem, spec_base_url_problem, token_problem
from syncdsl.lang.load import load_spec

runner = CliRunner()

SPEC = """destination hubspot {{
  token = env("HUBSPOT_TOKEN"){extra}
}}

source profiles {{
  jsonl          = "{path}"
  identity email = email
}}
"""


def _config(directory: Path, path: str = "data/p.jsonl", extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    (directory / "data" / "p.jsonl").write_text('{"email": "a@example.com"}\n')
    spec = directory / "main.sync"
    spec.write_text(SPEC.format(path=path, extra=extra))
    return spec


def _errors(spec: Path, **kwargs: Path) -> str:
    with pytest.raises(SpecError) as caught:
        load_spec([spec], **kwargs)
    return caught.value.rendered


@pytest.mark.parametrize(
    "url",
    ["https://api.hubapi.com", "https://api.eu1.hubapi.com/", "https://HUBAPI.com"],
)
def test_the_spec_may_name_hubspot_hosts_over_https(url: str) -> None:
    assert spec_base_url_problem(url) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://attacker:18900",
        "http://api.hubapi.com",  # the token in clear
        "https://api.hubapi.com.attacker.example",
        "https://evilhubapi.com",
        "https://user:pw@api.hubapi.com",
        "https://127.0.0.1:8765",
    ],
)
def test_the_spec_may_not_send_the_token_elsewhere(url: str) -> None:
    assert spec_base_url_problem(url) is not None


def test_base_url_refusal_is_a_located_spec_error_that_says_what_to_do(tmp_path: Path) -> None:
    spec = _config(tmp_path, extra='\n  base_url = "http://attacker:18900"')
    rendered = _errors(spec)
    assert "main.sync:3:14: error: a spec's `base_url` may only name HubSpot's API" in rendered
    assert "HUBSPOT_API_BASE" in rendered and "--local" in rendered


def test_plan_never_contacts_a_base_url_from_the_spec(tmp_path: Path) -> None:
    spec = _config(tmp_path, extra='\n  base_url = "http://127.0.0.1:9"')
    result = runner.invoke(app, ["plan", str(spec)], env={"HUBSPOT_TOKEN": "pat-na1-secret"})
    assert result.exit_code == 1
    assert "may only name HubSpot's API" in result.output
    assert "pat-na1-secret" not in result.output


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://pat-na1-secret@host", "http:// or https://"),
        ("https://user:pat-na1-secret@host", "credentials"),
        ("https://", "no host"),
        ("https://host/?token=pat-na1-secret", "query"),
        ("https://host:99999", "not a valid URL"),
    ],
)
def test_the_operators_api_base_is_checked_without_echoing_it(url: str, words: str) -> None:
    problem = api_base_problem(url, "HUBSPOT_API_BASE")
    assert problem is not None and words in problem
    assert "pat-na1-secret" not in problem


@pytest.mark.parametrize("token", ["pat-na1\nsecret", "pat na1", "pat-\x00", "pat-é"])
def test_a_token_no_header_can_carry_is_refused_without_printing_it(token: str) -> None:
    problem = token_problem(token, "HUBSPOT_TOKEN")
    assert problem is not None and "HUBSPOT_TOKEN" in problem
    assert token not in problem


@pytest.mark.parametrize("path", ["/proc/self/environ", "../outside.jsonl", "data/../../x.jsonl"])
def test_data_paths_may_not_leave_the_configuration(tmp_path: Path, path: str) -> None:
    (tmp_path / "outside.jsonl").write_text("{}\n")
    (tmp_path / "x.jsonl").write_text("{}\n")
    spec = _config(tmp_path / "config", path=path)
    rendered = _errors(spec)
    assert "main.sync:6:20: error: data file" in rendered
    assert "--data-root DIR (or SYNCDSL_DATA_ROOT)" in rendered


def test_a_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.jsonl").write_text('{"email": "a@example.com"}\n')
    spec = _config(tmp_path / "config", path="data/link.jsonl")
    (tmp_path / "config" / "data" / "link.jsonl").symlink_to(tmp_path / "secret.jsonl")
    assert "leads outside of the configuration's directory through a symlink" in _errors(spec)


def test_a_dangling_symlink_on_the_way_is_named(tmp_path: Path) -> None:
    spec = _config(tmp_path, path="data/exports/p.jsonl")
    (tmp_path / "data" / "exports").symlink_to("missing-mount")
    rendered = _errors(spec)
    assert "does not exist: `exports` on its way is a symlink to `missing-mount`" in rendered


def test_the_operator_may_allow_a_data_root(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "p.jsonl").write_text('{"email": "a@example.com"}\n')
    spec = _config(tmp_path / "config", path="../shared/p.jsonl")
    assert load_spec([spec], data_root=shared).sources[0].locations[0].target == str(
        shared / "p.jsonl"
    )
    absolute = _config(tmp_path / "config2", path=str(shared / "p.jsonl"))
    assert load_spec([absolute], data_root=shared).sources[0].locations[0].target == str(
        shared / "p.jsonl"
    )
    # The root allows that directory only.
    assert "absolute path" in _errors(absolute, data_root=tmp_path / "config")


def test_validate_takes_the_data_root_from_option_or_environment(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "p.jsonl").write_text('{"email": "a@example.com"}\n')
    spec = _config(tmp_path / "config", path="../shared/p.jsonl")
    refused = runner.invoke(app, ["validate", str(spec)])
    assert refused.exit_code == 1 and "escapes the configuration's directory" in refused.output
    by_option = runner.invoke(app, ["validate", "--data-root", str(shared), str(spec)])
    assert by_option.exit_code == 0, by_option.output
    by_env = runner.invoke(app, ["validate", str(spec)], env={"SYNCDSL_DATA_ROOT": str(shared)})
    assert by_env.exit_code == 0, by_env.output


@pytest.mark.parametrize(
    "env",
    [
        {"HUBSPOT_TOKEN": "pat-na1-secret\nX-Injected: 1"},
        {"HUBSPOT_TOKEN": "pat-na1-ok", "HUBSPOT_API_BASE": "ftp://pat-na1-secret@127.0.0.1:9"},
        {"HUBSPOT_TOKEN": "pat-na1-ok", "HUBSPOT_API_BASE": "http://u:pat-na1-secret@127.0.0.1:9"},
    ],
)
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_bad_token_or_api_base_fail_before_any_request_and_print_no_secret(
    tmp_path: Path, env: dict[str, str], debug: list[str]
) -> None:
    spec = _config(tmp_path)
    result = runner.invoke(app, [*debug, "plan", str(spec)], env=env)
    assert result.exit_code == 1
    shown = result.output + "".join(map(str, [result.exception]))
    assert "pat-na1-secret" not in shown
    assert "HUBSPOT_" in shown


def test_scrub_masks_registered_secrets_reprs_and_url_credentials() -> None:
    from syncdsl.scrub import register_secret, scrub

    register_secret("pat-na1-scrub-me\nsecond-line")
    text = "InvalidHeader: 'Bearer pat-na1-scrub-me\\nsecond-line' at https://bob:pw@host/x"
    shown = scrub(text)
    assert "pat-na1-scrub-me" not in shown and "second-line" not in shown
    assert "bob" not in shown and "pw@" not in shown and "https://***@host/x" in shown


def test_a_value_holding_the_token_is_rejected_never_sent_nor_shown(tmp_path: Path) -> None:
    token = "pat-na1-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    (tmp_path / "data").mkdir()
    (tmp_path / "main.sync").write_text(
        'destination hubspot {\n  token = env("HUBSPOT_TOKEN")\n}\n\n'
        'source people {\n  csv = "data/people.csv"\n  identity email = email\n'
        "  map {\n    firstname = name\n  }\n}\n\n"
        'audience "Everyone" {\n  source = people\n}\n'
    )
    (tmp_path / "data" / "people.csv").write_text(
        f"email,name\na@example.com,{token}\nb@example.com,Bea\n"
    )
    env = {"HUBSPOT_TOKEN": token}
    planned = runner.invoke(app, ["plan", str(tmp_path), "--local", "--json"], env=env)
    assert planned.exit_code == 0, planned.output
    assert "property 'firstname': the value holds a secret (the HubSpot token)" in planned.output
    saved = runner.invoke(
        app, ["plan", str(tmp_path), "--local", "--out", str(tmp_path / "p.plan")], env=env
    )
    applied = runner.invoke(
        app, ["apply", str(tmp_path), "--local", "--auto-approve", "--json"], env=env
    )
    assert saved.exit_code == 0 and applied.exit_code == 0, applied.output
    assert '"created": 1' in applied.output
    written = [path.read_bytes() for path in (tmp_path / ".syncdsl").iterdir() if path.is_file()]
    written.append((tmp_path / "p.plan").read_bytes())
    for shown in (planned.output, saved.output, applied.output):
        assert token not in shown
    assert all(token.encode() not in data for data in written)  # state.db is binary


def test_short_url_credentials_do_not_mask_words_of_the_hint(tmp_path: Path) -> None:
    spec = _config(tmp_path)
    env = {"HUBSPOT_TOKEN": "pat-na1-ok", "HUBSPOT_API_BASE": "http://user:pw@127.0.0.1:9"}
    result = runner.invoke(app, ["plan", str(spec)], env=env)
    assert result.exit_code == 1
    assert "must not hold credentials (user:password@)" in result.output
