"""Where commands run, and the workflows they run there.

`connect` gives the HubSpot to talk to (real, or the embedded local one) and its client; a
`Session` is a configuration connected to it and to its state (`planning`, `applying`); the
workflows (`plan_changes`, `apply_plan`, `finish_apply`, `rebuild_state`, saved-plan checks) are
what the CLI and the stream call, so that they print and decide, and nothing else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from syncdsl.apply.executor import ApplyReport, Progress, execute, record_lock
from syncdsl.apply.rejects import write_apply_rejects
from syncdsl.errors import LockHeldError, PlanError, SyncdslError
from syncdsl.hubspot.client import HubSpotClient
from syncdsl.hubspot.target import Target
from syncdsl.hubspot.transport import token_digest
from syncdsl.lang.endpoint import api_base_problem, token_problem
from syncdsl.lang.ir import Spec
from syncdsl.plan.definition import Plan, PlanOptions
from syncdsl.plan.gather import PlanResult, configuration_hash, make_plan, read_current
from syncdsl.plan.planfile import SavedPlan, check_unedited
from syncdsl.plan.staleness import check_fresh
from syncdsl.records.desired import DesiredSet
from syncdsl.scrub import register_secret
from syncdsl.state.backend import ConfigurationLock, PortalLease, StoreLocation
from syncdsl.state.locks import ApplyLock
from syncdsl.state.store import STATE_DIR, STATE_FILE, ContactState, StateStore, state_dir

API_BASE_ENV = "HUBSPOT_API_BASE"
LOCAL_TOKEN = "pat-local-emulator"
LOCAL_DATA = "local-hubspot.json"
LOCAL_STATE_KEY = "local:"  # what the state is bound to for the embedded emulator (its port varies)


def resolve_base_url(spec: Spec) -> str:
    """`HUBSPOT_API_BASE` overrides the spec's `base_url`, which defaults to api.hubapi.com;
    `<TOKEN_ENV>_API_BASE` (say `BRAND_A_TOKEN_API_BASE`) overrides both for one token's portal.

    The operator's URL is checked before any request (scheme, host, no credentials, no query);
    the spec's was checked by validation (HubSpot's own hosts only).
    """
    # A worker serving many portals: each token's own address (`<TOKEN_ENV>_API_BASE`) first.
    variable = f"{spec.destination.token_env}_API_BASE"
    if not os.environ.get(variable, "").strip():
        variable = API_BASE_ENV
    operator_url = os.environ.get(variable, "").strip()
    if not operator_url:
        return spec.destination.base_url.rstrip("/")
    register_secret_parts(operator_url)
    problem = api_base_problem(operator_url, variable)
    if problem is not None:
        raise SyncdslError(problem)
    return operator_url.rstrip("/")


_MIN_URL_SECRET = 8  # shorter credentials ("user") are masked only inside URLs, not as words


def register_secret_parts(url: str) -> None:
    """Credentials written into a URL are secrets too: never print them (any `user:password@` in
    a URL is masked anyway; a long one, say a token put there, is masked wherever it shows)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        for secret in (parts.username, parts.password):
            if secret and len(secret) >= _MIN_URL_SECRET:
                register_secret(secret)
    except ValueError:
        pass


def resolve_token(spec: Spec) -> str:
    name = spec.destination.token_env
    token = os.environ.get(name, "").strip()
    if token:
        register_secret(token)
        problem = token_problem(token, name)
        if problem is not None:
            raise SyncdslError(problem)
    if not token:
        raise SyncdslError(
            f"the environment variable {name} is not set: export your HubSpot service key or "
            f"(legacy) private-app access token in it (`export {name}=...`; scopes "
            "crm.objects.contacts.read/write and crm.schemas.contacts.read/write; create a service "
            "key under Development > Keys > Service keys), or add --local to run against the "
            "embedded local HubSpot"
        )
    return token


