"""Shared benchmark helpers: the reference workspace, an in-process plan + apply, counts, figures."""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from generate_profiles import write_profiles  # noqa: E402

from syncdsl.apply.executor import ApplyReport, execute  # noqa: E402
from syncdsl.emulator import Emulator, RequestRecord  # noqa: E402
from syncdsl.hubspot.client import HubSpotClient  # noqa: E402
from syncdsl.hubspot.ratelimit import RateBudget  # noqa: E402
from syncdsl.lang.load import load_spec  # noqa: E402
from syncdsl.plan.definition import BATCH_SIZE, Plan, PlanOptions  # noqa: E402
from syncdsl.plan.gather import make_plan  # noqa: E402
from syncdsl.records.desired import build_desired  # noqa: E402
from syncdsl.state.lockfile import desired_lock, read_lock, write_lock  # noqa: E402
from syncdsl.state.store import StateStore  # noqa: E402

TOKEN = "pat-na1-bench-0000-0000"
REFERENCE_SPEC = REPO_ROOT / "specs" / "example.sync"
#: Operations that read contacts, write contacts, or touch the schema (emulator operation names).
CONTACT_READS = ("contacts.batch_read", "contacts.list", "contacts.get")
SEARCHES = ("contacts.search",)
CONTACT_WRITES = ("contacts.batch_upsert", "contacts.batch_create", "contacts.batch_update")
SCHEMA_READS = ("properties.list", "groups.list", "properties.get")
SCHEMA_WRITES = (
    "properties.create",
    "properties.batch_create",
    "properties.update",
    "groups.create",
)


def figure(key: str, value: object, detail: str = "") -> None:
    """Print one figure line: a stable key (what smoke tests and run_all look for), value, detail."""
    print(f"  {key:<38} {value!s:>12}  {detail}".rstrip(), flush=True)


def duckdb_scan(data_dir: Path, profiles: str = "profiles.jsonl") -> float:
    """Seconds of a bare DuckDB scan of the reference files (DuckDB's default threads, as
    syncdsl's engine): parse every profile, extract the mapped fields, lowercase the emails and
    count the distinct ones; the same for the upload (no validation, no templates, no merge)."""
    import duckdb

    connection = duckdb.connect()
    start = time.perf_counter()
    connection.execute(
        """
        SELECT count(*), count(DISTINCT lower(trim(personalEmail.address))),
               count(person.name.firstName), count(person.name.lastName),
               count(mobilePhone.number), count(homeAddress.city)
        FROM read_json_auto(?, format = 'newline_delimited')
        """,
        [str(data_dir / profiles)],
    ).fetchall()
    connection.execute(
        "SELECT count(DISTINCT lower(trim(Email))), count(Company) FROM read_csv_auto(?)",
        [str(data_dir / "vip_upload.csv")],
    ).fetchall()
    seconds = time.perf_counter() - start
    connection.close()
    return seconds


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def floor_calls(items: int) -> int:
    """The fewest batch calls that can carry `items` inputs (100 per call)."""
    return math.ceil(items / BATCH_SIZE)


def ratio(actual: float, ideal: float) -> str:
    if ideal == 0:
        return "exact" if actual == 0 else "inf"
    return f"{actual / ideal:.3f}"


