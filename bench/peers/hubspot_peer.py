"""The peer: HubSpot's official `hubspot-api-client` doing syncdsl's sync the way its README shows.

Read the desired contacts by email in batches of 100, compare, batch-upsert the changed ones: one
call after another, no rate limiter, the client's default retries (none on a status code). The
benchmark runs syncdsl and the peer against identical emulators (same limits, same faults) and
prints calls, wall time, 429s, exceptions and wrong contacts side by side.

hubspot-api-client is installed for this benchmark only (`pip install hubspot-api-client`); it is
not a dependency of syncdsl. Without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (
    CONTACT_READS,
    CONTACT_WRITES,
    TOKEN,
    AnyEmulator,
    RemoteEmulator,
    Runner,
    change_first_names,
    desired_end_state,
    end_state_mismatches,
    figure,
    heading,
    operations,
    request_log,
    statuses,
    total,
    write_workspace,
)

from syncdsl.hubspot.ratelimit import RateBudget

try:
    from hubspot import HubSpot
    from hubspot.crm.contacts import (
        BatchInputSimplePublicObjectBatchInputUpsert,
        BatchReadInputSimplePublicObjectId,
        SimplePublicObjectBatchInputUpsert,
        SimplePublicObjectId,
    )
    from urllib3.util.retry import Retry
except ImportError:  # the benchmark-only dependency is absent
    HubSpot = None

SKIP_MESSAGE = (
    "SKIP: hubspot-api-client is not installed; the peer benchmark needs it "
    "(`pip install hubspot-api-client`, for the benchmark only)"
)
Wanted = dict[str, dict[str, str | None]]


@dataclass
class PeerResult:
    """What one peer sync did: its exceptions by type (the batch is skipped, the sync goes on)."""

    seconds: float = 0.0
    exceptions: Counter[str] = field(default_factory=Counter)


def available() -> bool:
    return HubSpot is not None


def make_client(base_url: str, token: str, *, readme_retry: bool) -> Any:
    """HubSpot(access_token=...) pointed at the emulator through the configuration's host.

    `readme_retry` adds the README's "rate limit retry" middleware, Retry(total=5,
    status_forcelist=(429,)), which urllib3 applies to idempotent methods only (not POST).
    """
    retry = Retry(total=5, status_forcelist=(429,)) if readme_retry else None
    return HubSpot(access_token=token, host=base_url, retry=retry)


def peer_sync(client: Any, wanted: Wanted) -> PeerResult:
    """Read by email, compare, upsert the changed: 100 per call, sequential, as the docs show."""
    result = PeerResult()
    started = time.perf_counter()
    emails = sorted(wanted)
    names = sorted({name for values in wanted.values() for name in values})
    for start in range(0, len(emails), 100):
        chunk = emails[start : start + 100]
        try:
            held = _read(client, chunk, names)
            changed = [email for email in chunk if _differs(held.get(email), wanted[email])]
            if changed:
                _upsert(client, [(email, wanted[email]) for email in changed])
        except Exception as error:  # noqa: BLE001 - README: `except ApiException as e: print(e)`
            result.exceptions[type(error).__name__] += 1
    result.seconds = time.perf_counter() - started
    return result


def _read(client: Any, emails: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    body = BatchReadInputSimplePublicObjectId(
        id_property="email",
        properties=names,
        inputs=[SimplePublicObjectId(id=email) for email in emails],
    )
    response = client.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id=body)
    held = {}
    for contact in response.results:
        email = (contact.properties.get("email") or "").strip().lower()
        held[email] = contact.properties
    return held


def _upsert(client: Any, rows: list[tuple[str, dict[str, str | None]]]) -> None:
    body = BatchInputSimplePublicObjectBatchInputUpsert(
        inputs=[
            SimplePublicObjectBatchInputUpsert(
                id=email,
                id_property="email",
                properties={k: v for k, v in values.items() if v is not None},
            )
            for email, values in rows
        ]
    )
    client.crm.contacts.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=body)


def _differs(held: dict[str, Any] | None, values: dict[str, str | None]) -> bool:
    if held is None:
        return True
    for name, value in values.items():
        have = held.get(name) or None
        if value is None and have not in (None, "exited"):
            return True
        if value is not None and have != value:
            return True
    return False


# -- the head-to-head ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One phase of one contender."""

    calls: int
    contact_reads: int
    contact_writes: int
    seconds: float
    responses_429: int
    failures: int  # peer: exceptions; syncdsl: apply stopped with an error (0 or 1)
    wrong: int
    errors: str = ""  # exception types and counts


def _emulator(conditions: str, seed: int) -> RemoteEmulator:
    limited = conditions == "limited"
    return RemoteEmulator(
        # Unlimited, the emulator still sends rate-limit headers (syncdsl obeys them): say a lot.
        token=TOKEN,
        tier="professional",
        window_seconds=1.0,
        window_limit=19 if limited else 1_000_000,
        rate_limits=limited,
        fail_rate=0.01 if limited else 0.0,
        reset_rate=0.005 if limited else 0.0,
        latency=0.02 if limited else 0.0,
        seed=seed,
    )


def _outcome(
    emulator: AnyEmulator,
    mark: int,
    seconds: float,
    failures: int,
    wanted: Wanted,
    errors: str = "",
) -> Outcome:
    ops = operations(emulator, mark)
    return Outcome(
        calls=sum(ops.values()),
        contact_reads=total(ops, CONTACT_READS),
        contact_writes=total(ops, CONTACT_WRITES),
        seconds=seconds,
        responses_429=statuses(emulator, mark).get(429, 0),
        failures=failures,
        wrong=end_state_mismatches(emulator, wanted),
        errors=errors,
    )


