"""Batch write replies as HubSpot sends them (200/207, item errors, 2026-09 shapes) -> `WriteReply`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from syncdsl.hubspot.models import Contact, ContactWrite, UpsertResult, WriteReply

logger = logging.getLogger("syncdsl.hubspot")
BATCH_LIMIT = 100  # inputs per batch call


def check_batch(
    writes: Sequence[ContactWrite], *, key: Callable[[ContactWrite], str], what: str
) -> None:
    if len(writes) > BATCH_LIMIT:
        raise ValueError(f"{what} takes at most {BATCH_LIMIT} contacts, got {len(writes)}")
    seen: set[str] = set()
    for write in writes:
        if key(write) in seen:
            raise ValueError(f"{what} got {key(write)} twice; HubSpot would reject the whole batch")
        seen.add(key(write))
    if len({write.trace_id for write in writes}) != len(writes):
        raise ValueError(f"{what} needs a distinct trace id per input")


def write_reply(body: Mapping[str, Any], writes: Sequence[ContactWrite]) -> WriteReply:
    """Match results and item errors to inputs by objectWriteTraceId.

    A HubSpot that does not echo trace ids is matched by record id (updates) or, failing that, by
    an echoed email; one unmatched result for one unmatched input is matched too.
    """
    by_trace = {write.trace_id: write for write in writes}
    by_id = {write.hubspot_id: write for write in writes if write.hubspot_id}
    by_email = {write.email: write for write in writes}
    results: dict[str, UpsertResult] = {}
    unmatched: list[Mapping[str, Any]] = []
    for item in body.get("results") or []:
        if not isinstance(item, dict):
            continue
        write = by_trace.get(str(item.get("objectWriteTraceId") or "")) or by_id.get(
            str(item.get("id") or "")
        )
        if write is None:
            write = by_email.get(Contact.from_api(item).email or "")
        if write is None or write.trace_id in results:
            unmatched.append(item)
            continue
        results[write.trace_id] = UpsertResult(
            str(item.get("id")), write.email, bool(item.get("new"))
        )
    not_found, errors = item_errors(body, writes, by_trace, by_id)
    rest = [w for w in writes if w.trace_id not in results and w.trace_id not in errors]
    rest = [w for w in rest if w.trace_id not in not_found]
    if len(unmatched) == 1 and len(rest) == 1:
        item = unmatched[0]
        results[rest[0].trace_id] = UpsertResult(
            str(item.get("id")), rest[0].email, bool(item.get("new"))
        )
    return WriteReply(results, frozenset(not_found), errors)


def item_errors(
    body: Mapping[str, Any],
    writes: Sequence[ContactWrite],
    by_trace: Mapping[str, ContactWrite],
    by_id: Mapping[str, ContactWrite],
) -> tuple[set[str], dict[str, str]]:
    """Per-input errors (207 in v3, inside the 200 in 2026-09): not-found ids, and the others."""
    not_found: set[str] = set()
    errors: dict[str, str] = {}
    for error in body.get("errors") or []:
        if not isinstance(error, dict):
            continue
        context = error.get("context") or {}
        traces = [str(t) for t in context.get("objectWriteTraceId") or [] if str(t) in by_trace]
        traces += [by_id[str(i)].trace_id for i in context.get("ids") or [] if str(i) in by_id]
        traces += [by_id[str(i)].trace_id for i in context.get("id") or [] if str(i) in by_id]
        if not traces and len(writes) == 1:
            traces = [writes[0].trace_id]
        missing = str(error.get("category") or "").upper() == "OBJECT_NOT_FOUND"
        for trace in dict.fromkeys(traces):
            if missing:
                not_found.add(trace)
            else:
                errors[trace] = str(error.get("message") or error.get("category") or "rejected")
        if not traces:
            logger.warning("HubSpot reported an error for no known input: %s", error.get("message"))
    return not_found, errors


def merge_replies(left: WriteReply, right: WriteReply) -> WriteReply:
    return WriteReply(
        {**left.results, **right.results},
        left.not_found | right.not_found,
        {**left.errors, **right.errors},
    )
