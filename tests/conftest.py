"""Fixtures shared by the test modules.

`store_backend`: a module that uses it (`pytestmark = pytest.mark.usefixtures("store_backend")`)
runs each test twice, on the SQLite files and on a real PostgreSQL store (tests/pgserver.py), so
the two backends pass one suite. A test that reads the SQLite files themselves is marked
`sqlite_files` and runs on SQLite only.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.pgserver"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_files: reads or damages the SQLite files themselves")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    backend: str = request.param
    if backend == "sqlite":
        monkeypatch.delenv("SYNCDSL_STORE", raising=False)
        return backend
    if request.node.get_closest_marker("sqlite_files") is not None:
        pytest.skip("reads the SQLite files themselves")
    monkeypatch.setenv("SYNCDSL_STORE", request.getfixturevalue("pg_store"))
    return backend
