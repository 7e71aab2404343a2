"""Engines, short sessions and migrations.

``Database`` is what the rest of callagent holds: it opens one short session per read or per
write (DESIGN.md practice 11) and never hands out a session that outlives a request.

SQLite (the embedded default) gets two engines: reads use ordinary deferred transactions on a
small pool; writes go through one connection that starts with ``BEGIN IMMEDIATE``. Why: a
deferred SQLite transaction that reads and then writes can fail with "database is locked" when
another writer got there first; taking the write lock up front (and queueing writers on one
connection in-process) turns that into waiting. PostgreSQL needs none of this: one engine, and
row locks (``SELECT … FOR UPDATE``) where a read-modify-write must not interleave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_manual_transactions(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, say when a transaction begins (and how).
    dbapi_connection.isolation_level = None


def _make_engine(url: str, *, immediate: bool, **kwargs: Any) -> AsyncEngine:
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_manual_transactions)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        event.listen(engine.sync_engine, "begin", lambda conn: conn.exec_driver_sql(begin))
    return engine


def prepare_sqlite_path(url: str) -> None:
    """Create the folder of a SQLite database file, so the default ``var/`` just works."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class Database:
    """The database of one installation: engines, sessions, migrations.

    ``analyse_calls``: whether some node of the installation runs the post-call analysis
    (docs/analysis.md). The writers that end an answered call queue its analysis job only
    then; otherwise the call is announced complete at once (docs/webhooks.md). It is the
    installation's rule, so it travels with the database every writer already gets rather
    than through each of the call paths (journal, recovery sweep, call-outcome)."""

    def __init__(self, url: str, *, echo: bool = False, analyse_calls: bool = True) -> None:
        self.url = url
        self.analyse_calls = analyse_calls
        prepare_sqlite_path(url)
        if make_url(url).get_backend_name() == "sqlite":
            self.read_engine = _make_engine(url, immediate=False, echo=echo, pool_size=4)
            self.write_engine = _make_engine(url, immediate=True, echo=echo, pool_size=1)
        else:
            self.read_engine = _make_engine(
                url, immediate=False, echo=echo, pool_size=10, pool_pre_ping=True
            )
            self.write_engine = self.read_engine
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.write_engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading; rolled back at the end, so nothing it did persists."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends and rolls back on any
        error: nothing is half-written (docs/api.md, "Conventions")."""
        async with self._write_sessions() as session, session.begin():
            yield session

    async def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (from empty, or from any older one)."""
        async with self.write_engine.connect() as connection:
            await connection.run_sync(_run_alembic_upgrade, revision)
            await connection.commit()

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            await self.write_engine.dispose()


def alembic_config(connection: Any = None) -> Any:
    """An Alembic ``Config`` pointing at the packaged migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _run_alembic_upgrade(connection: Any, revision: str) -> None:
    from alembic import command

    # Alembic logs every plugin it loads at INFO; one line per applied revision is enough.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    command.upgrade(alembic_config(connection), revision)


async def migrate_url(url: str) -> None:
    """Migrate the database at ``url`` to head, then close its engines."""
    database = Database(url)
    try:
        await database.migrate()
    finally:
        await database.dispose()


def migrate_sync(url: str) -> None:
    """``migrate_url`` for code that has no event loop (the CLI)."""
    asyncio.run(migrate_url(url))
