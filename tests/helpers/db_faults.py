"""A real database error on demand: a trigger that refuses inserts into ``campaign_contacts``
for the campaigns of one name, on SQLite and on PostgreSQL. No mock: the error comes from the
database itself, inside the transaction that writes the contacts, as a constraint or a lost
connection would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from callagent.store.db import Database

_SQLITE = [
    """CREATE TRIGGER refuse_contacts BEFORE INSERT ON campaign_contacts
    WHEN (SELECT name FROM campaigns WHERE id = NEW.campaign_id) = '{name}'
    BEGIN SELECT RAISE(ABORT, 'injected failure: contacts of {name} refused'); END""",
]
_SQLITE_DROP = ["DROP TRIGGER IF EXISTS refuse_contacts"]
_POSTGRES = [
    """CREATE FUNCTION refuse_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT name FROM campaigns WHERE id = NEW.campaign_id) = '{name}' THEN
            RAISE EXCEPTION 'injected failure: contacts of {name} refused';
        END IF;
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER refuse_contacts BEFORE INSERT ON campaign_contacts
    FOR EACH ROW EXECUTE FUNCTION refuse_contacts()""",
]
_POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS refuse_contacts ON campaign_contacts",
    "DROP FUNCTION IF EXISTS refuse_contacts()",
]


@asynccontextmanager
async def contacts_refused(db: Database, campaign_name: str) -> AsyncIterator[None]:
    """While inside: adding a contact to a campaign named ``campaign_name`` fails in the
    database. The trigger is dropped afterwards (the test database is shared)."""
    assert "'" not in campaign_name
    postgres = db.dialect == "postgresql"
    create, drop = (_POSTGRES, _POSTGRES_DROP) if postgres else (_SQLITE, _SQLITE_DROP)
    async with db.write_engine.begin() as connection:
        for statement in create:
            await connection.execute(text(statement.replace("{name}", campaign_name)))
    try:
        yield
    finally:
        async with db.write_engine.begin() as connection:
            for statement in drop:
                await connection.execute(text(statement))