def run_syncdsl(root: Path, emulator: AnyEmulator) -> tuple[dict[str, Outcome], dict[str, Wanted]]:
    """syncdsl's plan + apply for the three phases; also returns what each phase wanted."""
    # What a user gets from `tier = "professional"`: 190/10 s, corrected by HubSpot's headers.
    runner = Runner(root, emulator, budget=lambda: RateBudget.for_tier("professional"))
    outcomes: dict[str, Outcome] = {}
    wanted: dict[str, Wanted] = {}
    for phase in ("load", "change_1pct", "no_change"):
        if phase == "change_1pct":
            change_first_names(root)
        mark = len(request_log(emulator))
        started = time.perf_counter()
        failures, errors = 0, ""
        try:
            runner.run()
        except Exception as error:  # noqa: BLE001 - reported as a failure of the phase
            failures, errors = 1, f"{type(error).__name__}: {error}"
        seconds = time.perf_counter() - started
        wanted[phase] = desired_end_state(root)
        outcomes[phase] = _outcome(emulator, mark, seconds, failures, wanted[phase], errors)
    return outcomes, wanted


def copy_schema(source: AnyEmulator, target: AnyEmulator, names: list[str]) -> None:
    """Give the peer's portal syncdsl's audience properties (the peer does no schema work)."""
    for name in names:
        definition = source.get_property(name)
        if definition is not None and not definition.get("hubspotDefined"):
            target.create_property(definition)


def run_peer(
    emulator: AnyEmulator, wanted: dict[str, Wanted], *, readme_retry: bool
) -> dict[str, Outcome]:
    client = make_client(emulator.base_url, TOKEN, readme_retry=readme_retry)
    outcomes = {}
    for phase, target in wanted.items():
        mark = len(request_log(emulator))
        result = peer_sync(client, target)
        errors = ", ".join(f"{name} x{count}" for name, count in result.exceptions.items())
        outcomes[phase] = _outcome(
            emulator, mark, result.seconds, sum(result.exceptions.values()), target, errors
        )
    return outcomes


def compare(size: int, conditions: str) -> None:
    """Run syncdsl and the peer(s) on identical emulators; print the side-by-side figures."""
    with tempfile.TemporaryDirectory(prefix="syncdsl-bench-peer-") as tmp:
        root = write_workspace(Path(tmp), size)
        with _emulator(conditions, 5) as ours:
            mine, wanted = run_syncdsl(root, ours)
            names = sorted({name for values in wanted["load"].values() for name in values})
            peers = {}
            for readme_retry in (False, True):
                with _emulator(conditions, 5) as theirs:
                    copy_schema(ours, theirs, names)
                    peers[readme_retry] = run_peer(theirs, wanted, readme_retry=readme_retry)
    describe = (
        "Professional ratio 19 requests/1 s, 1% 5xx, 0.5% dropped connections, 20 ms"
        if conditions == "limited"
        else "no rate limit, no faults"
    )
    heading(f"syncdsl vs hubspot-api-client, {size:,} profiles, {describe}")
    print(
        f"  {'phase':<12} {'who':<18} {'calls':>6} {'reads':>6} {'writes':>6} {'seconds':>8} "
        f"{'429s':>5} {'fails':>5} {'wrong':>6}  exceptions"
    )
    for phase, ours_outcome in mine.items():
        rows = [
            ("syncdsl", ours_outcome),
            ("peer", peers[False][phase]),
            ("peer+README retry", peers[True][phase]),
        ]
        for who, o in rows:
            print(
                f"  {phase:<12} {who:<18} {o.calls:>6} {o.contact_reads:>6} "
                f"{o.contact_writes:>6} {o.seconds:>8.2f} {o.responses_429:>5} "
                f"{o.failures:>5} {o.wrong:>6}  {o.errors}".rstrip()
            )
    for phase, ours_outcome in mine.items():
        theirs = peers[False][phase]
        key = f"peer_{conditions}.{phase}"
        figure(
            f"{key}.calls_ratio",
            _ratio(theirs.calls, ours_outcome.calls),
            f"peer calls / syncdsl calls ({theirs.calls} / {ours_outcome.calls})",
        )
        figure(
            f"{key}.time_ratio",
            _ratio(theirs.seconds, ours_outcome.seconds),
            f"peer seconds / syncdsl seconds ({theirs.seconds:.2f} / {ours_outcome.seconds:.2f})",
        )
        figure(
            f"{key}.wrong",
            f"{ours_outcome.wrong}/{theirs.wrong}",
            "contacts not as desired afterwards: syncdsl / peer",
        )


def _ratio(theirs: float, ours: float) -> str:
    if ours == 0:
        return "n/a" if theirs == 0 else f"{theirs:g}/0"
    return f"{theirs / ours:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000, help="profiles (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="1,000 profiles: a smoke test")
    parser.add_argument(
        "--conditions",
        choices=["clean", "limited", "both"],
        default="both",
        help="clean: no limits or faults; limited: 19/1 s plus faults",
    )
    args = parser.parse_args()
    if not available():
        print(SKIP_MESSAGE)
        return
    size = 1_000 if args.quick else args.size
    started = time.perf_counter()
    for conditions in ["clean", "limited"] if args.conditions == "both" else [args.conditions]:
        compare(size, conditions)
    print(f"\nhubspot_peer finished in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
