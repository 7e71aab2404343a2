"""A throw-away PostgreSQL server for the store and API tests (docs/api.md, "Tests").

The tests start their own server from Debian's ``postgresql`` package: ``initdb`` into a temp
folder, ``pg_ctl start`` on a free loopback port, one database, stopped when the test process
exits. As root (CI) the server runs as the ``postgres`` user, since PostgreSQL refuses root.

Without the binaries the PostgreSQL tests are skipped on a developer machine, but fail in CI
(``CI`` set): a missing package must not turn into a silently green run.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running server."""

    bin_dir: Path
    data_dir: Path
    port: int
    user: str

    def url(self, database: str) -> str:
        """SQLAlchemy URL of one of its databases."""
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"


_server: PostgresServer | None = None


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` with ``initdb`` and ``pg_ctl``."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(command: list[str], run_as: str | None) -> None:
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


def start() -> PostgresServer:
    """Start the server once per test process (every later call returns the same one)."""
    global _server
    if _server is not None:
        return _server
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL binaries not found (Debian package 'postgresql')"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run the PostgreSQL tests")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="callagent-pg-"))
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    data_dir = root / "data"
    port = _free_port()
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        run_as,
    )
    # Durability is worthless for a test server; turning it off makes DDL and commits cheap.
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        run_as,
    )
    _server = PostgresServer(bin_dir=bin_dir, data_dir=data_dir, port=port, user="postgres")

    def stop() -> None:
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], run_as
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return _server


def create_database(server: PostgresServer, name: str) -> str:
    """Create an empty database; its SQLAlchemy URL."""
    _run(
        [
            str(server.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            server.user,
            name,
        ],
        None,
    )
    return server.url(name)
