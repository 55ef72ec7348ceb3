"""HubSpot's HTTP transport: one pooled session, the shared rate budget, retries and error mapping.

`Transport._request` is the one place a request is sent: it waits for the budget, retries what
HubSpot says may be retried (429 after its wait, 5xx and network failures with capped jittered
backoff), maps what it may not to syncdsl errors, and scrubs the token from every error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypedDict

import requests
from requests.adapters import HTTPAdapter

from syncdsl import __version__
from syncdsl.errors import HubSpotError
from syncdsl.hubspot import errors as hs_errors
from syncdsl.hubspot.models import ClientStats
from syncdsl.hubspot.ratelimit import RateBudget
from syncdsl.hubspot.retry import (
    RETRYABLE_EXCEPTIONS,
    RETRYABLE_STATUSES,
    Backoff,
    rate_limit_wait,
    status_wait,
)

logger = logging.getLogger("syncdsl.hubspot")
USER_AGENT = f"syncdsl/{__version__} (+python-requests)"


@dataclass(frozen=True)
class Reply:
    """A successful response: status, parsed JSON body, and whether a network retry preceded it."""

    status: int
    body: dict[str, Any]
    after_network_retry: bool


class _VirtualClock:
    """A clock advanced by an injected (fake) sleep, so the rate budget never spins on real time."""

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._inner = sleep
        self._slept = 0.0
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self._inner(seconds)
        with self._lock:
            self._slept += seconds

    def clock(self) -> float:
        with self._lock:
            return time.monotonic() + self._slept


class TransportOptions(TypedDict, total=False):
    """`Transport`'s keyword options, for the classes built on it to pass along, typed."""

    tier: str
    budget: RateBudget | None
    session: requests.Session | None
    max_retries: int
    backoff_base: float
    backoff_cap: float
    timeout: tuple[float, float]
    pool_size: int
    sleep: Callable[[float], None]


def token_digest(token: str) -> str:
    """A SHA-256 of an access token: it names the token's portal (in lease rows) without it."""
    return hashlib.sha256(f"syncdsl token\0{token}".encode()).hexdigest()


class Transport:
    """Sends requests to one HubSpot, within its rate limits (see the module's docstring)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        tier: str = "free",
        budget: RateBudget | None = None,
        session: requests.Session | None = None,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: tuple[float, float] = (5.0, 60.0),
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.token_digest = token_digest(token)
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = Backoff(base=backoff_base, cap=backoff_cap)
        self.stats = ClientStats()
        if sleep is not time.sleep:
            virtual = _VirtualClock(sleep)
            self._sleep: Callable[[float], None] = virtual.sleep
            clock: Callable[[], float] = virtual.clock
        else:
            self._sleep, clock = sleep, time.monotonic
        self.budget = budget or RateBudget.for_tier(tier, clock=clock, sleep=self._sleep)
        self._owns_session = session is None
        self._session = session or requests.Session()
        if self._owns_session:
            # Our retries only: urllib3's would double-count sends and ignore the rate budget.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            }
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- transport ----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        search: bool = False,
    ) -> Reply:
        """Send with budget, retries and error mapping; return the successful reply."""
        url = f"{self.base_url}{path}"
        retries = 0
        network_retry = False
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":"))
        headers = {"Content-Type": "application/json"} if data is not None else None
        while True:
            self.budget.acquire(search=search, operation=operation)
            self.stats.record_call(operation)
            started = time.monotonic()
            try:
                response = self._session.request(
                    method, url, data=data, params=params, headers=headers, timeout=self.timeout
                )
            except RETRYABLE_EXCEPTIONS as exc:
                self.stats.record_error()
                self.stats.record_failing(
                    f"HubSpot did not answer {operation}: {type(exc).__name__}"
                )
                self._log(method, url, f"{type(exc).__name__}", started, retries)
                # A TLS failure (bad certificate, wrong scheme) will not heal by waiting.
                if retries >= self.max_retries or isinstance(exc, requests.exceptions.SSLError):
                    raise self._scrub(
                        hs_errors.connection_failed(
                            exc, operation=operation, retries=retries, base_url=self.base_url
                        )
                    ) from None
                self._retry_pause(self.backoff.delay(retries))
                retries += 1
                network_retry = True
                continue
            self.budget.observe(response.headers, absorb_remaining=response.status_code != 429)
            self.stats.observe(response.headers)
            self._log(method, url, str(response.status_code), started, retries)
            status = response.status_code
            if status < 300:
                body = _json_or_none(response)
                if body is not None:
                    self.stats.record_answered()
                    return Reply(status, body, network_retry)
                status = 502  # a success with an unreadable body is a broken response; retry it
                network_retry = True  # and treat it like a lost reply (a create may have landed)
            else:
                self.stats.record_error()
            if status >= 500:
                self.stats.record_failing(f"HubSpot answered {operation} with {status}")
            elif status != 429:  # a 429 says nothing of HubSpot's health
                self.stats.record_answered()
            body = hs_errors.parse_body(response.text)
            error = self._handle_failure(status, body, response.headers, operation, retries, search)
            if error is not None:
                # create_* read this: a 409 after a lost reply means our earlier attempt landed.
                error.after_network_retry = network_retry  # type: ignore[attr-defined]
                raise self._scrub(error)
            retries += 1

    def _handle_failure(
        self,
        status: int,
        body: dict[str, Any],
        headers: Mapping[str, str],
        operation: str,
        retries: int,
        search: bool,
    ) -> HubSpotError | None:
        """Wait before a retry and return None, or return the error to raise."""
        if status == 429:
            self.stats.record_rate_limited()
            wait = rate_limit_wait(
                body, headers, search=search, window_seconds=self.budget.window_seconds
            )
            if wait.daily:
                self.budget.exhaust_daily()  # the other threads stop before sending, too
                return hs_errors.from_response(status, body, headers, operation=operation)
            if retries >= self.max_retries:
                return hs_errors.from_response(
                    status, body, headers, operation=operation, retries=retries
                )
            # Everyone waits: the budget is shared, so the next acquire (ours too) sleeps it out.
            self.budget.penalize(wait.seconds, search=search)
            self.stats.record_retry()
            return None
        if status in RETRYABLE_STATUSES and retries < self.max_retries:
            self._retry_pause(status_wait(status, headers, self.backoff, retries))
            return None
        return hs_errors.from_response(status, body, headers, operation=operation, retries=retries)

    def _retry_pause(self, seconds: float) -> None:
        self.stats.record_retry()
        self._sleep(seconds)

    def _scrub(self, error: HubSpotError) -> HubSpotError:
        """Belt and braces: no exception may ever carry the token, whatever HubSpot echoed."""
        if self._token:
            error.message = _redact(error.message, self._token)
            error.body = _redact(error.body, self._token)
            error.args = (str(error),)
        return error

    def _log(self, method: str, url: str, outcome: str, started: float, retries: int) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.0f ms (retry %d) headers=%s",
                method,
                url,
                outcome,
                (time.monotonic() - started) * 1000,
                retries,
                redacted_headers(self._session.headers),
            )


def redacted_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Headers fit for a log line: credentials replaced by ***."""
    secret = {"authorization", "cookie", "set-cookie", "x-api-key"}
    return {k: ("***" if k.lower() in secret else str(v)) for k, v in headers.items()}


def _redact(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, dict):
        return {k: _redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secret) for v in value]
    return value


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
