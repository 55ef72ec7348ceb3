"""Settle in bulk what an incremental plan need not look at: the contacts whose desired values
and statuses equal what the state last applied, and the people who are members of nothing.

The state's rows are loaded into the desired set's DuckDB database and joined with the desired
contacts by email. A pair is settled only when SQL is sure the pure diff (`syncdsl.plan.diff`)
would find nothing to do: raw values equal (the diff compares normalised values, so equal raw
strings are equal for it too), the same member statuses, nothing to exit, nothing dirty or
protected. Every other pair (creates, updates, exits, anything unusual) goes to the diff, in
email order, exactly as before; the settled ones only add to its counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from syncdsl.plan.definition import CurrentContact
from syncdsl.plan.diff import Settled
from syncdsl.records.desired import DesiredSet
from syncdsl.records.outcome import DesiredContact
from syncdsl.records.vectorised import BATCH_SCHEMA, line_batches
from syncdsl.state.store import StateStore

_LOOKUP = 500  # state rows read back per query for the contacts the diff decides


@dataclass(frozen=True)
class Settlement:
    """The settled counts, and the contacts left for the diff (both ascending by email)."""

    settled: Settled
    desired: Iterator[DesiredContact]
    current: Iterator[CurrentContact]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _key(name: str) -> str:
    return _literal('$."' + name + '"')


def settle(
    desired: DesiredSet,
    store: StateStore,
    *,
    audience_properties: tuple[str, ...],
    counted_properties: tuple[str, ...],
    carried: frozenset[str],
    protected: frozenset[str],
    rename: Mapping[str, str],
    fill: frozenset[str] = frozenset(),
) -> Settlement:
    """Join the desired set with the state in SQL; see the module's docstring.

    `fill`: fill_if_empty properties. A value the state holds for one stays (equal for the
    settle, and counted as kept when the desired one differs); a desired value the state holds
    none for needs HubSpot's (`lookup`), as does every contact the state does not know."""
    db = desired.connection
    layout = desired.layout
    load_state(db, store)
    db.execute("CREATE OR REPLACE TABLE protected (email VARCHAR)").fetchall()
    if protected:
        db.register("guarded", pa.table({"email": pa.array(sorted(protected), pa.string())}))
        try:
            db.execute("INSERT INTO protected SELECT * FROM guarded").fetchall()
        finally:
            db.unregister("guarded")

    # The desired column of each diffed audience property (statuses are under the lock's names).
    wanted: dict[str, str] = {}
    for audience in layout.audiences:
        wanted[rename.get(audience, audience)] = "d." + layout.audience_column(audience)

    def member(expr: str) -> str:
        return f"coalesce({expr} IN ('realized', 'existing'), false)"

    # The state's values, each JSON document parsed once (a layer below the join).
    state_columns = {name: f"p{n}" for n, name in enumerate(layout.properties)}
    tallied = (*audience_properties, *counted_properties)
    prior_columns = {prop: f"a{n}" for n, prop in enumerate(dict.fromkeys(tallied))}

    def prior(prop: str) -> str:
        return f"s.{prior_columns[prop]}"

    after = {prop: wanted.get(prop, "NULL") for prop in audience_properties}
    exported = " OR ".join(member(after[p]) for p in audience_properties) or "false"
    was_member = " OR ".join(member(prior(p)) for p in audience_properties) or "false"
    no_exit = (
        " AND ".join(f"({member(after[p])} OR NOT {member(prior(p))})" for p in audience_properties)
        or "true"
    )
    same_status = (
        " AND ".join(
            f"(NOT {member(after[p])} OR {after[p]} = {prior(p)})" for p in audience_properties
        )
        or "true"
    )

    def same(name: str) -> str:
        wanted, held = f"d.{layout.property_column(name)}", f"s.{state_columns[name]}"
        kept = f" OR {held} IS NOT NULL" if name in fill else ""  # HubSpot's value stays
        return f"({wanted} IS NULL OR {wanted} = {held}{kept})"

    same_values = " AND ".join(same(name) for name in layout.properties) or "true"
    filled = [name for name in layout.properties if name in fill]
    # A fill_if_empty value the state knows nothing of: HubSpot's decides (a lookup).
    unknown_fill = " OR ".join(
        f"(d.{layout.property_column(name)} IS NOT NULL AND s.{state_columns[name]} IS NULL)"
        for name in filled
    )
    kept_columns = "".join(
        f", coalesce(d.{layout.property_column(name)} <> s.{state_columns[name]}, false) AS f{n}"
        for n, name in enumerate(filled)
    )
    carried_known = (
        " AND ".join(f"{after[p]} IS NOT NULL" for p in audience_properties if p in carried)
        or "true"
    )
    plain = (
        "(s.email IS NULL OR (NOT s.dirty AND s.sound)) AND g.email IS NULL"
        f" AND ({carried_known} OR d.email IS NULL)"
    )
    # Not exported: a member of nothing, or withheld by its consent.
    withheld = layout.withheld_column
    outside = (
        f"CASE WHEN d.{withheld} IS NULL THEN 'not_member' ELSE 'no_consent' END"
        if withheld
        else "'not_member'"
    )
    fill_case = f" WHEN {unknown_fill} THEN 'diff'" if unknown_fill else ""
    outcome = (
        f"CASE WHEN NOT ({plain}) THEN 'diff'"
        f" WHEN d.email IS NULL THEN CASE WHEN {was_member} THEN 'diff' ELSE 'gone' END"
        f" WHEN s.email IS NULL THEN CASE WHEN {exported} THEN 'diff' ELSE {outside} END"
        f" WHEN NOT ({no_exit}) THEN 'diff'"
        f" WHEN NOT ({exported}) THEN {outside}{fill_case}"
        f" WHEN {same_status} AND {same_values} THEN 'unchanged' ELSE 'diff' END"
    )
    lookup = f"s.email IS NULL OR {unknown_fill}" if unknown_fill else "s.email IS NULL"
    tallies = "".join(f", {member(prior(p))} AS m{n}" for n, p in enumerate(tallied))
    db.execute(
        "CREATE OR REPLACE TABLE pairs AS SELECT coalesce(d.email, s.email) AS email,"
        f" d.email IS NOT NULL AS wanted, s.email IS NOT NULL AS known, d.srcs,"
        f" {outcome} AS outcome, d.email IS NOT NULL AND ({lookup}) AS lookup{tallies}"
        f"{kept_columns}"
        f" FROM desired d FULL OUTER JOIN ({_state_values(state_columns, prior_columns)}) s"
        " ON d.email = s.email"
        # A join, not NOT EXISTS: DuckDB would materialise the whole join for the correlation.
        " LEFT JOIN protected g ON g.email = coalesce(d.email, s.email)"
    ).fetchall()
    settled = _counts(desired, tallied, filled)
    cursor = db.cursor()
    cursor.execute("SELECT email FROM pairs WHERE outcome = 'diff' AND known ORDER BY email")
    return Settlement(
        settled,
        desired.select("WHERE email IN (SELECT email FROM pairs WHERE outcome = 'diff')"),
        _state_rows(store, cursor),
    )


