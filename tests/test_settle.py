"""The state's bulk load for settling: every row exactly as SQLite holds it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from syncdsl.plan.settle import load_state
from syncdsl.state.store import ContactState, StateStore

# Each test runs on both storage backends (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("store_backend")

AWKWARD = [
    "plain",
    'quo"te and back\\slash',
    "line\nbreak\ttab\x01control",
    "unicode é 漢字 🎉 and a lone \u2028 separator",
    "",
]


def test_every_state_row_loads_as_stored(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        store.record(
            ContactState(
                f"p{n}@example.com",
                None if n % 3 == 0 else str(1000 + n),
                {"firstname": text, "n": str(n)},
                {"vip": "realized" if n % 2 else "exited"},
            )
            for n, text in enumerate(AWKWARD * 5)
        )
        # Damaged rows load as they are (settle sends them to the diff, which names them).
        store._db.execute(
            "INSERT INTO contacts VALUES ('damaged@example.com', '7', '{not json', '[1]', 'now', 1)"
        )
        store._db.execute("DELETE FROM contacts WHERE email LIKE 'p1%'")  # gaps in the rowids
        stored = store._db.execute(
            "SELECT email, hubspot_id, properties, audiences, dirty <> 0 FROM contacts"
        ).fetchall()
        db = duckdb.connect()
        store_lines = list(store.contact_lines(size=4))
        assert len(store_lines) == -(-len(stored) // 4)  # chunked as asked
        load_state(db, store)
    loaded = db.execute("SELECT * FROM state").fetchall()
    assert sorted(loaded) == sorted(stored)
    assert len(stored) == 25 - 11 + 1


def test_an_empty_state_loads_as_an_empty_table(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        assert list(store.contact_lines()) == []
        db = duckdb.connect()
        load_state(db, store)
    assert db.execute("SELECT count(*) FROM state").fetchall() == [(0,)]