@contextmanager
def connect(
    spec: Spec,
    *,
    local: bool = False,
    parallelism: int = 8,
    held: ConfigurationLock | None = None,
    writes: bool = True,
) -> Iterator[Target]:
    """Yield a client for the configured HubSpot, or for an embedded emulator with --local.

    The embedded emulator keeps its data in `.syncdsl/local-hubspot.json` beside the
    configuration, so plan and apply see the same local portal from one command to the next.
    It is used under the configuration's lock: the caller's (`held`, an apply's or a stream's),
    else one taken here. A command that does not write (`writes=False`: plan, state --rebuild)
    never saves the portal, so it cannot put back a copy older than what another command wrote.
    """
    # Even unused (--local), the token must never surface in output (say, read from a data file).
    if environ_token := os.environ.get(spec.destination.token_env, "").strip():
        register_secret(environ_token)
    if local:
        with _portal_lock(spec.root, held), _local(spec, parallelism, writes) as target:
            yield target
        return
    base_url = resolve_base_url(spec)
    token = resolve_token(spec)
    client = _client(spec, base_url, token, parallelism)
    try:
        yield Target(client, base_url, base_url, False)
    finally:
        client.close()


@contextmanager
def _portal_lock(root: Path, held: ConfigurationLock | None) -> Iterator[None]:
    """Hold the configuration's lock for the local HubSpot: `held` when the caller has it."""
    if isinstance(held, ApplyLock) and held.held and held.root == root:
        yield
        return
    lock = ApplyLock(root)
    try:
        lock.__enter__()
    except LockHeldError:
        directory = state_dir(root)
        raise LockHeldError(
            f"the local HubSpot ({directory / LOCAL_DATA}) is in use by another syncdsl command "
            f"({lock.holder()}); wait for it to finish, or stop it (lock: {lock.path})"
        ) from None
    try:
        yield
    finally:
        lock.__exit__()


@contextmanager
def _local(spec: Spec, parallelism: int, writes: bool) -> Iterator[Target]:
    from syncdsl.emulator import Emulator

    emulator = Emulator(
        token=LOCAL_TOKEN,
        tier=spec.destination.tier,
        daily_limit=spec.destination.daily_limit,
        state_file=state_dir(spec.root) / LOCAL_DATA,
        save_on_stop=writes,
    )
    base_url = emulator.start()
    client = _client(spec, base_url, LOCAL_TOKEN, parallelism)
    try:
        yield Target(client, base_url, LOCAL_STATE_KEY, True)
    finally:
        client.close()
        emulator.stop()


def _client(spec: Spec, base_url: str, token: str, parallelism: int) -> HubSpotClient:
    """The client of one run: the spec's tier and API version, a pool for its parallelism."""
    return HubSpotClient(
        base_url,
        token,
        tier=spec.destination.tier,
        pool_size=max(parallelism, 4),
        api_version=spec.destination.api_version,
    )


# -- the workflows the CLI (and the stream) run ------------------------------------------------


def store_location(spec: Spec) -> StoreLocation:
    """Where the configuration's state, queue and lock are (SYNCDSL_STORE, else `store =`)."""
    location = StoreLocation.choose(spec.root, spec.destination.store, spec.destination.store_key)
    if location.url is not None:
        register_secret_parts(location.url)
    return location


def configuration_lock(spec: Spec, *, local: bool) -> ConfigurationLock:
    """The lock of an apply or a stream's sending: the configuration's directory, or, in a
    shared store, leases on its portal and on itself."""
    location = store_location(spec)
    if local or not location.shared:
        return location.lock(None)
    return location.lock((resolve_base_url(spec), token_digest(resolve_token(spec))))


@dataclass(frozen=True)
class Session:
    """A configuration, connected: its spec, its HubSpot and its state."""

    spec: Spec
    target: Target
    store: StateStore


@contextmanager
def planning(spec: Spec, *, local: bool) -> Iterator[Session]:
    """A session for a plan: no lock (a plan runs beside an apply), the local portal read only."""
    with (
        connect(spec, local=local, writes=False) as target,
        store_location(spec).state() as store,
    ):
        yield Session(spec, target, store)


