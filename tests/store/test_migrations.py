"""Alembic migrations from empty, on SQLite and on a real PostgreSQL server (issue #3)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from callagent.store.db import Database
from callagent.store.models import Base

from helpers.store_fixtures import fresh_url


async def test_migrations_from_empty_match_the_models(backend: str) -> None:
    database = Database(fresh_url(backend))
    try:
        await database.migrate()
        await database.migrate()  # a second run is a no-op

        def check(connection: Any) -> tuple[list[Any], set[str], str | None]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            return diff, set(inspect(connection).get_table_names()), context.get_current_revision()

        async with database.write_engine.connect() as connection:
            diff, tables, revision = await connection.run_sync(check)
        assert diff == [], "models and migrations differ: add a migration"
        assert set(Base.metadata.tables) <= tables
        assert revision == "0001"
    finally:
        await database.dispose()
