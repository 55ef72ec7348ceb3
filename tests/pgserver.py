"""A throwaway PostgreSQL server for the tests: `initdb` in a temporary directory, on a free
loopback port, with a password (scram-sha-256), stopped at the end of the session.

Debian's `postgresql` package gives the binaries (`.ci/run` installs it). Without them the tests
that need a server skip with a message, except in CI (`CI` set), where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "pg-test-password-1234"
USER = "syncdsl"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    data: Path

    def url(self, database: str = "syncdsl") -> str:
        """The store URL, without its password (the tests put it in PGPASSWORD)."""
        return f"postgresql://{USER}@{self.host}:{self.port}/{database}"


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    if _binaries() is None:
        message = "PostgreSQL's binaries (initdb, pg_ctl) are not installed: apt install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_server() as server:
        yield server


@contextmanager
def running_server() -> Iterator[Server]:
    """Start a server (initdb, pg_ctl start), create the `syncdsl` database; stop it after."""
    binaries = _binaries()
    assert binaries is not None, "PostgreSQL's binaries are not installed"
    top = Path(tempfile.mkdtemp(prefix="syncdsl-pg-"))
    data, sockets = top / "data", top / "run"
    sockets.mkdir()
    password_file = top / "password"
    password_file.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
        shutil.chown(sockets, "postgres")
        shutil.chown(password_file, "postgres")
    port = _free_port()
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=scram-sha-256",
                f"--pwfile={password_file}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=on"
    subprocess.run(
        _as_owner(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-l",
                str(top / "log"),
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    server = Server("127.0.0.1", port, data)
    environment = {**os.environ, "PGPASSWORD": PASSWORD}
    subprocess.run(
        [str(binaries / "createdb"), "-h", server.host, "-p", str(port), "-U", USER, "syncdsl"],
        check=True,
        capture_output=True,
        env=environment,
    )
    try:
        yield server
    finally:
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(top, ignore_errors=True)


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def pg_store(postgres: Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database of the server for one test, as its store URL; PGPASSWORD set."""
    name = f"t{next(_databases)}"
    environment = {**os.environ, "PGPASSWORD": PASSWORD}
    createdb = str((_binaries() or Path()) / "createdb")
    subprocess.run(
        [createdb, "-h", postgres.host, "-p", str(postgres.port), "-U", USER, name],
        check=True,
        capture_output=True,
        env=environment,
    )
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return postgres.url(name)
