"""CLI commands: emulator (`syncdsl emulator`, a local HubSpot to point syncdsl or anything at)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from syncdsl.cli.core import boundary
from syncdsl.errors import SyncdslError
from syncdsl.hubspot.tiers import TIERS

#: This module's commands; `syncdsl.cli` adds them to the `syncdsl` app.
app = typer.Typer()


@app.command("emulator")
@boundary
def emulator_command(
    port: Annotated[
        int, typer.Option("--port", help="Port to listen on (0 picks a free one).")
    ] = 8765,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    token: Annotated[
        str, typer.Option("--token", help="The bearer token clients must send.")
    ] = "pat-local-emulator",
    tier: Annotated[
        str, typer.Option("--tier", help=f"Rate-limit tier: {', '.join(TIERS)}.")
    ] = "free",
    window_seconds: Annotated[
        float, typer.Option("--window-seconds", help="Length of the rolling rate-limit window.")
    ] = 10.0,
    window_limit: Annotated[
        int | None,
        typer.Option("--window-limit", help="Requests per window (default: the tier's)."),
    ] = None,
    daily_limit: Annotated[
        int | None, typer.Option("--daily-limit", help="Requests per day (default: the tier's).")
    ] = None,
    no_rate_limits: Annotated[
        bool, typer.Option("--no-rate-limits", help="Never answer 429.")
    ] = False,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", help="Share of requests answered 500/502/503.")
    ] = 0.0,
    reset_rate: Annotated[
        float, typer.Option("--reset-rate", help="Share of requests whose connection is dropped.")
    ] = 0.0,
    latency: Annotated[
        float, typer.Option("--latency", help="Seconds added to every request.")
    ] = 0.0,
    search_lag_ms: Annotated[
        float,
        typer.Option(
            "--search-lag-ms",
            help="Milliseconds before a write shows in search (HubSpot's search is not "
            "read-your-writes).",
        ),
    ] = 0.0,
    require_on_create: Annotated[
        list[str] | None,
        typer.Option(
            "--require-on-create",
            metavar="PROPERTY",
            help="A validation rule of the account: creating a contact without this property "
            "fails with 400, as HubSpot enforces rules on API writes (repeatable).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed for shuffles and faults (repeatable runs).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="JSON file to load the portal from and save to.")
    ] = None,
    scopes: Annotated[
        str | None,
        typer.Option("--scopes", help="Comma-separated scopes the token has (default: all four)."),
    ] = None,
) -> None:
    """Run a local HubSpot (CRM contacts and properties, v3 and 2026-09) until Ctrl-C or SIGTERM."""
    from syncdsl.emulator import Emulator

    if tier not in TIERS:
        raise SyncdslError(f"unknown tier {tier!r}: use one of {', '.join(TIERS)}")
    if fail_rate < 0 or reset_rate < 0 or fail_rate + reset_rate > 1:
        raise SyncdslError("--fail-rate and --reset-rate must be ≥ 0 and add up to at most 1")
    emulator = Emulator(
        token=token,
        scopes=[s.strip() for s in scopes.split(",") if s.strip()] if scopes is not None else None,
        tier=tier,
        window_seconds=window_seconds,
        window_limit=window_limit,
        daily_limit=daily_limit,
        rate_limits=not no_rate_limits,
        fail_rate=fail_rate,
        reset_rate=reset_rate,
        latency=latency,
        search_lag_ms=search_lag_ms,
        required_on_create=require_on_create or (),
        seed=seed,
        state_file=state,
    )
    try:
        base_url = emulator.start(host, port)
    except OSError as problem:
        raise SyncdslError(
            f"cannot listen on {host}:{port}: {problem.strerror}. Pick another --port."
        ) from None
    typer.echo(f"HubSpot emulator listening on {base_url}")
    typer.echo(f"  export HUBSPOT_API_BASE={base_url}")
    typer.echo(f"  export HUBSPOT_TOKEN={token}")
    typer.echo(manual_edits_help(base_url))
    if state is not None:
        typer.echo(f"State is saved to {state} on exit.")
    typer.echo("Press Ctrl-C to stop.")
    _serve_until_signalled()
    emulator.stop()
    typer.echo("HubSpot emulator stopped.")


def _serve_until_signalled() -> None:
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    # Handle SIGINT explicitly too: a shell starts background jobs with SIGINT ignored.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def manual_edits_help(base_url: str) -> str:
    """How a person reads, edits or deletes a contact by hand, as in HubSpot's UI (on GET and
    PATCH, idProperty=email addresses a contact by its email instead of its id)."""
    contact = f"{base_url}/crm/v3/objects/contacts/ann@example.com?idProperty=email"
    auth = '-H "Authorization: Bearer $HUBSPOT_TOKEN"'
    return (
        "Edit contacts by hand, as a person would in HubSpot:\n"
        f"  curl {auth} '{contact}&properties=firstname,lastname'\n"
        f"  curl -X PATCH {auth} -H 'Content-Type: application/json' '{contact}' "
        """-d '{"properties": {"firstname": "Ann"}}'\n"""
        "  # DELETE takes the contact's id (the `id` the GET above returns), not its email:\n"
        f"  curl -X DELETE {auth} '{base_url}/crm/v3/objects/contacts/CONTACT_ID'"
    )