def lookup_emails(desired: DesiredSet, *, fill: bool) -> Iterator[str]:
    """After `settle`: the emails of the desired contacts the diff decides whose HubSpot values
    the plan needs (ascending): the ones the state does not know, and (`fill`) the ones with a
    fill_if_empty value the state holds none for."""
    known = "" if fill else " AND NOT known"
    query = f"SELECT email FROM pairs WHERE outcome = 'diff' AND lookup{known} ORDER BY email"
    return (email for (email,) in desired.rows(query))


def load_state(db: duckdb.DuckDBPyConnection, store: StateStore) -> None:
    """The state's contacts as table `state` (email, hubspot_id, properties and audiences as
    their JSON text, dirty), read as SQLite writes them, one JSON array a line."""
    batches = (batch for text in store.contact_lines() for batch in line_batches(text))
    db.register("lines", pa.RecordBatchReader.from_batches(BATCH_SCHEMA, batches))
    try:
        db.execute(
            "CREATE OR REPLACE TABLE state AS SELECT r[1] AS email, r[2] AS hubspot_id,"
            " r[3] AS properties, r[4] AS audiences, r[5] <> '0' AS dirty"
            " FROM (SELECT from_json(decode(b), '[\"VARCHAR\"]') AS r FROM lines)"
        ).fetchall()
    finally:
        db.unregister("lines")