@contextmanager
def applying(
    spec: Spec, *, local: bool, parallelism: int = 8, writes: bool = True
) -> Iterator[Session]:
    """A session that writes, under the configuration's lock for all of it (one apply, stream or
    `--local` command at a time; in a shared store, one per portal across machines)."""
    with (
        configuration_lock(spec, local=local) as lock,
        connect(spec, local=local, parallelism=parallelism, held=lock, writes=writes) as target,
        store_location(spec).state() as store,
    ):
        if isinstance(lock, PortalLease):
            store.fence(lock.leases.lost)
        yield Session(spec, target, store)


def plan_changes(session: Session, options: PlanOptions) -> PlanResult:
    """Gather and build the plan (its desired set is open: `finish_apply` or the caller closes it)."""
    return make_plan(
        session.spec,
        session.target.client,
        session.store,
        state_key=session.target.state_key,
        options=options,
    )


def apply_plan(
    session: Session, plan: Plan, *, parallelism: int, progress: Progress | None = None
) -> ApplyReport:
    """Make the plan's changes in HubSpot, journaled in the state (bound to this HubSpot)."""
    session.store.bind(session.target.state_key)
    return execute(
        plan, session.target.client, session.store, parallelism=parallelism, progress=progress
    )


def finish_apply(
    session: Session,
    plan: Plan,
    report: ApplyReport,
    *,
    desired: DesiredSet | None,
    rejects: Path | None,
) -> tuple[Path, int]:
    """After an apply: `syncdsl.lock` updated, the rejects file written (its path, how many)."""
    record_lock(session.spec, plan, report)
    path = rejects_path(session.spec, rejects)
    written = write_apply_rejects(path, desired, report)
    if desired is not None:
        if report.stopped is None:
            # What the export said of each person's consent, for the stream's partial events.
            session.store.replace_withheld(desired.withheld())
        desired.close()
    return path, written


def rejects_path(spec: Spec, rejects: Path | None) -> Path:
    return rejects or state_dir(spec.root) / "rejects.jsonl"


def check_saved(session: Session, plan: Plan) -> None:
    """Refuse a saved plan that is stale for this session (configuration, state or HubSpot)."""
    check_fresh(
        plan,
        spec=session.spec,
        store=session.store,
        target=session.target,
        configuration_hash=configuration_hash(session.spec),
    )


def signed_configuration(saved: SavedPlan) -> Path:
    """The configuration a saved plan names, once the plan's digest is checked with the key of
    that configuration's state: the path is part of the plan, so nothing there is read before."""
    configuration = Path(saved.configuration)
    is_spec = configuration.is_file() and configuration.suffix == ".sync"
    if not (configuration.is_dir() or is_spec):
        raise PlanError(
            f"the saved plan names {configuration} as its configuration, which is not a "
            "directory or a .sync file: make the plan again with `syncdsl plan --out`"
        )
    root = configuration.parent if is_spec else configuration
    # Nothing in that directory is read before the digest is checked, its spec included: a
    # shared store is found through SYNCDSL_STORE.
    location = StoreLocation.choose(root)
    if not location.shared and not (root / STATE_DIR / STATE_FILE).is_file():
        raise PlanError(
            f"the saved plan names {configuration}, which has no syncdsl state: the plan was "
            "not made there; make it again with `syncdsl plan --out` (a configuration whose "
            "state is in PostgreSQL applies saved plans with SYNCDSL_STORE set)"
        )
    with location.state() as store:
        if store.lineage != saved.plan.fingerprint.lineage:
            raise PlanError(
                f"the saved plan was made for another state than {store.path}: make it again "
                "with `syncdsl plan --out`"
            )
        check_unedited(saved, store.plan_key())
    return configuration


def rebuild_state(session: Session) -> int:
    """Take HubSpot's current values of the managed properties as the last applied ones."""
    states = [
        ContactState(
            c.email,
            c.hubspot_id,
            {k: v for k, v in c.properties.items() if v is not None},
            {k: v for k, v in c.audiences.items() if v is not None},
        )
        for c in read_current(session.spec, session.target.client)
    ]
    session.store.bind(session.target.state_key)
    session.store.replace(states)
    return len(states)