def write_workspace(root: Path, size: int, *, seed: int = 7, upload_every: int = 10) -> Path:
    """The reference configuration (specs/example.sync) over `size` generated profiles (and an
    upload row for every `upload_every`-th)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REFERENCE_SPEC, root / "main.sync")
    write_profiles(size, root / "data", seed=seed, upload_every=upload_every)
    return root


def change_first_names(root: Path, *, every: int = 100, offset: int = 7) -> int:
    """Rewrite the first name of every `every`-th profile (a 1% change by default); return how many."""
    path = root / "data" / "profiles.jsonl"
    edited = path.with_suffix(".edited")
    changed = 0
    # A line at a time: the 10M-profile file does not fit in memory as a list of lines.
    with path.open(encoding="utf-8") as lines, edited.open("w", encoding="utf-8") as out:
        for index, line in enumerate(lines):
            if index >= offset and (index - offset) % every == 0:
                record = json.loads(line)
                record["person"]["name"]["firstName"] = f"Changed{index}"
                line = json.dumps(record, ensure_ascii=False) + "\n"
                changed += 1
            out.write(line)
    edited.replace(path)
    return changed


class RemoteEmulator:
    """An Emulator served from its own process, so its threads never compete with the client's
    for the GIL (as a real HubSpot would not); the methods benchmarks use are forwarded."""

    def __init__(self, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, options), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((name, args, kwargs))
        ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    @property
    def requests(self) -> list[RequestRecord]:
        return self._call("_requests")  # type: ignore[no-any-return]

    def window_stamps(self) -> list[float]:
        """Admission times (time.monotonic, shared by processes on Linux) in the rolling window."""
        return self._call("_window")  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self._process.is_alive():
            self._call("_stop")
            self._process.join(timeout=10)

    def __enter__(self) -> RemoteEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(conn: Connection, options: dict[str, Any]) -> None:
    emulator = Emulator(**options)
    conn.send(emulator.start())
    while True:
        name, args, kwargs = conn.recv()
        try:
            if name == "_stop":
                emulator.stop()
                conn.send((True, None))
                return
            if name == "_requests":
                value: Any = request_log(emulator)
            elif name == "_window":
                with emulator.limiter._lock:
                    value = list(emulator.limiter._window)
            else:
                value = getattr(emulator, name)(*args, **kwargs)
            conn.send((True, value))
        except Exception as error:  # noqa: BLE001 - handed back to the caller
            conn.send((False, error))


AnyEmulator = Emulator | RemoteEmulator


def request_log(emulator: AnyEmulator) -> list[RequestRecord]:
    if isinstance(emulator, RemoteEmulator):
        return emulator.requests
    with emulator._requests_lock:  # the log is appended to by server threads
        return list(emulator.requests)


def operations(emulator: AnyEmulator, start: int = 0) -> Counter[str]:
    """Requests the emulator answered since request number `start`, by operation (any status)."""
    return Counter(record.operation for record in request_log(emulator)[start:])


def statuses(emulator: AnyEmulator, start: int = 0) -> Counter[int]:
    return Counter(record.status for record in request_log(emulator)[start:])


def total(counts: Counter[str], names: tuple[str, ...]) -> int:
    return sum(counts.get(name, 0) for name in names)


@dataclass
class Phase:
    """One `plan` + `apply` as the CLI runs them, with the requests each half sent."""

    plan: Plan
    report: ApplyReport | None
    plan_ops: Counter[str]
    apply_ops: Counter[str]
    plan_seconds: float
    apply_seconds: float
    apply_statuses: Counter[int] = field(default_factory=Counter)
    apply_started: float = 0.0  # time.monotonic() when apply began

    @property
    def changed(self) -> int:
        return len(self.plan.contact_changes)


class Runner:
    """A workspace bound to an emulator, driving make_plan + execute exactly as `syncdsl apply`."""

    def __init__(
        self,
        root: Path,
        emulator: AnyEmulator,
        *,
        budget: Callable[[], RateBudget] | None = None,
        parallelism: int = 8,
        backoff_base: float = 0.5,
    ) -> None:
        self.root = root
        self.emulator = emulator
        self.budget = budget
        self.parallelism = parallelism
        self.backoff_base = backoff_base
        self.client: HubSpotClient | None = None

    def new_client(self) -> HubSpotClient:
        # Each run is a new process in real use: a fresh budget (the headers correct it).
        budget = (
            self.budget()
            if self.budget
            else RateBudget(limit=1_000_000, window_seconds=1.0, search_per_second=1_000_000)
        )
        return HubSpotClient(
            self.emulator.base_url,
            TOKEN,
            budget=budget,
            backoff_base=self.backoff_base,
            pool_size=max(self.parallelism, 4),
        )

    def run(
        self,
        *,
        refresh: bool = False,
        apply: bool = True,
        before_apply: Callable[[], None] | None = None,
    ) -> Phase:
        spec = load_spec([self.root])
        client = self.client = self.new_client()
        base_url = self.emulator.base_url
        with StateStore.open(spec.root) as store:
            mark = len(request_log(self.emulator))
            started = time.perf_counter()
            result = make_plan(
                spec, client, store, state_key=base_url, options=PlanOptions(refresh=refresh)
            )
            plan_seconds = time.perf_counter() - started
            plan_ops = operations(self.emulator, mark)
            report = None
            if before_apply is not None:
                before_apply()
            mark = len(request_log(self.emulator))
            apply_started = time.monotonic()
            started = time.perf_counter()
            if apply:
                store.bind(base_url)
                report = execute(result.plan, client, store, parallelism=self.parallelism)
                write_lock(spec.root, desired_lock(spec, read_lock(spec.root)))
            apply_seconds = time.perf_counter() - started
            apply_ops = operations(self.emulator, mark)
            apply_statuses = statuses(self.emulator, mark)
        result.desired.close()
        client.close()
        return Phase(
            result.plan,
            report,
            plan_ops,
            apply_ops,
            plan_seconds,
            apply_seconds,
            apply_statuses,
            apply_started,
        )


def desired_end_state(root: Path) -> dict[str, dict[str, str | None]]:
    """What HubSpot must hold once the configuration is applied: email -> property -> value.

    Written independently of the planner, for a configuration applied to an empty portal: only
    audience members (realized or existing in some audience) are exported; an audience status of
    "exited" for someone who never was a member is not written (None). Needs the lock file of a
    first apply (it names the audience properties).
    """
    spec = load_spec([root])
    lock = desired_lock(spec, read_lock(spec.root))
    rename = {a.property: lock.audiences[a.key].property for a in spec.audiences}
    wanted: dict[str, dict[str, str | None]] = {}
    with build_desired(spec) as desired:
        for contact in desired:
            values: dict[str, str | None] = dict(contact.properties)
            if not any(status in ("realized", "existing") for status in contact.audiences.values()):
                continue  # a member of no audience: never exported
            for key, status in contact.audiences.items():
                values[rename.get(key, key)] = None if status == "exited" else status
            wanted[contact.email] = values
    return wanted


def end_state_mismatches(emulator: AnyEmulator, wanted: dict[str, dict[str, str | None]]) -> int:
    """How many contacts HubSpot does not hold as desired: missing, a wrong value, or there
    although no audience holds them (personal data that must not have left)."""
    held = {}
    for record in emulator.all_contacts():
        email = (record.get("email") or "").strip().lower()
        held[email] = record
    wrong = sum(1 for email in held if email not in wanted)
    for email, values in wanted.items():
        record = held.get(email)
        if record is None:
            wrong += 1
            continue
        for name, value in values.items():
            have = record.get(name) or None
            if value is None:
                if have not in (None, "exited"):
                    wrong += 1
                    break
            elif have != value:
                wrong += 1
                break
    return wrong