def _state_values(properties: Mapping[str, str], audiences: Mapping[str, str]) -> str:
    """The state's rows with each property and status it records as a column."""

    def paths(names: Mapping[str, str]) -> str:
        return "[" + ", ".join(_key(name) for name in names) + "]" if names else "[]::VARCHAR[]"

    values = "".join(f", pv[{n + 1}] AS {c}" for n, c in enumerate(properties.values()))
    values += "".join(f", av[{n + 1}] AS {c}" for n, c in enumerate(audiences.values()))
    return (
        f"SELECT email, dirty, sound{values} FROM (SELECT email, dirty, sound,"
        f" CASE WHEN sound THEN json_extract_string(properties, {paths(properties)}) END AS pv,"
        f" CASE WHEN sound THEN json_extract_string(audiences, {paths(audiences)}) END AS av"
        " FROM (SELECT *, coalesce(json_valid(properties) AND json_valid(audiences), false)"
        " AS sound FROM state))"
    )


def _counts(desired: DesiredSet, tallied: tuple[str, ...], filled: list[str]) -> Settled:
    db = desired.connection
    names = [source.name for source in desired.sources]
    unchanged = db.execute("SELECT count(*) FROM pairs WHERE outcome = 'unchanged'").fetchall()[0]
    members: dict[str, int] = {}
    if tallied:
        sums = ", ".join(f"sum(m{n}::INTEGER)" for n in range(len(tallied)))
        row = db.execute(f"SELECT {sums} FROM pairs WHERE outcome <> 'diff'").fetchall()[0]
        assert row is not None
        members = {prop: int(count) for prop, count in zip(tallied, row) if count}
    per_source = db.execute(
        "SELECT outcome, src, count(*) FROM (SELECT outcome, unnest(srcs) AS src FROM pairs"
        " WHERE wanted AND outcome IN ('unchanged', 'not_member', 'no_consent'))"
        " GROUP BY outcome, src"
    ).fetchall()
    buckets: dict[str, dict[str, int]] = {"unchanged": {}, "not_member": {}, "no_consent": {}}
    for outcome, src, count in per_source:
        bucket = buckets[outcome]
        bucket[names[src]] = bucket.get(names[src], 0) + int(count)
    kept: dict[str, int] = {}
    if filled:
        sums = ", ".join(f"sum(f{n}::INTEGER)" for n in range(len(filled)))
        row = db.execute(f"SELECT {sums} FROM pairs WHERE outcome = 'unchanged'").fetchall()[0]
        kept = {name: int(count) for name, count in zip(filled, row) if count}
    return Settled(
        int(unchanged[0]) if unchanged else 0,
        members,
        buckets["unchanged"],
        buckets["not_member"],
        buckets["no_consent"],
        kept,
    )


def _state_rows(store: StateStore, cursor: object) -> Iterator[CurrentContact]:
    """The state's contacts the diff decides, ascending by email."""
    try:
        while rows := cursor.fetchmany(_LOOKUP):  # type: ignore[attr-defined]
            emails = [row[0] for row in rows]
            known = store.get_many(emails)
            for email in emails:
                row = known[email]
                yield CurrentContact(
                    row.email, row.hubspot_id, row.properties, row.audiences, dirty=row.dirty
                )
    finally:
        cursor.close()  # type: ignore[attr-defined]
