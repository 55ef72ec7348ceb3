"""The PostgreSQL store end to end, with real processes: stream replicas sharing one queue and one
portal lease (one kill -9ed), applies under the portal's lease, `syncdsl state`, `syncdsl worker`
over several configurations and portals, migrations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import requests

from syncdsl.emulator import Emulator
from syncdsl.state.postgres import connect
from tests.pgserver import PASSWORD
from tests.scenario import BASE_SPEC, SEGMENT, TOKEN, Workspace, workspace
from tests.test_cli_run import SYNCDSL, run
from tests.test_stream_cli import stream_process, wait_for

LEASE = "2"  # seconds: SYNCDSL_LEASE_SECONDS for these tests


def _profiles(prefix: str, count: int, first: str = "") -> list[dict[str, object]]:
    return [
        {
            "email": f"{prefix}{i:04d}@example.com",
            "first": f"{first}{prefix}{i}",
            "segmentMembership": {"ups": {SEGMENT: {"status": "realized"}}},
        }
        for i in range(count)
    ]


def _sending(url: str) -> bool:
    try:
        return bool(requests.get(f"{url}/status", timeout=5).json()["sending"])
    except requests.RequestException:
        return False


def test_three_replicas_share_the_queue_and_the_portal_and_survive_a_kill_9(
    tmp_path: Path, pg_store: str
) -> None:
    env = {"SYNCDSL_STORE": pg_store, "SYNCDSL_LEASE_SECONDS": LEASE}
    # Rate limits on, each call 50 ms: the emulator answers 429 to anything over the tier.
    with workspace(tmp_path, latency=0.05, rate_limits=True, tier="professional") as ws:
        ws.write([])
        args = ("--parallelism", "4", "--window-ms", "20", "--grace-seconds", "20")
        with (
            stream_process(ws, *args, env_extra=env) as (a, url_a),
            stream_process(ws, *args, env_extra=env) as (b, url_b),
            stream_process(ws, *args, env_extra=env) as (c, url_c),
        ):
            replicas = {url_a: a, url_b: b, url_c: c}
            wait_for(lambda: any(_sending(u) for u in replicas), what="a lease holder")
            holders = [u for u in replicas if _sending(u)]
            assert len(holders) == 1, "one replica sends at a time"
            acknowledged: dict[str, str] = {}
            batches = [_profiles("r", 300)[i : i + 25] for i in range(0, 300, 25)]
            urls = list(replicas)
            for index, chunk in enumerate(batches[:6]):
                answer = requests.post(f"{urls[index % 3]}/v1/profiles", json=chunk, timeout=10)
                assert answer.status_code == 202
                acknowledged.update({str(p["email"]): str(p["first"]) for p in chunk})
            holder = holders[0]
            replicas[holder].send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            replicas[holder].wait(timeout=10)
            alive = [u for u in urls if u != holder]
            for index, chunk in enumerate(batches[6:]):
                answer = requests.post(f"{alive[index % 2]}/v1/profiles", json=chunk, timeout=10)
                assert answer.status_code == 202
                acknowledged.update({str(p["email"]): str(p["first"]) for p in chunk})
            # Later values of the same people, through the other replica: the last one wins.
            again = _profiles("r", 50, first="v2-")
            assert requests.post(f"{alive[1]}/v1/profiles", json=again, timeout=10).ok
            acknowledged.update({str(p["email"]): str(p["first"]) for p in again})
            wait_for(lambda: any(_sending(u) for u in alive), timeout=30, what="a new holder")
            moved = time.monotonic() - killed_at
            assert moved < float(LEASE) * 2.5, f"the lease took {moved:.1f} s to move"
            wait_for(
                lambda: all(
                    (ws.emulator.contact_by_email(e) or {}).get("firstname") == first
                    for e, first in acknowledged.items()
                ),
                timeout=60,
                what="every acknowledged event in HubSpot, the latest value of each",
            )
            for url in alive:
                replicas[url].send_signal(signal.SIGTERM)
                code = replicas[url].wait(timeout=30)
                assert code == 0, replicas[url].stderr.read()[-2000:]  # type: ignore[union-attr]
        assert ws.emulator.count(status=429) == 0, "the replicas shared one rate budget"
        assert ws.emulator.overlapping_writes == 0, "an email was in two batches in flight"
        assert all(
            (ws.emulator.contact_by_email(e) or {}).get("newsletter") == "realized"
            for e in acknowledged
        )


def test_apply_waits_for_no_one_it_refuses_while_the_portal_is_leased(
    tmp_path: Path, pg_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCDSL_STORE", pg_store)
    with workspace(tmp_path) as ws:
        ws.write([{"email": "a@example.com", "first": "A", "seg": "realized"}])
        with stream_process(ws, "--window-ms", "20") as (process, url):
            wait_for(lambda: _sending(url), what="the stream holding the lease")
            refused = run(ws, "apply", ".", "--auto-approve")
            assert refused.returncode == 1
            assert "another syncdsl process holds this HubSpot portal" in refused.stderr
            assert "syncdsl stream" in refused.stderr  # who holds it
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        applied = run(ws, "apply", ".", "--auto-approve", check=True)
        assert "1 to create" in applied.stdout or "created" in applied.stdout
        assert ws.emulator.contact_by_email("a@example.com") is not None


def test_state_lives_in_postgresql_and_never_shows_the_password(
    tmp_path: Path, pg_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_part = pg_store.split("//", 1)[1]
    with_password = pg_store.replace(host_part, host_part.replace("@", f":{PASSWORD}@", 1))
    monkeypatch.setenv("SYNCDSL_STORE", with_password)
    monkeypatch.delenv("PGPASSWORD")
    with workspace(tmp_path) as ws:
        ws.write(
            [{"email": f"s{i}@example.com", "first": "S", "seg": "realized"} for i in range(5)]
        )
        outputs = [
            run(ws, "apply", ".", "--auto-approve", check=True),
            run(ws, "state", ".", check=True),
            run(ws, "state", ".", "--json", check=True),
            run(ws, "plan", ".", "--detailed-exitcode"),
        ]
        assert outputs[3].returncode == 0, outputs[3].stdout  # the state knows what was applied
        for result in outputs:
            assert PASSWORD not in result.stdout + result.stderr
        summary = json.loads(outputs[2].stdout)
        assert summary["contacts"] == 5 and summary["path"].startswith("postgresql://")
        assert f"configuration {tmp_path.name}" in outputs[1].stdout
        assert not (tmp_path / ".syncdsl" / "state.db").exists()
    with psycopg.connect(with_password) as db:
        schemas = db.execute("SELECT schema_name FROM syncdsl.configurations").fetchall()
        assert len(schemas) == 1
        recorded = db.execute(
            f'SELECT component, version FROM "{schemas[0][0]}".schema_version ORDER BY component'
        ).fetchall()
        assert recorded == [("state", 2)]


def test_a_store_newer_than_syncdsl_is_refused(pg_store: str, tmp_path: Path) -> None:
    from syncdsl.errors import StateError
    from syncdsl.state.store import StateStore

    with StateStore.open(tmp_path, store=pg_store) as store:
        store.count()
    db = connect(pg_store)
    schema = db.execute("SELECT schema_name FROM configurations").fetchone()[0]
    db.execute(f'UPDATE "{schema}".schema_version SET version = 99 WHERE component = ?', ("state",))
    db.close()
    with pytest.raises(StateError, match="newer than this syncdsl knows"):
        StateStore.open(tmp_path, store=pg_store)


def test_an_unreachable_store_is_explained_without_its_password(tmp_path: Path) -> None:
    with workspace(tmp_path) as ws:
        ws.write([])
        env = {**os.environ, "HUBSPOT_TOKEN": TOKEN, "HUBSPOT_API_BASE": ws.emulator.base_url}
        env["SYNCDSL_STORE"] = "postgresql://syncdsl:secret-password-99@127.0.0.1:1/syncdsl"
        result = subprocess.run(
            [*SYNCDSL, "plan", "."], cwd=tmp_path, env=env, text=True, capture_output=True
        )
        assert result.returncode == 1
        assert "cannot connect to the PostgreSQL store" in result.stderr
        assert "secret-password-99" not in result.stderr and "Traceback" not in result.stderr


def _portals(
    stack: ExitStack,
    tmp_path: Path,
    env: dict[str, str],
    count: int,
    people: list[dict[str, str]],
    *,
    latency: float,
) -> list[Workspace]:
    """`count` configurations `brand-N`, each on an emulated portal of its own (professional
    tier, rate limits on) through its own token variable and its `_API_BASE`, set in `env`."""
    portals = []
    for n in range(count):
        emulator = stack.enter_context(
            Emulator(token=TOKEN, rate_limits=True, tier="professional", latency=latency, seed=n)
        )
        root = tmp_path / f"brand-{n}"
        root.mkdir()
        ws = Workspace(root, emulator)
        ws.write(people, spec=BASE_SPEC.replace("HUBSPOT_TOKEN", f"BRAND{n}_TOKEN"))
        env[f"BRAND{n}_TOKEN"] = TOKEN
        env[f"BRAND{n}_TOKEN_API_BASE"] = emulator.base_url
        portals.append(ws)
    return portals


def test_two_workers_serve_five_portals_and_a_kill_9_loses_nothing(
    tmp_path: Path, pg_store: str
) -> None:
    people = [
        {"email": f"w{i:04d}@example.com", "first": f"W{i}", "seg": "realized"} for i in range(400)
    ]
    env = {**os.environ, "SYNCDSL_STORE": pg_store, "SYNCDSL_LEASE_SECONDS": LEASE}
    with ExitStack() as stack:
        portals = _portals(stack, tmp_path, env, 5, people, latency=0.05)
        env.pop("HUBSPOT_API_BASE", None)
        command = [*SYNCDSL, "worker", *(str(ws.root) for ws in portals), "--once", "--jobs", "3"]
        first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        wait_for(
            lambda: sum(ws.emulator.count("contacts.batch_upsert") for ws in portals) >= 3,
            what="the workers writing",
        )
        first.send_signal(signal.SIGKILL)  # mid-apply: its children die with it
        first.wait(timeout=10)
        assert second.wait(timeout=120) == 0, second.stderr.read()  # type: ignore[union-attr]
        for ws in portals:
            assert ws.emulator.count(status=429) == 0, "a portal's calls exceeded its ceiling"
            assert ws.emulator.overlapping_writes == 0
            for person in people:
                got = ws.emulator.contact_by_email(person["email"]) or {}
                assert got.get("firstname") == person["first"], person["email"]
                assert got.get("newsletter") == "realized"
            settled = subprocess.run(
                [*SYNCDSL, "plan", str(ws.root), "--detailed-exitcode"],
                env=env,
                capture_output=True,
                text=True,
            )
            assert settled.returncode == 0, settled.stdout + settled.stderr
        for pipe in (first.stderr, second.stderr):
            if pipe is not None:
                pipe.close()


def test_a_lease_is_exclusive_expires_with_its_holder_and_fences_the_journal(
    pg_store: str, tmp_path: Path
) -> None:
    from syncdsl.errors import LockHeldError
    from syncdsl.state.postgres import LeaseHolder, Leases
    from syncdsl.state.store import StateStore

    names = ("portal:a", "configuration:x")
    first = Leases(pg_store, names, LeaseHolder("first", "the first"), seconds=1.5)
    second = Leases(pg_store, ("portal:a",), LeaseHolder("second", "the second"), seconds=1.5)
    assert first.try_acquire()
    assert not second.try_acquire()  # one of its names is held
    with pytest.raises(LockHeldError, match="the first"):
        second.acquire("this portal")
    db = connect(pg_store)

    def expiry() -> object:
        return db.execute("SELECT expires FROM leases WHERE name = 'portal:a'").fetchone()[0]

    before = expiry()
    wait_for(lambda: expiry() > before, timeout=10, what="the heartbeat renewing the lease")
    # A dead holder's row, expired: another process takes it.
    db.execute(
        "INSERT INTO leases VALUES ('portal:b', 'dead', 'a dead process', now(), now() - interval '1 second')"
    )
    third = Leases(pg_store, ("portal:b",), LeaseHolder("third", "the third"), seconds=1.5)
    assert third.try_acquire()
    third.release()
    # A holder that stalled past its expiry finds its row taken at its next heartbeat: lost.
    db.execute("UPDATE leases SET holder = 'someone else' WHERE name = 'portal:a'")
    wait_for(lambda: first.lost.is_set(), timeout=10, what="the first holder noticing")
    assert not first.held
    with StateStore.open(tmp_path, store=pg_store) as store:
        store.fence(first.lost)
        with pytest.raises(LockHeldError, match="lost its lease"):
            store.mark_dirty(["a@example.com"])
    first.release()
    assert db.execute("SELECT name FROM leases").fetchall() == [("portal:a",)]  # not its own
    db.close()


def test_a_replica_of_another_configuration_key_is_told_why_it_does_not_send(
    pg_store: str,
) -> None:
    from syncdsl.state.postgres import LeaseHolder, Leases

    holder = Leases(pg_store, ("portal:p", "configuration:a"), LeaseHolder("h", "holder"), 5)
    other = Leases(pg_store, ("portal:p", "configuration:b"), LeaseHolder("o", "other"), 5)
    same = Leases(pg_store, ("portal:p", "configuration:a"), LeaseHolder("s", "same"), 5)
    assert holder.try_acquire()
    assert not other.try_acquire() and other.rivals() == ["configuration:a"]
    assert not same.try_acquire() and same.rivals() == []
    holder.release()


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    import random
    import socket

    while True:
        base = random.randint(20_000, 60_000)
        sockets = []
        try:
            for port in range(base, base + count):
                handle = socket.socket()
                sockets.append(handle)
                handle.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for handle in sockets:
                handle.close()


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/status", timeout=2).ok
    except requests.RequestException:
        return False


def test_two_stream_workers_serve_two_portals_and_a_kill_9_loses_nothing(
    tmp_path: Path, pg_store: str
) -> None:
    env = {**os.environ, "SYNCDSL_STORE": pg_store, "SYNCDSL_LEASE_SECONDS": LEASE}
    env.pop("HUBSPOT_API_BASE", None)
    with ExitStack() as stack:
        portals = _portals(stack, tmp_path, env, 2, [], latency=0.02)
        ports = {}
        workers = {}
        for name in ("a", "b"):
            ports[name] = _free_ports(2)
            command = [*SYNCDSL, "worker", "--stream", "--port", str(ports[name])]
            log = stack.enter_context((tmp_path / f"worker-{name}.log").open("w"))
            workers[name] = subprocess.Popen(
                [*command, *(str(ws.root) for ws in portals)], env=env, stderr=log
            )
            stack.callback(workers[name].kill)
        wait_for(
            lambda: all(_ready(ports[w] + n) for w in ports for n in range(2)),
            timeout=60,
            what="both workers streaming both configurations",
        )
        acknowledged: list[dict[str, str]] = [{}, {}]

        def post(worker: str, n: int, people: list[dict[str, object]]) -> None:
            url = f"http://127.0.0.1:{ports[worker] + n}/v1/profiles"
            answer = requests.post(url, json=people, timeout=10)
            assert answer.status_code == 202, answer.text
            acknowledged[n].update({str(p["email"]): str(p["first"]) for p in people})

        for n in range(2):
            people = _profiles(f"s{n}-", 200)
            post("a", n, people[:100])
            post("b", n, people[100:150])
        workers["a"].send_signal(signal.SIGKILL)  # its stream replicas die with it
        workers["a"].wait(timeout=10)
        for n in range(2):
            post("b", n, _profiles(f"s{n}-", 200)[150:])
            post("b", n, _profiles(f"s{n}-", 30, first="v2-"))  # later values win
        for n, ws in enumerate(portals):
            wait_for(
                lambda ws=ws, n=n: all(
                    (ws.emulator.contact_by_email(e) or {}).get("firstname") == first
                    for e, first in acknowledged[n].items()
                ),
                timeout=90,
                what=f"every acknowledged event in portal {n}",
            )
        workers["b"].send_signal(signal.SIGTERM)
        code = workers["b"].wait(timeout=60)
        assert code == 0, (tmp_path / "worker-b.log").read_text()[-2000:]
        for ws in portals:
            assert ws.emulator.count(status=429) == 0, "a portal's calls exceeded its ceiling"
            assert ws.emulator.overlapping_writes == 0
